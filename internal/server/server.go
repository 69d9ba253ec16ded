// Package server builds one keyward node from a config.Config: storage,
// barrier, domain services, the HTTP API and background jobs. main, the
// end-to-end tests and --dev all start nodes through it; it is the one place
// where packages are wired together.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/access"
	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/device"
	"github.com/keyward/keyward/internal/dpop"
	"github.com/keyward/keyward/internal/events"
	"github.com/keyward/keyward/internal/gateway"
	"github.com/keyward/keyward/internal/h1"
	"github.com/keyward/keyward/internal/httpapi"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/monitor"
	"github.com/keyward/keyward/internal/policy"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/seal"
	"github.com/keyward/keyward/internal/secret"
	"github.com/keyward/keyward/internal/sockio"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/postgres"
	"github.com/keyward/keyward/internal/storage/sqlite"
	"github.com/keyward/keyward/internal/token"
	"github.com/keyward/keyward/internal/web"
)

// Node is one running keyward server.
type Node struct {
	cfg     config.Config
	log     *slog.Logger
	store   storage.Store
	barrier *barrier.Barrier
	sys     *sys
	metrics *httpapi.Metrics
	api     *httpapi.API
	dataAPI *httpapi.API // the data-plane listener's; nil without GatewayListen
	secrets *secret.Service
	tokens  *token.Service
	apikeys *apikey.Service
	// keyLimiter counts the rates of API keys, tokens and integrations on
	// this node, in distinct key spaces; on PostgreSQL it also charges what
	// the other nodes admitted (ratesync.go).
	keyLimiter *ratelimit.Limiter
	// detector looks for anomalies in credentials' use (alerts.go).
	detector *monitor.Detector
	// gatewayAddr is the data-plane listener's address, once listening.
	gatewayAddr atomic.Pointer[string]
	policies    *policy.Service
	identity    *identity.Manager
	dpop        *dpop.Verifier
	auditLog    *audit.Log
	auditFile   *os.File
	// auditWebhook ships the audit log to a collector (audit_webhook).
	auditWebhook *audit.Shipper
	// accessWebhook tells approvers of access requests (access_webhook).
	accessWebhook *audit.Webhook
	poller        *events.Poller
	usage         *monitor.Usage
	usageDone     chan struct{}      // closed when the usage flusher has stopped
	stop          context.CancelFunc // stops background jobs

	// Set in dev mode once initialised and unsealed.
	devRootToken string

	// The gateway (gateway.go).
	integrations *gateway.Service
	proxy        *gateway.Proxy
	gatewayEdge  *httpapi.Gateway
}

// Options are what a caller of New supplies beyond the config.
type Options struct {
	Log *slog.Logger
	// Banner receives the dev-mode banner (stdout in main).
	Banner io.Writer
	// Store, when set, is used instead of opening the configured storage
	// (tests run nodes on every backend this way). The node closes it.
	Store storage.Store
	// AuditSink, when set, receives every audit entry as a JSON line,
	// asynchronously.
	AuditSink io.Writer
	// Seal, when set, is used instead of opening the configured PKCS#11
	// module (tests run the auto-unseal path with a software key this
	// way). The node closes it.
	Seal seal.Wrapper
}

