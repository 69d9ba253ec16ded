package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/config"
)

// With audit_webhook set, every audit entry reaches the collector, in
// requests signed with the shared secret.
func TestAuditWebhookSink(t *testing.T) {
	col, cfg := auditWebhookNode(t)
	r := start(t, cfg, nil)
	if c := call(t, "POST", r.url+"/v1/projects", r.node.DevRootToken(), map[string]string{"name": "shop"}, nil); c != 201 {
		t.Fatalf("create project = %d", c)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lines, bad := col.received()
		if bad != 0 {
			t.Fatalf("%d requests with a bad signature", bad)
		}
		found := false
		for _, l := range lines {
			var e audit.Entry
			if json.Unmarshal(l, &e) == nil {
				found = found || e.Resource == "projects" && e.Detail["project"] == "shop" && e.Action == "write" && e.Status == 201
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the project's audit entry never reached the collector: %d lines", len(lines))
		}
	}
}

// The audit webhook is shipped from the stored log: what was audited while
// the collector was down, up to a restart of the node, reaches it once it
// is back, exactly once.
func TestAuditWebhookSurvivesOutageAndRestart(t *testing.T) {
	col, cfg := auditWebhookNode(t)
	col.down.Store(true)
	r := start(t, cfg, nil)
	if c := call(t, "POST", r.url+"/v1/projects", r.node.DevRootToken(), map[string]string{"name": "shop"}, nil); c != 201 {
		t.Fatalf("create project = %d", c)
	}
	r.stop(t)
	col.down.Store(false)
	r = start(t, cfg, nil)
	var seqs []int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lines, _ := col.received()
		seqs = seqs[:0]
		found := false
		for _, l := range lines {
			var e audit.Entry
			if err := json.Unmarshal(l, &e); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			seqs = append(seqs, e.Seq)
			found = found || e.Resource == "projects" && e.Detail["project"] == "shop"
		}
		if found {
			for i := 1; i < len(seqs); i++ {
				if seqs[i] != seqs[i-1]+1 {
					t.Fatalf("seqs not one each, in order: %v", seqs)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the entry made during the outage never arrived: seqs %v", seqs)
		}
	}
	// The node's metrics tell what it shipped and that it is not failing.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m := metricsText(t, r.url)
		if strings.Contains(m, "keyward_audit_webhook_failing 0") && !strings.Contains(m, "keyward_audit_webhook_shipped_total 0\n") &&
			strings.Contains(m, "keyward_audit_webhook_pending_entries ") &&
			strings.Contains(m, "keyward_audit_webhook_shipped_total ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics:\n%s", m)
		}
	}
}

// auditWebhookNode is a collector and the configuration of a dev node on
// SQLite that ships its audit log to it.
func auditWebhookNode(t *testing.T) (*collector, config.Config) {
	const secret = "collector-secret-0123456789"
	col := newCollector(t, secret)
	cfg := testConfig(t.TempDir())
	cfg.Dev, cfg.Storage = true, "sqlite"
	cfg.AuditWebhook, cfg.AuditWebhookSecret = col.url+"/collect", secret
	return col, cfg
}

// collector is a webhook receiver that keeps the lines it is sent and
// counts the requests whose signature does not check under secret. While
// down, it answers 503 and keeps nothing.
type collector struct {
	url    string
	secret []byte
	down   atomic.Bool
	mu     sync.Mutex
	lines  [][]byte
	bad    int
}

func newCollector(t *testing.T, secret string) *collector {
	c := &collector{secret: []byte(secret)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if c.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ts, _ := strconv.ParseInt(r.Header.Get("X-Keyward-Timestamp"), 10, 64)
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.Header.Get("X-Keyward-Signature") != audit.Sign(c.secret, ts, body) {
			c.bad++
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			c.lines = append(c.lines, bytes.Clone(sc.Bytes()))
		}
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

// received returns the lines so far and the count of badly signed requests.
func (c *collector) received() ([][]byte, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines), c.bad
}

// With access_webhook set, approvers' tools hear of each access request
// asked for, decided and exchanged, in signed lines that never hold the
// token or its accessor.
func TestAccessWebhook(t *testing.T) {
	const secret = "approvers-secret-0123456789"
	col := newCollector(t, secret)
	cfg := testConfig(t.TempDir())
	cfg.Dev, cfg.Storage = true, "sqlite"
	cfg.AccessWebhook, cfg.AccessWebhookSecret = col.url+"/hook", secret
	r := start(t, cfg, nil)
	u, root := r.url, r.node.DevRootToken()
	putPolicy(t, u, root, "name: prod-read\nrules:\n  - resources: [\"projects/shop/envs/prod/**\"]\n    allow: [read]\n")
	putPolicy(t, u, root, "name: prod-approver\nrules:\n  - resources: [\"sys/access/policies/prod-*\"]\n    allow: [admin]\n")
	if c := call(t, "POST", u+"/v1/identities/users", root, map[string]any{"name": "bob", "password": "correct horse battery", "policies": []string{"prod-approver"}}, nil); c != 201 {
		t.Fatalf("user = %d", c)
	}
	var login struct{ Token string }
	if c := call(t, "POST", u+"/v1/auth/password/login", "", map[string]string{"username": "bob", "password": "correct horse battery"}, &login); c != 200 {
		t.Fatalf("login = %d", c)
	}
	var req struct{ ID string }
	if c := call(t, "POST", u+"/v1/access/requests", root, map[string]any{"policies": []string{"prod-read"}, "ttl": "10m", "reason": "INC-9"}, &req); c != 201 {
		t.Fatalf("request = %d", c)
	}
	if c := call(t, "POST", u+"/v1/access/requests/"+req.ID+"/approve", login.Token, map[string]string{"note": "ok"}, nil); c != 200 {
		t.Fatalf("approve = %d", c)
	}
	var tok struct{ Token, Accessor string }
	if c := call(t, "POST", u+"/v1/access/requests/"+req.ID+"/token", root, nil, &tok); c != 200 || tok.Token == "" {
		t.Fatalf("token = %d", c)
	}

	type event struct {
		Event   string
		Request map[string]any
	}
	want := []string{"access.requested", "access.approved", "access.issued"}
	var got []event
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lines, bad := col.received()
		if bad != 0 {
			t.Fatalf("%d requests with a bad signature", bad)
		}
		got = got[:0]
		for _, l := range lines {
			if bytes.Contains(l, []byte(tok.Token)) || bytes.Contains(l, []byte(tok.Accessor)) {
				t.Fatalf("the webhook was sent the token or its accessor: %s", l)
			}
			var e event
			if err := json.Unmarshal(l, &e); err != nil {
				t.Fatalf("a line that is not JSON: %q", l)
			}
			got = append(got, e)
		}
		if len(got) >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events received: %+v, want %v", got, want)
		}
	}
	for i, w := range want {
		if got[i].Event != w || got[i].Request["id"] != req.ID {
			t.Fatalf("event %d = %+v, want %s of %s", i, got[i], w, req.ID)
		}
	}
	if got[0].Request["reason"] != "INC-9" || got[0].Request["state"] != "pending" || got[1].Request["decided_by"] != "user:bob" || got[1].Request["note"] != "ok" {
		t.Fatalf("events lack the request's facts: %+v", got)
	}
}
