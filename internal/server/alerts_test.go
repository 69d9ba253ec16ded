package server

import (
	"net/netip"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/monitor"
)

// A token refused over and over is flagged by credential monitoring and,
// with anomaly_revoke = ["refusals"], revoked; the alert is listed and
// audited.
func TestRefusalsRevokeAToken(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	cfg.AnomalyRevoke = []string{"refusals"}
	r := start(t, cfg, nil)
	root, u := r.node.DevRootToken(), r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)
	var tok struct{ Token, Accessor string }
	if c := call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"policies": []string{"default"}}, &tok); c != 200 {
		t.Fatalf("token create = %d", c)
	}
	m := time.Now().Unix() / 60
	for range 40 {
		if c := call(t, "GET", u+"/v1/projects/shop/envs/prod/secrets/db/password", tok.Token, nil, nil); c != 403 {
			t.Fatalf("probe = %d, want 403", c)
		}
	}
	if err := r.node.usage.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var alerts []*monitor.Alert
	for _, minute := range []int64{m, m + 1} { // the calls may straddle a minute
		a, err := r.node.detector.Evaluate(t.Context(), minute)
		if err != nil {
			t.Fatal(err)
		}
		alerts = append(alerts, a...)
	}
	if len(alerts) != 1 || alerts[0].Kind != monitor.AlertRefusals || alerts[0].Subject != tok.Accessor || alerts[0].Response != monitor.ResponseRevoked {
		if len(alerts) == 0 {
			t.Skip("the 40 calls were split over two minutes, under the threshold in each")
		}
		t.Fatalf("alerts = %+v", alerts)
	}
	if c := call(t, "GET", u+"/v1/auth/token/lookup-self", tok.Token, nil, nil); c != 401 {
		t.Fatalf("the flagged token after the alert = %d, want 401 (revoked)", c)
	}
	var list struct{ Alerts []monitor.Alert }
	if c := call(t, "GET", u+"/v1/alerts?since=1h", root, nil, &list); c != 200 || len(list.Alerts) != 1 || list.Alerts[0].Response != monitor.ResponseRevoked {
		t.Fatalf("GET /v1/alerts = %d %+v", c, list)
	}
	entries, err := r.node.auditLog.List(t.Context(), audit.Filter{Principal: monitorPrincipal, Limit: 10})
	if err != nil || len(entries) != 1 || entries[0].Action != "alert" || entries[0].Resource != "auth/tokens/"+tok.Accessor ||
		entries[0].Detail["response"] != monitor.ResponseRevoked || entries[0].Detail["anomaly"] != monitor.AlertRefusals {
		t.Fatalf("audit of the alert: %+v, %v", entries, err)
	}
	if c := call(t, "GET", u+"/v1/alerts?since=soon", root, nil, nil); c != 400 {
		t.Fatalf("a bad since = %d, want 400", c)
	}
}

// Without anomaly_revoke an alert is recorded and audited, and the
// credential left alone.
func TestSpikeIsRecordedOnly(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	var tok struct{ Token, Accessor string }
	call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"policies": []string{"default"}}, &tok)
	m := time.Now().Unix() / 60
	for range 700 {
		r.node.usage.Record(monitor.KindToken, tok.Accessor, 200)
	}
	r.node.usage.Flush(t.Context())
	alerts, err := r.node.detector.Evaluate(t.Context(), m)
	if err != nil || len(alerts) != 1 || alerts[0].Kind != monitor.AlertSpike || alerts[0].Response != monitor.ResponseAlert {
		t.Fatalf("alerts = %+v, %v", alerts, err)
	}
	if c := call(t, "GET", u+"/v1/auth/token/lookup-self", tok.Token, nil, nil); c != 200 {
		t.Fatalf("the token after a recorded-only alert = %d, want 200", c)
	}
	entries, _ := r.node.auditLog.List(t.Context(), audit.Filter{Principal: monitorPrincipal, Limit: 10})
	if len(entries) != 1 || entries[0].Detail["response"] != monitor.ResponseAlert {
		t.Fatalf("audit: %+v", entries)
	}
}

// The thresholds are settings: with anomaly_refusals_min = 5, five refusals
// in a minute are an anomaly.
func TestAnomalyThresholdsAreSettings(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	cfg.AnomalyRefusalsMin = 5
	r := start(t, cfg, nil)
	m := time.Now().Unix() / 60
	for range 5 {
		r.node.usage.Record(monitor.KindToken, "acc-probe", 403)
	}
	r.node.usage.Flush(t.Context())
	alerts, err := r.node.detector.Evaluate(t.Context(), m)
	if err != nil || len(alerts) != 1 || alerts[0].Kind != monitor.AlertRefusals || alerts[0].Count != 5 {
		t.Fatalf("alerts = %+v, %v", alerts, err)
	}
}