// New opens storage, applies migrations, loads the seal state and builds the
// HTTP API. In dev mode it also initialises (first start) and unseals.
func New(ctx context.Context, cfg config.Config, opts Options) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: log, barrier: barrier.New()}
	n.metrics = httpapi.NewMetrics(n.sealedOrUninitialized)

	if err := prepareDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	sopts := storage.Options{Observer: n.metrics.ObserveStorage}
	var err error
	switch {
	case opts.Store != nil:
		n.store = opts.Store
	case cfg.IsPostgres():
		n.store, err = postgres.Open(ctx, cfg.Storage, sopts)
	default:
		n.store, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, DatabaseFile), sopts)
	}
	if err != nil {
		return nil, err
	}
	n.sys = &sys{store: n.store, barrier: n.barrier, log: log}
	if err := n.sys.load(ctx); err != nil {
		n.store.Close()
		return nil, fmt.Errorf("reading seal state: %w", err)
	}

	errs := httpapi.NewErrorMapper()
	mapErrors(errs)
	httpapi.MapSecretErrors(errs)
	httpapi.MapTokenErrors(errs)
	httpapi.MapIdentityErrors(errs)
	httpapi.MapPolicyErrors(errs)
	httpapi.MapUsageErrors(errs)
	httpapi.MapInventoryErrors(errs)
	httpapi.MapKeyErrors(errs)
	httpapi.MapAccessErrors(errs)
	httpapi.MapDeviceErrors(errs)
	httpapi.MapGatewayErrors(errs)

	sink := opts.AuditSink
	if cfg.AuditFile != "" && sink == nil {
		f, err := os.OpenFile(cfg.AuditFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			n.store.Close()
			return nil, fmt.Errorf("opening the audit file: %w", err)
		}
		n.auditFile = f
		sink = f
	}
	if cfg.AccessWebhook != "" {
		n.accessWebhook = audit.NewWebhook(cfg.AccessWebhook, []byte(cfg.AccessWebhookSecret), nil, func(err error) {
			log.Warn("access webhook failed", "err", err)
		})
	}
	n.auditLog, err = audit.Open(ctx, n.store, n.barrier, audit.Options{Sink: sink, OnSinkError: func(err error) {
		log.Warn("audit sink failed", "err", err)
	}})
	if err != nil {
		if n.accessWebhook != nil {
			n.accessWebhook.Close()
		}
		n.store.Close()
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	if cfg.AuditWebhook != "" {
		n.auditWebhook = n.auditLog.Ship(cfg.AuditWebhook, []byte(cfg.AuditWebhookSecret), nil, func(err error) {
			log.Warn("audit webhook failed", "err", err)
		})
		n.metrics.WatchAuditWebhook(n.auditWebhook)
	}
	n.sys.healthErr = n.auditLog.Healthy
	aud := auditor{log: n.auditLog}

	n.policies = policy.NewService(n.store)
	authz := policyAuthz{svc: n.policies}
	n.secrets = secret.New(n.store, n.barrier, secret.Options{Changed: n.secretChanged})
	n.startGateway()
	n.tokens = token.New(n.store, n.barrier, token.Options{MaxTTL: identity.MaxTokenTTL})
	n.tokens.OnFill = func(t *token.Token) { t.Ext = callerOf(t) }
	// On PostgreSQL the nodes share what their limiters admit (ratesync.go).
	n.keyLimiter = ratelimit.New(ratelimit.Options{Share: n.store.Backend() == storage.Postgres})
	var rs *rateSync
	if n.store.Backend() == storage.Postgres {
		if rs, err = newRateSync(ctx, n.store, n.keyLimiter, log); err != nil {
			n.closeEarly()
			return nil, err
		}
	}
	n.apikeys = apikey.New(n.store, n.barrier, apikey.Options{EnvExists: n.envExists, Limiter: n.keyLimiter, OnNewNetwork: n.newKeyNetwork})
	n.apikeys.OnFill = func(k *apikey.Key) { k.Ext = keyCallerOf(k) }
	n.identity = identity.New(n.store, n.barrier, n.barrier, identity.Options{
		Audit: n.identityAudit, OnLockout: n.auditLockout,
		OnError: func(err error) { log.Warn("best-effort write failed", "err", err) },
	})
	n.sys.onUnseal = n.afterUnseal
	n.sys.onSeal = n.afterSeal
	n.poller = events.NewPoller(n.store, n.handleEvent, events.Options{Log: log})
	if err := n.poller.Init(ctx); err != nil {
		n.closeEarly()
		return nil, err
	}
	if err := n.policies.Load(ctx); err != nil {
		n.closeEarly()
		return nil, fmt.Errorf("loading policies: %w", err)
	}
	n.usage = monitor.New(n.store, nil)
	n.usage.OnRecord = n.metrics.ObserveUsage
	bg, stop := context.WithCancel(context.Background())
	n.stop = stop
	go n.poller.Run(bg)
	n.usageDone = make(chan struct{})
	go func() {
		defer close(n.usageDone)
		n.usage.Run(bg, monitor.DefaultFlushEvery, func(err error) { log.Warn("writing usage counts failed", "err", err) })
	}()
	go n.housekeeping(bg, time.Hour)
	if rs != nil {
		go rs.run(bg)
	}
	n.detector = monitor.NewDetector(n.store, monitor.Rules{
		SpikeMin: cfg.AnomalySpikeMin, SpikeFactor: cfg.AnomalySpikeFactor, RefusalsMin: cfg.AnomalyRefusalsMin,
	}, nil)
	n.detector.Respond = n.respondToAlert
	go n.detector.Run(bg, func(err error) { log.Warn("credential monitoring failed", "err", err) })
	go n.apikeys.Run(bg, func(err error) { log.Warn("recording API key last uses failed", "err", err) })

	// One DPoP verifier (and so one replay cache) for the edge and the
	// token endpoint: a proof is accepted once on this node, wherever; on
	// PostgreSQL, once in the whole cluster sharing the database.
	dopts := dpop.Options{}
	if n.store.Backend() == storage.Postgres {
		shared := sharedReplay{st: n.store, log: log, now: time.Now}
		dopts.Shared = shared
		go shared.sweepEvery(bg, time.Minute)
	}
	if cfg.DPoPNonce {
		// Stateless nonces under the barrier's MAC key: every node of the
		// cluster issues and accepts the same ones.
		dopts.Nonces = dpop.NewNonces(func(b []byte) []byte { return n.barrier.MAC("dpop-nonce", b) }, 0, nil)
	}
	n.dpop = dpop.NewVerifier(dopts)
	publicURL, _ := cfg.ParsedPublicURL()     // checked by cfg.Validate
	corsOrigins, _ := cfg.ParsedCORSOrigins() // checked by cfg.Validate

	// What a token, user or service account is created with is checked
	// against this node's policies, for a warning only.
	policyKnown := func(name string) bool { return n.policies.Set().Has(name) }
	routes := httpapi.SysRoutes(n.sys, n.metrics)
	routes = append(routes, (&httpapi.Secrets{Svc: n.secrets, Authz: authz, Audit: aud, Usage: n.usage.Record}).Routes()...)
	routes = append(routes, (&httpapi.Tokens{Svc: n.tokens, Audit: aud, PolicyKnown: policyKnown}).Routes()...)
	routes = append(routes, (&httpapi.Identity{Mgr: n.identity, Tokens: n.tokens, Audit: aud, Authz: authz, Cursors: barrierCursors{n.barrier}, PolicyKnown: policyKnown}).Routes()...)
	routes = append(routes, (&httpapi.Policies{Svc: n.policies, Tokens: n.tokens, Authz: authz, Audit: aud,
		Changed: func(ctx context.Context, tx storage.Tx, name string) error {
			return events.Append(ctx, tx, eventPolicyChange, name)
		}}).Routes()...)

	routes = append(routes, (&httpapi.AccessRequests{Svc: access.New(n.store, nil), Tokens: n.tokens, Authz: authz, Audit: aud, PolicyKnown: policyKnown, Notify: n.accessNotifier()}).Routes()...)
	routes = append(routes, (&httpapi.AuditAPI{Log: n.auditLog}).Routes()...)
	routes = append(routes, (&httpapi.UsageAPI{Usage: n.usage, Alerts: n.detector}).Routes()...)
	devices := device.New(n.store, n.barrier, nil)
	routes = append(routes, (&httpapi.Review{Policies: n.policies, Identities: n.identity, Tokens: n.tokens, Devices: devices, Authz: authz}).Routes()...)
	routes = append(routes, (&httpapi.OAuth{Mgr: n.identity, Tokens: n.tokens, Audit: aud, DPoP: n.dpop, Devices: devices}).Routes()...)
	routes = append(routes, (&httpapi.Devices{Svc: devices, Tokens: n.tokens, DPoP: n.dpop, Audit: aud, PolicyKnown: policyKnown}).Routes()...)
	routes = append(routes, (&httpapi.InventoryAPI{Sources: n.inventorySources(devices)}).Routes()...)
	routes = append(routes, (&httpapi.Leaks{Tokens: n.tokens, Keys: n.apikeys, Audit: aud, Admit: n.admitLeakReport}).Routes()...)
	routes = append(routes, (&httpapi.Keys{Svc: n.apikeys, Authz: authz, Audit: aud, ScopeWarnings: n.scopeWarnings}).Routes()...)
	routes = append(routes, n.gatewayRoutes(authz, aud, errs)...)
	routes = append(routes, httpapi.OpenAPIRoute(func() []httpapi.Route { return n.api.Routes() }))
	routes = append(routes, httpapi.Route{
		Pattern: "GET " + web.Prefix + "{file...}", Open: true, WhileSealed: true, NoAudit: true,
		Summary: "The web dashboard (static files holding no data: in the browser it calls this API with a token the user pastes).",
		Raw:     web.Handler().ServeHTTP,
	})
	deps := httpapi.Deps{
		Log:          log,
		Auth:         &tokenAuth{svc: n.tokens, keys: n.apikeys},
		Authz:        authz,
		Limits:       &credentialLimits{keys: n.apikeys, lim: n.keyLimiter},
		Audit:        aud,
		Sealed:       n.barrier.Sealed,
		Errors:       errs,
		Metrics:      n.metrics,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Usage:        n.usage.Record,
		DPoP:         n.dpop,
		PublicURL:    publicURL,
		AuditHealthy: n.auditLog.Healthy,
		CORSOrigins:  corsOrigins,
	}
	n.api = httpapi.New(deps, routes)
	if cfg.GatewayListen != "" {
		// The data-plane listener: the same edge (one audit log, one DPoP
		// replay cache, one set of limits) over the data-plane routes only,
		// checking DPoP proofs against its own public URL.
		deps.PublicURL, _ = cfg.ParsedGatewayPublicURL() // checked by cfg.Validate
		n.dataAPI = httpapi.New(deps, httpapi.DataPlaneRoutes(routes))
	}

	if n.sys.wrapper, err = openSeal(cfg, opts.Seal, n.sys.initialized && n.sys.wrapped != nil); err != nil {
		n.Close()
		return nil, err
	}
	if cfg.Dev {
		if err := n.startDev(ctx, opts.Banner); err != nil {
			n.Close()
			return nil, err
		}
	}
	if err := n.sys.autoUnseal(ctx); err != nil {
		// Not fatal: the unseal shares still open the node, and the
		// first unseal by shares stores a wrapped key that opens.
		log.Error("auto unseal failed; the node stays sealed until unsealed with its shares", "seal", n.sys.wrapper.Type(), "err", err)
	} else if n.sys.wrapper != nil && !n.barrier.Sealed() {
		log.Info("unsealed by the HSM", "seal", n.sys.wrapper.Type())
	}
	log.Info("keyward node ready", "storage", n.store.Backend(), "initialized", n.sys.initialized, "sealed", n.barrier.Sealed())
	return n, nil
}

