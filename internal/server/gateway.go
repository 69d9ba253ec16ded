package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/keyward/keyward/internal/events"
	"github.com/keyward/keyward/internal/gateway"
	"github.com/keyward/keyward/internal/httpapi"
	"github.com/keyward/keyward/internal/policy"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/secret"
)

// secretSource resolves an integration's secret through the secret store.
type secretSource struct{ svc *secret.Service }

func (s secretSource) Current(ctx context.Context, project, env, path string) ([]byte, int, error) {
	sec, err := s.svc.Get(ctx, project, env, path, 0)
	if err != nil {
		return nil, 0, err
	}
	return sec.Value, sec.ReadVersion, nil
}

// secretChanged is the secret store's post-commit hook: the gateway drops
// the value it cached, so this node's next call uses the new one.
func (n *Node) secretChanged(project, env, path string) {
	if n.proxy != nil {
		n.proxy.SecretChanged(project + "/" + env + "/" + path)
	}
}

// startGateway builds the integration store and the proxy.
func (n *Node) startGateway() {
	n.integrations = gateway.NewService(n.store, nil)
	n.proxy = gateway.NewProxy(n.integrations, secretSource{svc: n.secrets}, gateway.TransportOptions{})
}

// gatewayEvent applies another node's (or this node's) change of an
// integration or of a secret an integration may have cached.
func (n *Node) gatewayEvent(e events.Event) {
	n.integrations.HandleEvent(e)
	if e.Kind == secret.EventChange {
		n.proxy.SecretChanged(e.Key)
	}
}

// gatewayRoutes returns the integration and proxy routes.
func (n *Node) gatewayRoutes(authz httpapi.Authorizer, aud httpapi.Auditor, errs *httpapi.ErrorMapper) []httpapi.Route {
	n.gatewayEdge = &httpapi.Gateway{
		Svc: n.integrations, Proxy: n.proxy, Authz: authz, Audit: aud, Errors: errs, Log: n.log,
		AuditHealthy: n.auditLog.Healthy, Usage: n.usage.RecordPair,
		Limiter: &integrationLimiter{lim: n.keyLimiter}, DataPlaneURL: n.dataPlaneURL,
	}
	return n.gatewayEdge.Routes()
}

// dataPlaneURL is the base URL apps reach the gateway at, when the node has
// a data-plane address of its own: gateway_public_url, or the data-plane
// listener's address (its host when it names one, else the host the
// request reached the API by). "" without one: apps use the API's address.
func (n *Node) dataPlaneURL(r *http.Request) string {
	if u, _ := n.cfg.ParsedGatewayPublicURL(); u != nil {
		return u.String()
	}
	addr := n.gatewayAddr.Load()
	if addr == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return ""
	}
	if ip, perr := netip.ParseAddr(host); host == "" || perr == nil && ip.IsUnspecified() {
		if host, _, err = net.SplitHostPort(r.Host); err != nil {
			host = r.Host
		}
		host = strings.Trim(host, "[]")
	}
	scheme := "http"
	if n.cfg.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// closeGateway ends WebSocket sessions, waits for their audit entries and
// drops upstream connections. The entries of finished calls still queued
// are written when the audit log closes, after it.
func (n *Node) closeGateway() {
	n.proxy.Close()
	if n.gatewayEdge != nil {
		n.gatewayEdge.WaitSessions()
	}
}

// integrationLimiter enforces an integration's rate (all calls through it)
// and caller rate (the calls of each token or API key) before a call is
// forwarded. It shares the node's limiter with tokens and API keys
// (distinct key spaces), shared with the other nodes on PostgreSQL.
type integrationLimiter struct{ lim *ratelimit.Limiter }

func (l *integrationLimiter) Allow(r *http.Request, name string, rate, callerRate ratelimit.Limit) (ratelimit.Decision, error) {
	var applied ratelimit.Decision
	if !rate.IsZero() {
		d := l.lim.Allow(limitIntegration+name, rate)
		if !d.Allowed {
			return d, limited(d, fmt.Sprintf("integration %s is over its rate limit of %s", name, rate))
		}
		applied = d
	}
	if !callerRate.IsZero() {
		if c := httpapi.CallerFrom(r.Context()); c != nil && c.Accessor != "" {
			d := l.lim.Allow(limitIntegrationCaller+name+"\x00"+c.Accessor, callerRate)
			if !d.Allowed {
				return d, limited(d, fmt.Sprintf("this caller is over integration %s's per-caller rate limit of %s", name, callerRate))
			}
			applied = ratelimit.Strictest(applied, d)
		}
	}
	return applied, nil
}

// scopeWarnings names each of a new API key's scopes that matches no
// integration: the key could proxy nothing through it (a typo, or an
// integration not created yet). A failed listing gives no warnings.
func (n *Node) scopeWarnings(ctx context.Context, scopes []string) []string {
	ins, err := n.integrations.List(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range scopes {
		matches := func(in gateway.Integration) bool { return policy.MatchPattern(s, httpapi.IntegrationResource(in.Name)) }
		if !slices.ContainsFunc(ins, matches) {
			out = append(out, fmt.Sprintf("scope %q matches no integration: the key can call nothing through it until one of that name is created", s))
		}
	}
	return out
}