// An API key used from a new network is an anomaly; with anomaly_revoke =
// ["new_network"] the key is revoked.
func TestNewNetworkRevokesAKey(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	cfg.AnomalyRevoke = []string{"new_network"}
	r := start(t, cfg, nil)
	root, u := r.node.DevRootToken(), r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)
	k := createKey(t, u, root, "shop", "prod", map[string]any{"name": "partner", "scopes": []string{"integrations/maps"}})
	ctx := t.Context()
	use := func(addr string) {
		t.Helper()
		if _, _, err := r.node.apikeys.Verify(ctx, k.Key, netip.MustParseAddr(addr)); err != nil {
			t.Fatalf("use from %s: %v", addr, err)
		}
		if err := r.node.apikeys.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	use("203.0.113.10")
	use("203.0.113.99") // the same /24
	use("198.51.100.7")
	alerts, err := r.node.detector.Alerts(ctx, monitor.AlertFilter{})
	if err != nil || len(alerts) != 1 || alerts[0].Kind != monitor.AlertNewNetwork || alerts[0].Detail != "198.51.100.0/24" || alerts[0].Response != monitor.ResponseRevoked {
		t.Fatalf("alerts = %+v, %v", alerts, err)
	}
	if _, _, err := r.node.apikeys.Verify(ctx, k.Key, netip.MustParseAddr("203.0.113.10")); err == nil {
		t.Fatal("the flagged key still verifies")
	}
}

// A long-lived token and an API key that expire within expiry_warning
// raise one expiring alert each, audited, never revoked (even with every
// anomaly set to revoke); one that expires later, or a short-lived token,
// raise none; looking again raises nothing new.
func TestExpiringCredentialsAreReported(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	cfg.ExpiryWarning = 10 * 24 * time.Hour
	cfg.AnomalyRevoke = []string{"spike", "refusals", "new_network"}
	r := start(t, cfg, nil)
	root, u := r.node.DevRootToken(), r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)
	soon := createKey(t, u, root, "shop", "prod", map[string]any{"name": "soon", "scopes": []string{"integrations/maps"}, "ttl": "7d"})
	createKey(t, u, root, "shop", "prod", map[string]any{"name": "later", "scopes": []string{"integrations/maps"}, "ttl": "30d"})
	createKey(t, u, root, "shop", "prod", map[string]any{"name": "never", "scopes": []string{"integrations/maps"}})
	var tok struct{ Token, Accessor string }
	if c := call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"policies": []string{"default"}, "ttl": "72h"}, &tok); c != 200 {
		t.Fatalf("create token = %d", c)
	}
	if c := call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"policies": []string{"default"}, "ttl": "10m"}, nil); c != 200 {
		t.Fatalf("create short token = %d", c)
	}
	ctx := t.Context()
	r.node.expiryAlerts(ctx)
	r.node.expiryAlerts(ctx) // again: nothing new
	alerts, err := r.node.detector.Alerts(ctx, monitor.AlertFilter{})
	if err != nil || len(alerts) != 2 {
		t.Fatalf("alerts = %+v, %v; want the 7-day key and the 3-day token", alerts, err)
	}
	got := map[string]monitor.Alert{}
	for _, a := range alerts {
		if a.Kind != monitor.AlertExpiring || a.Response != monitor.ResponseAlert {
			t.Errorf("alert %+v", a)
		}
		got[a.SubjectKind+" "+a.Subject] = a
	}
	if a, ok := got["key "+soon.ID]; !ok || a.Count != 6 {
		t.Errorf("key alert = %+v (want 6 whole days left)", a)
	}
	if _, ok := got["token "+tok.Accessor]; !ok {
		t.Errorf("no alert for the 3-day token: %+v", got)
	}
	if _, v, _ := verifyKey(t, u, root, map[string]any{"key": soon.Key}); !v.Valid {
		t.Errorf("the expiring key was revoked: %+v", v)
	}
	n := 0
	for _, e := range newestAudit(t, u, root, 50) {
		if e.Action == "alert" && e.Detail["anomaly"] == "expiring" && e.Detail["expires_at"] != "" && e.Detail["days_left"] != "" &&
			e.Detail["count"] == "" && e.Detail["response"] == "alert" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d expiring alerts audited, want 2", n)
	}
}