func (n *Node) sealedOrUninitialized() bool { return n.barrier.Sealed() }

// accessEvent is one line the access webhook posts.
type accessEvent struct {
	Event   string          `json:"event"`
	Time    time.Time       `json:"time"`
	Request *access.Request `json:"request"`
}

// accessNotifier feeds the access webhook, when one is configured: a
// signed JSON line per access request asked for, decided or exchanged,
// posted in the background (retried as the audit webhook's are). Never a
// token: the exchanged token's accessor is left out too.
func (n *Node) accessNotifier() func(event string, req *access.Request) {
	if n.accessWebhook == nil {
		return nil
	}
	return func(event string, req *access.Request) {
		r := *req
		r.Accessor = ""
		line, err := json.Marshal(accessEvent{Event: event, Time: time.Now().UTC(), Request: &r})
		if err != nil {
			n.log.Warn("access webhook: encoding an event", "event", event, "err", err)
			return
		}
		n.accessWebhook.Write(append(line, '\n'))
	}
}

// openSeal opens what wraps the root key: given (tests), the configured
// PKCS#11 module, or nothing (Shamir shares only). The module's key is made
// when missing unless a wrapped root key already exists (then a missing key
// is a misconfiguration, not something to paper over with a new key).
func openSeal(cfg config.Config, given seal.Wrapper, haveWrapped bool) (seal.Wrapper, error) {
	if given != nil {
		return given, nil
	}
	if cfg.Seal != config.SealPKCS11 {
		return nil, nil
	}
	return seal.OpenPKCS11(seal.PKCS11Config{Lib: cfg.PKCS11Lib, Token: cfg.PKCS11Token, Pin: cfg.PKCS11Pin, Key: cfg.PKCS11Key, Create: !haveWrapped})
}

