package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/gateway"
	"github.com/keyward/keyward/internal/token"
)

// A WebSocket session through a whole node: the app's handshake carries its
// keyward token, the upstream's the real key; frames pass both ways; when
// the app's token is revoked mid-session, the session is cut within the
// check interval; the session's audit entry says how it ended.
func TestGatewayWebSocketRevokedMidSession(t *testing.T) {
	r, _ := wsRealtime(t, 50*time.Millisecond)
	u := r.url
	app, _, err := r.node.tokens.Issue(t.Context(), token.Request{Principal: "app:voice", AuthMethod: "token", Policies: []string{"root"}, TTL: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, br, resp := wsOpen(t, u, app)
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatal("no X-Request-Id on the 101")
	}
	io.WriteString(conn, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	if c := call(t, "POST", u+"/v1/auth/token/revoke-self", app, nil, nil); c != 204 && c != 200 {
		t.Fatalf("revoke = %d", c)
	}
	revoked := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the revocation the session reads %v, want EOF", err)
	}
	if d := time.Since(revoked); d > 2*time.Second {
		t.Errorf("the session lasted %s after the revocation", d)
	}
	// The entry: status 101, the bytes, how it ended.
	var entry *audit.Entry
	for deadline := time.Now().Add(10 * time.Second); entry == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		es, err := r.node.auditLog.List(t.Context(), audit.Filter{ResourcePrefix: "integrations/realtime", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for i := range es {
			if es[i].Action == "proxy" && es[i].Status == 101 {
				entry = &es[i]
			}
		}
	}
	if entry == nil {
		t.Fatal("no audit entry for the session")
	}
	if d := entry.Detail; d["websocket"] != "true" || d["ended_by"] != "credential" || d["bytes_in"] != "4" || d["bytes_out"] != "4" || d["duration_ms"] == "" {
		t.Fatalf("session entry detail = %v", d)
	}
}

// A streamed answer through a node is cut when the app's token is revoked
// mid-stream; the client sees a truncated answer, not a complete one.
func TestGatewayStreamRevokedMidStream(t *testing.T) {
	// Restored after the node stops (cleanups run last-in first-out).
	t.Cleanup(func(d time.Duration) func() { return func() { gateway.SessionCheckEvery = d } }(gateway.SessionCheckEvery))
	gateway.SessionCheckEvery = 50 * time.Millisecond
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for range 250 {
			if _, err := io.WriteString(w, "data: token\n\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	}))
	defer up.Close()
	r, root := devNode(t)
	u := r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "ai"}, nil)
	call(t, "PUT", u+"/v1/projects/ai/envs/prod/secrets/key", root, map[string]string{"value": "llm-key-value-77"}, nil)
	if c := call(t, "POST", u+"/v1/integrations", root, map[string]any{"name": "llm", "upstream": up.URL, "secret": "ai/prod/key",
		"inject": "header:Authorization=Bearer {{secret}}", "allow_private": true}, nil); c != 201 {
		t.Fatalf("create integration = %d", c)
	}
	app, _, err := r.node.tokens.Issue(t.Context(), token.Request{Principal: "app:chat", AuthMethod: "token", Policies: []string{"root"}, TTL: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", u+"/v1/gateway/llm/v1/chat", nil)
	req.Header.Set("Authorization", "Bearer "+app)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: token\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	if c := call(t, "POST", u+"/v1/auth/token/revoke-self", app, nil, nil); c != 204 && c != 200 {
		t.Fatalf("revoke = %d", c)
	}
	revoked := time.Now()
	_, err = io.Copy(io.Discard, br)
	if err == nil {
		t.Fatal("the stream ended cleanly after the revocation; want it cut")
	}
	if d := time.Since(revoked); d > 2*time.Second {
		t.Fatalf("the stream went on for %s after the revocation", d)
	}
}

// The session check of a WebSocket session re-checks the caller's token
// without spending a use of a use-limited token: the handshake is the one
// use, and a session of a token with max_uses 1 goes on until a side
// closes.
func TestGatewayWebSocketCheckSpendsNoUse(t *testing.T) {
	r, _ := wsRealtime(t, 20*time.Millisecond)
	u := r.url
	app, tok, err := r.node.tokens.Issue(t.Context(), token.Request{Principal: "app:voice", AuthMethod: "token", Policies: []string{"root"}, TTL: time.Hour, MaxUses: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, br, _ := wsOpen(t, u, app)
	time.Sleep(10 * gateway.SessionCheckEvery) // several checks
	io.WriteString(conn, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("after a few checks the session reads %q, %v; want its echo", buf, err)
	}
	got, err := r.node.tokens.Lookup(t.Context(), tok.Accessor)
	if err != nil {
		t.Fatal(err)
	}
	if got.Uses != 1 {
		t.Fatalf("the token has %d uses after one handshake, want 1", got.Uses)
	}
}

// wsRealtime runs a dev node with an echoing WebSocket upstream behind the
// integration "realtime" (which needs the key), the check interval set to
// every (restored after the node stops).
func wsRealtime(t *testing.T, every time.Duration) (r *running, root string) {
	t.Helper()
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	return wsRealtimeOn(t, every, cfg)
}

// wsRealtimeOn is wsRealtime with a node of cfg (a dev node).
func wsRealtimeOn(t *testing.T, every time.Duration, cfg config.Config) (r *running, root string) {
	t.Helper()
	t.Cleanup(func(d time.Duration) func() { return func() { gateway.SessionCheckEvery = d } }(gateway.SessionCheckEvery))
	gateway.SessionCheckEvery = every
	const key = "ws-upstream-key-0b7e" // keyward:allow (test fixture)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key || r.Header.Get("Upgrade") != "websocket" {
			w.WriteHeader(403)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw) // echo
	}))
	t.Cleanup(up.Close)
	r = start(t, cfg, nil)
	root = r.node.DevRootToken()
	u := r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "ai"}, nil)
	if c := call(t, "PUT", u+"/v1/projects/ai/envs/prod/secrets/key", root, map[string]string{"value": key}, nil); c != 200 {
		t.Fatalf("put secret = %d", c)
	}
	if c := call(t, "POST", u+"/v1/integrations", root, map[string]any{"name": "realtime", "upstream": up.URL, "secret": "ai/prod/key",
		"inject": "header:Authorization=Bearer {{secret}}", "allow_private": true, "websocket": true, "methods": []string{"GET"}}, nil); c != 201 {
		t.Fatalf("create integration = %d", c)
	}
	return r, root
}

// wsOpen opens a session through "realtime" with tok and returns the
// connection's reader after the 101.
func wsOpen(t *testing.T, u, tok string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(u, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	io.WriteString(conn, "GET /v1/gateway/realtime/v1/stream HTTP/1.1\r\nHost: keyward\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer "+tok+"\r\n\r\n")
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return conn, br, resp
}
