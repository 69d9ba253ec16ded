package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// With audit_webhook set, every audit entry reaches the collector, in
// requests signed with the shared secret.
func TestAuditWebhookSink(t *testing.T) {
	const secret = "collector-secret-0123456789"
	var mu sync.Mutex
	var entries []audit.Entry
	bad := 0
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get("X-Keyward-Timestamp"), 10, 64)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("X-Keyward-Signature") != audit.Sign([]byte(secret), ts, body) {
			bad++
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			var e audit.Entry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				entries = append(entries, e)
			}
		}
	}))
	defer col.Close()
	cfg := testConfig(t.TempDir())
	cfg.Dev, cfg.Storage = true, "sqlite"
	cfg.AuditWebhook, cfg.AuditWebhookSecret = col.URL+"/collect", secret
	r := start(t, cfg, nil)
	if c := call(t, "POST", r.url+"/v1/projects", r.node.DevRootToken(), map[string]string{"name": "shop"}, nil); c != 201 {
		t.Fatalf("create project = %d", c)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		found := false
		for _, e := range entries {
			found = found || e.Resource == "projects" && e.Detail["project"] == "shop" && e.Action == "write" && e.Status == 201
		}
		mu.Unlock()
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the project's audit entry never reached the collector: %+v", entries)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d requests with a bad signature", bad)
	}
}