// Store returns the node's storage (tests inspect raw bytes through it).
func (n *Node) Store() storage.Store { return n.store }

// DevRootToken returns the root token in dev mode, "" otherwise.
func (n *Node) DevRootToken() string { return n.devRootToken }

// afterUnseal brings the services up once the barrier is open.
func (n *Node) afterUnseal(ctx context.Context) error {
	return n.adoptRootToken(ctx)
}

// afterSeal drops every cache that holds what only an unsealed node may know.
func (n *Node) afterSeal() {
	n.tokens.Purge()
	n.apikeys.Purge()
	n.integrations.Purge()
	n.proxy.Purge()
}

// apiKeyRetention is how long an expired or revoked API key stays listed
// (with its last use) before housekeeping deletes it.
const apiKeyRetention = 30 * 24 * time.Hour

// eventPolicyChange tells other nodes to reload their policies.
const eventPolicyChange = "policy.change"

// closeEarly releases what New opened when New fails.
func (n *Node) closeEarly() {
	n.auditLog.Close()
	if n.auditWebhook != nil {
		n.auditWebhook.Close()
	}
	if n.accessWebhook != nil {
		n.accessWebhook.Close()
	}
	n.store.Close()
}

// handleEvent applies a change made on another node (or this one) to the
// caches of this node.
func (n *Node) handleEvent(e events.Event) {
	n.tokens.HandleEvent(e)
	n.apikeys.HandleEvent(e)
	n.gatewayEvent(e)
	if e.Kind == eventPolicyChange {
		if err := n.policies.Load(context.Background()); err != nil {
			n.log.Error("reloading policies after a change on another node failed", "err", err)
		}
	}
}

