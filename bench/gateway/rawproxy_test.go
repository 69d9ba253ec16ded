package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// startRawProxy runs rawproxy in front of upstream and returns its address.
func startRawProxy(t *testing.T, upstream *httptest.Server, key string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveRawListener(ln, strings.TrimPrefix(upstream.URL, "http://"), "Bearer "+key, nil)
	return ln.Addr().String()
}

func TestRawProxyForwards(t *testing.T) {
	const key = "k-0123" // keyward:allow (test fixture)
	var upConns atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "Bearer "+key {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(body))
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			upConns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	addr := startRawProxy(t, up, key)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	call := func(req string) (status int, body string) {
		t.Helper()
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		hreq, _ := http.ReadRequest(bufio.NewReader(strings.NewReader(req)))
		resp, err := http.ReadResponse(br, hreq)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	// The client's credential is replaced; one without any gets the key too.
	if s, b := call("GET /v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer client-token\r\n\r\n"); s != 200 || b != "GET /v1/ping " {
		t.Errorf("GET: %d %q", s, b)
	}
	if s, b := call("POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"); s != 200 || b != "POST /v1/echo hello" {
		t.Errorf("POST: %d %q", s, b)
	}
	if s, b := call("HEAD /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n"); s != 200 || b != "" {
		t.Errorf("HEAD: %d %q", s, b)
	}
	if s, b := call("GET /empty HTTP/1.1\r\nhost: x\r\nauthorization: Bearer other\r\n\r\n"); s != 204 || b != "" {
		t.Errorf("204: %d %q", s, b)
	}
	if s, _ := call("GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n"); s != 200 {
		t.Errorf("GET after HEAD and 204: %d", s)
	}
	if n := upConns.Load(); n != 1 {
		t.Errorf("%d upstream connections for one client connection, want 1", n)
	}

	// A chunked request is refused by closing, with no answer.
	if _, err := io.WriteString(c, "POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
		t.Errorf("after a chunked request: read %q, %v; want the connection closed", b, err)
	}
}

// With -audit, rawproxy appends one entry per forwarded call, shaped like
// the gateway's, to a log that verifies.
func TestRawProxyAudit(t *testing.T) {
	const key = "k-0123" // keyward:allow (test fixture)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		io.Copy(w, r.Body)
	}))
	defer up.Close()
	calls, err := openCallLog(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveRawListener(ln, strings.TrimPrefix(up.URL, "http://"), "Bearer "+key, calls)

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, req := range []string{
		"GET /v1/ping?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	// The entries are queued (AppendAsync); the batch commits within the
	// log's delay.
	var got []audit.Entry
	for deadline := time.Now().Add(10 * time.Second); len(got) < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got, err = calls.log.List(t.Context(), audit.Filter{}); err != nil {
			t.Fatal(err)
		}
	}
	want := []struct {
		method, path, bytesIn, bytesOut string
		status                          int
		outcome                         string
	}{
		{"GET", "/v1/ping?x=1", "0", "0", 200, audit.OutcomeAllowed},
		{"POST", "/v1/echo", "5", "5", 200, audit.OutcomeAllowed},
		{"GET", "/fail", "0", "0", 502, audit.OutcomeError},
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		e := got[i]
		if e.Action != "proxy" || e.Resource != "integrations/up" || e.Status != w.status || e.Outcome != w.outcome ||
			e.Detail["method"] != w.method || e.Detail["path"] != w.path ||
			e.Detail["bytes_in"] != w.bytesIn || e.Detail["bytes_out"] != w.bytesOut || len(e.RequestID) != 32 {
			t.Errorf("entry %d: %+v, want %+v", i, e, w)
		}
	}
	if res, err := calls.log.Verify(t.Context()); err != nil || res.FirstBad != 0 {
		t.Errorf("Verify: %+v, %v", res, err)
	}
	if err := calls.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
