package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/httpapi"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/policy"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// policyAuthz decides with the current compiled policy set, after the
// token's environment binding.
type policyAuthz struct{ svc *policy.Service }

// envOf returns the project and environment a resource lies in, if any.
func envOf(resource string) (project, env string, ok bool) {
	rest, found := strings.CutPrefix(resource, "projects/")
	if !found {
		return "", "", false
	}
	project, rest, found = strings.Cut(rest, "/")
	if !found {
		return "", "", false
	}
	rest, found = strings.CutPrefix(rest, "envs/")
	if !found || rest == "" {
		return "", "", false
	}
	env, _, _ = strings.Cut(rest, "/")
	return project, env, true
}

// keyDecide is the decision for a client API key: action proxy on a
// resource its scopes match, nothing else.
func keyDecide(c *httpapi.Caller, action, resource string) (bool, string) {
	if action != "proxy" {
		return false, "denied: an API key may only proxy through the gateway"
	}
	if !c.Key.Allows(resource) {
		return false, "denied: the API key's scopes do not cover " + resource
	}
	return true, "allowed by the API key's scopes"
}

func (a policyAuthz) Explain(c *httpapi.Caller, action, resource string) policy.Decision {
	if c.Key != nil {
		ok, _ := keyDecide(c, action, resource)
		d := policy.Decision{Rule: -1, Effect: policy.EffectDefaultDeny, Action: action, Resource: resource}
		if ok {
			d.Allowed, d.Effect, d.Policy, d.Rule = true, policy.EffectAllow, "api key scopes", 0
		}
		return d
	}
	if len(c.BoundEnvs) > 0 {
		if p, e, ok := envOf(resource); ok && !token.EnvAllowed(c.BoundEnvs, p, e) {
			return policy.Decision{Rule: -1, Effect: policy.EffectDeny, Action: action, Resource: resource}
		}
	}
	return a.svc.Set().Decide(c.Policies, action, resource)
}

func (a policyAuthz) Decide(c *httpapi.Caller, action, resource string) (bool, string) {
	if c.Key != nil {
		return keyDecide(c, action, resource)
	}
	if len(c.BoundEnvs) > 0 {
		if p, e, ok := envOf(resource); ok && !token.EnvAllowed(c.BoundEnvs, p, e) {
			return false, fmt.Sprintf("denied: the token is bound to environments %s", strings.Join(c.BoundEnvs, ", "))
		}
	}
	d := a.svc.Set().Decide(c.Policies, action, resource)
	if d.Allowed {
		return true, "" // the reason is read only on a refusal; formatting it cost a gateway call an allocation
	}
	return false, d.String()
}

// AllowedBelow reports whether anything under prefix may be allowed (list
// filtering).
func (a policyAuthz) AllowedBelow(c *httpapi.Caller, action, prefix string) bool {
	if c.Key != nil {
		return false // API keys list nothing
	}
	if len(c.BoundEnvs) > 0 {
		if p, e, ok := envOf(prefix); ok && !token.EnvAllowed(c.BoundEnvs, p, e) {
			return false
		}
	}
	return a.svc.Set().AllowedBelow(c.Policies, action, prefix)
}

// auditor writes the edge's audit events to the hash-chained log.
type auditor struct{ log *audit.Log }

func entryOf(e *httpapi.AuditEvent) audit.Entry {
	en := audit.Entry{
		Time: e.Time, RequestID: e.RequestID, Action: e.Action, Resource: e.Resource, Environment: e.Environment,
		SourceAddr: e.SourceAddr, UserAgent: e.UserAgent, Outcome: e.Outcome, Status: e.Status,
		LatencyUS: e.Latency.Microseconds(), Details: e.Detail,
	}
	if c := e.Caller; c != nil {
		en.Principal, en.AuthMethod, en.AccessorHMAC = c.Principal, c.AuthMethod, c.AccessorHMAC
	}
	return en
}

func (a auditor) AuditRequest(ctx context.Context, e *httpapi.AuditEvent) error {
	en := entryOf(e)
	return a.log.Append(ctx, &en)
}

// AuditRequestAsync queues the entry of a proxied call (httpapi.AsyncAuditor).
func (a auditor) AuditRequestAsync(e *httpapi.AuditEvent, done func(error)) error {
	en := entryOf(e) // on the stack: AppendAsync keeps a copy
	return a.log.AppendAsync(&en, done)
}

func (a auditor) AuditTx(ctx context.Context, tx storage.Tx, e *httpapi.AuditEvent) error {
	en := entryOf(e)
	return a.log.AppendTx(ctx, tx, &en)
}

// identityAudit appends the entry of an identity change inside its
// transaction, from the request in ctx.
func (n *Node) identityAudit(ctx context.Context, tx storage.Tx, c identity.Change) error {
	ev := httpapi.AuditEventFromContext(ctx)
	if ev == nil {
		ev = &httpapi.AuditEvent{Time: time.Now(), Outcome: "allowed", Status: 200}
	}
	ev.Detail.Set("op", c.Op)
	ev.Detail.Set("identity", c.Kind+"/"+c.Name)
	en := entryOf(ev)
	return n.auditLog.AppendTx(ctx, tx, &en)
}

// auditLockout records a login lockout (outside any request transaction).
func (n *Node) auditLockout(key string) {
	err := n.auditLog.Append(context.Background(), &audit.Entry{
		Action: "lockout", Resource: "auth/throttle", Outcome: "denied", Status: 429,
		Detail: map[string]string{"key": key},
	})
	if err != nil {
		n.log.Error("auditing a login lockout failed", "err", err)
	}
	n.log.Warn("login locked out after repeated failures", "key", key)
}