// Close stops background jobs, seals the barrier and closes storage.
func (n *Node) Close() error {
	if n.stop != nil {
		n.stop()
	}
	if n.usageDone != nil {
		<-n.usageDone // its last flush
	}
	if err := n.apikeys.Flush(context.Background()); err != nil {
		n.log.Warn("recording API key last uses at shutdown failed", "err", err)
	}
	n.closeGateway()
	aerr := n.auditLog.Close()
	if errors.Is(aerr, barrier.ErrSealed) {
		// Sealed: the last checkpoint cannot be signed; the next unsealed
		// node signs one. Every entry is stored and chained already.
		aerr = nil
	}
	n.barrier.Seal()
	if n.sys.wrapper != nil {
		if err := n.sys.wrapper.Close(); err != nil {
			n.log.Warn("closing the HSM session", "err", err)
		}
	}
	n.tokens.Purge()
	n.apikeys.Purge()
	n.proxy.Purge() // cached secret values leave memory with the keys
	if n.auditFile != nil {
		n.auditFile.Close()
	}
	if n.auditWebhook != nil {
		if err := n.auditWebhook.Close(); err != nil {
			n.log.Warn("audit webhook at shutdown", "err", err)
		}
	}
	if n.accessWebhook != nil {
		if err := n.accessWebhook.Close(); err != nil {
			n.log.Warn("access webhook at shutdown", "err", err)
		}
	}
	if err := n.store.Close(); err != nil {
		return err
	}
	return aerr
}

// housekeeping runs the retention jobs every interval while unsealed:
// audit entries past their retention, events every node has seen, tokens
// expired or revoked more than a day ago, API keys expired or revoked more
// than apiKeyRetention ago.
func (n *Node) housekeeping(ctx context.Context, period time.Duration) {
	every(ctx, period, func() {
		if !n.barrier.Sealed() {
			n.tidy(ctx)
		}
	})
}

// every calls fn every period until ctx ends.
func every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}

func (n *Node) tidy(ctx context.Context) {
	n.expiryAlerts(ctx)
	if r := n.cfg.AuditRetention; r > 0 {
		if k, err := n.auditLog.Prune(ctx, time.Now().Add(-r)); err != nil {
			n.log.Error("audit retention failed", "err", err)
		} else if k > 0 {
			n.log.Info("audit retention: deleted old entries", "entries", k)
		}
	}
	if _, err := events.Prune(ctx, n.store, time.Now().Add(-time.Hour)); err != nil {
		n.log.Warn("pruning events failed", "err", err)
	}
	if _, err := n.tokens.Tidy(ctx, 24*time.Hour); err != nil {
		n.log.Warn("tidying tokens failed", "err", err)
	}
	if _, err := n.usage.Prune(ctx, time.Now().Add(-usageRetention)); err != nil {
		n.log.Warn("pruning usage counts failed", "err", err)
	}
	if _, err := n.apikeys.Tidy(ctx, apiKeyRetention); err != nil {
		n.log.Warn("tidying API keys failed", "err", err)
	}
	n.keyLimiter.Sweep()
}

// usageRetention is how long per-minute usage counts are kept.
const usageRetention = 31 * 24 * time.Hour

// Listeners are a node's bound addresses.
type Listeners struct {
	API     net.Listener // the whole API (listen)
	Gateway net.Listener // the data plane alone (gateway_listen); nil when not configured
}

// Close closes the listeners.
func (ls *Listeners) Close() {
	for _, ln := range []net.Listener{ls.API, ls.Gateway} {
		if ln != nil {
			ln.Close()
		}
	}
}

// Listen binds the configured addresses. A port already in use is reported
// with the address and the setting that names it.
func (n *Node) Listen() (*Listeners, error) {
	ls := &Listeners{}
	var err error
	if ls.API, err = listen(n.cfg.Listen, "--listen"); err != nil {
		return nil, err
	}
	if n.dataAPI != nil {
		if ls.Gateway, err = listen(n.cfg.GatewayListen, "--gateway-listen"); err != nil {
			ls.Close()
			return nil, err
		}
		addr := ls.Gateway.Addr().String()
		n.gatewayAddr.Store(&addr)
	}
	return ls, nil
}

func listen(addr, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, errAddrInUse) || strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("cannot listen on %s: the address is already in use (is another keyward running? choose another with %s)", addr, flag)
		}
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return ln, nil
}

var errAddrInUse = errors.New("address already in use")

// Serve serves HTTP(S) on the listeners until ctx is cancelled, then shuts
// down gracefully: in-flight requests finish (up to ShutdownTimeout), then
// the barrier is sealed and storage closed. Both listeners use the same TLS
// certificate and timeouts.
func (n *Node) Serve(ctx context.Context, ls *Listeners) error {
	var tlsConf *tls.Config
	if n.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(n.cfg.TLSCert, n.cfg.TLSKey)
		if err != nil {
			ls.Close()
			n.Close()
			return fmt.Errorf("loading TLS certificate %s and key %s: %w", n.cfg.TLSCert, n.cfg.TLSKey, err)
		}
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	type served struct {
		srv  server
		ln   net.Listener
		name string
	}
	all := []served{{n.listenerServer(n.api, tlsConf), ls.API, "api"}}
	if ls.Gateway != nil && n.dataAPI != nil {
		all = append(all, served{n.listenerServer(n.dataAPI, tlsConf), ls.Gateway, "data plane"})
	}
	errc := make(chan error, len(all))
	for _, s := range all {
		go func() { errc <- s.srv.Serve(sockio.Listener(s.ln)) }()
		n.log.Info("listening", "addr", scheme+"://"+s.ln.Addr().String(), "serves", s.name, "http_server", n.cfg.HTTPServer)
	}
	var err error
	select {
	case err = <-errc:
		n.log.Error("a listener failed; shutting down", "err", err)
	case <-ctx.Done():
	}
	n.log.Info("shutting down: waiting for in-flight requests", "timeout", n.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer cancel()
	for _, s := range all {
		if serr := s.srv.Shutdown(sctx); err == nil {
			err = serr
		}
	}
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	n.log.Info("stopped")
	return err
}

// server is net/http's server or h1's.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// stdServer is net/http's server, serving TLS when it has a TLS config.
type stdServer struct{ *http.Server }

func (s stdServer) Serve(ln net.Listener) error {
	if s.TLSConfig != nil {
		return s.Server.ServeTLS(ln, "", "")
	}
	return s.Server.Serve(tlsProbeListener{ln})
}

// tlsProbeListener answers a TLS handshake sent to a plain-HTTP address at
// once, with a plain-text 400 its client's TLS stack reports as "not TLS",
// as keyward's own server does; net/http's would wait for a line end that
// a ClientHello does not hold until its header timeout.
type tlsProbeListener struct{ net.Listener }

func (l tlsProbeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsProbeConn{Conn: c}, nil
}

type tlsProbeConn struct {
	net.Conn
	seen bool // the first byte was read and was not a TLS handshake's
}

// tlsToPlainAnswer is what a TLS handshake on a plain address is told,
// as keyward's own server (internal/h1) tells it. That server spots the
// handshake while it waits for a request, on the bytes it buffers; this
// wrapper serves net/http's, which offers no such hook.
const tlsToPlainAnswer = "HTTP/1.1 400 Bad Request: " + h1.TLSToPlainReason +
	"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: " + h1.TLSToPlainReason

func (c *tlsProbeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.seen && n > 0 {
		c.seen = true
		if p[0] == 0x16 { // a TLS handshake record
			c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c.Conn, tlsToPlainAnswer)
			c.Conn.Close()
			return 0, io.EOF
		}
	}
	return n, err
}

// listenerServer is the server of one listener: h1 for HTTP/1.1 (a proxied
// call costs 11-20% less CPU than on net/http's server; bench/README.md),
// with net/http's for clients that negotiate HTTP/2 over TLS; net/http's
// alone with http_server = "net/http".
func (n *Node) listenerServer(h http.Handler, tlsConf *tls.Config) server {
	std := n.httpServer(h, tlsConf)
	if n.cfg.HTTPServer == config.HTTPServerNetHTTP {
		return stdServer{std}
	}
	s := &h1.Server{
		Handler:           std.Handler,
		ReadHeaderTimeout: std.ReadHeaderTimeout,
		ReadTimeout:       std.ReadTimeout,
		IdleTimeout:       std.IdleTimeout,
		MaxHeaderBytes:    std.MaxHeaderBytes,
		// a client that stops reading its answer for this long is cut off
		// (net/http's server has no such bound short of a whole-answer
		// WriteTimeout, which would end long streams)
		WriteStallTimeout: time.Minute,
		TLSConfig:         tlsConf.Clone(), // the API's server configures its own for h2 while h1 reads this
		Log:               n.log,
	}
	if tlsConf != nil {
		std.TLSConfig = tlsConf.Clone()
		std.TLSConfig.NextProtos = []string{"h2"}
		s.H2 = std
	}
	return s
}

// httpServer is the HTTP server of one listener.
func (n *Node) httpServer(h http.Handler, tlsConf *tls.Config) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsConf,
	}
}

// DatabaseFile is the SQLite database's name in the data directory.
const DatabaseFile = "keyward.db"

// prepareDataDir creates the data directory (0700) and checks that it is
// writable, so a bad --data fails at start with a clear message.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}
