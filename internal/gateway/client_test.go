package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// connCounter counts the connections an upstream accepted.
type connCounter struct {
	mu sync.Mutex
	n  int
}

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
}

func (c *connCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func countingUpstream(t *testing.T, h http.HandlerFunc) (*httptest.Server, *connCounter) {
	cc := &connCounter{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = cc.hook
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cc
}

func TestClientReusesConnections(t *testing.T) {
	h := newHarness(t)
	srv, cc := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/chunked" {
			w.Write([]byte("a"))
			w.(http.Flusher).Flush()
			w.Write([]byte("b"))
			return
		}
		io.WriteString(w, "ok")
	})
	h.integration(t, Integration{Name: "api", Upstream: srv.URL, AllowPrivate: true})
	for i, tc := range []struct{ method, path, body, want string }{
		{"GET", "/x", "", "ok"}, {"HEAD", "/x", "", ""}, {"POST", "/x", "payload", "ok"},
		{"GET", "/chunked", "", "ab"}, {"DELETE", "/x", "", "ok"}, {"PUT", "/x", "", "ok"},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		w, _, err := h.call(t, httptest.NewRequest(tc.method, "/v1/gateway/api"+tc.path, body))
		if err != nil || w.Code != 200 || w.Body.String() != tc.want {
			t.Fatalf("call %d (%s %s): %v %d %q", i, tc.method, tc.path, err, w.Code, w.Body)
		}
	}
	if n := cc.count(); n != 1 {
		t.Errorf("six sequential calls used %d connections, want 1", n)
	}
}

// A pooled connection the upstream closed while idle: a body-less request
// is sent again on a fresh one; a request with a body never takes it.
func TestClientStaleConnection(t *testing.T) {
	h := newHarness(t)
	srv, cc := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	h.integration(t, Integration{Name: "api", Upstream: srv.URL, AllowPrivate: true})
	get := func(method, body string) {
		t.Helper()
		w, _, err := h.call(t, httptest.NewRequest(method, "/v1/gateway/api/x", strings.NewReader(body)))
		if err != nil || w.Code != 200 || w.Body.String() != body {
			t.Fatalf("%s: %v %d %q", method, err, w.Code, w.Body)
		}
	}
	get("GET", "")
	srv.CloseClientConnections()
	get("GET", "")
	srv.CloseClientConnections()
	get("POST", "body that cannot be sent twice")
	if n := cc.count(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

func TestClientDoesNotReuseAfterConnectionClose(t *testing.T) {
	h := newHarness(t)
	srv, cc := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	h.integration(t, Integration{Name: "api", Upstream: srv.URL, AllowPrivate: true})
	for range 3 {
		if w, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/api/x", nil)); err != nil || w.Body.String() != "bye" {
			t.Fatalf("%v %q", err, w.Body)
		}
	}
	if n := cc.count(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

func TestClientRefusesHugeResponseHead(t *testing.T) {
	h := newHarness(t)
	srv, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 40 {
			w.Header().Set("X-Big-"+strings.Repeat("a", i), strings.Repeat("b", 2000))
		}
	})
	h.integration(t, Integration{Name: "api", Upstream: srv.URL, AllowPrivate: true})
	_, c, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/api/x", nil))
	if !errors.Is(err, ErrUpstreamUnavailable) || c.Wrote {
		t.Fatalf("80 KB response head: %v", err)
	}
}

// A caller that stops reading mid-body gets the connection closed, not
// pooled with half a response in it.
func TestClientInterruptedBodyClosesTheConnection(t *testing.T) {
	h := newHarness(t)
	srv, cc := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 1<<20))
	})
	h.integration(t, Integration{Name: "api", Upstream: srv.URL, AllowPrivate: true})
	w := &failingWriter{ResponseRecorder: httptest.NewRecorder(), after: 1000}
	req := httptest.NewRequest("GET", "/v1/gateway/api/x", nil)
	c, err := forward(h.proxy, w, req, "api", "/x")
	if err == nil || !c.Wrote {
		t.Fatalf("interrupted copy: %v %+v", err, c)
	}
	if wr, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/api/x", nil)); err != nil || wr.Body.Len() != 1<<20 {
		t.Fatalf("next call: %v %d", err, wr.Body.Len())
	}
	if n := cc.count(); n != 2 {
		t.Errorf("%d connections, want 2 (the interrupted one not reused)", n)
	}
}

type failingWriter struct {
	*httptest.ResponseRecorder
	after int
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.Body.Len()+len(p) > f.after {
		return 0, errors.New("client went away")
	}
	return f.ResponseRecorder.Write(p)
}

func TestKeepAliveUntil(t *testing.T) {
	now := time.Now()
	if u := keepAliveUntil("timeout=5, max=100"); u.Before(now.Add(3*time.Second)) || u.After(now.Add(5*time.Second)) {
		t.Errorf("timeout=5 -> %v", u.Sub(now))
	}
	if u := keepAliveUntil("timeout=1"); u.After(time.Now()) {
		t.Errorf("timeout=1 -> %v", u.Sub(now))
	}
	if u := keepAliveUntil("max=3"); !u.IsZero() {
		t.Errorf("no timeout -> %v", u)
	}
}

func TestClientHTTPSUpstream(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		io.WriteString(w, "secure")
	}))
	defer srv.Close()
	st := newHarness(t)
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	st.proxy = NewProxy(st.svc, st.secrets, TransportOptions{RootCAs: pool})
	defer st.proxy.Close()
	st.integration(t, Integration{Name: "tls", Upstream: srv.URL, AllowPrivate: true})
	for range 2 {
		w, _, err := st.call(t, httptest.NewRequest("GET", "/v1/gateway/tls/x", nil))
		if err != nil || w.Body.String() != "secure" {
			t.Fatalf("https call: %v %q", err, w.Body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "Bearer "+testKey {
		t.Errorf("upstream saw %q", seen)
	}
	// Without the test CA the certificate is refused: 502, nothing sent.
	plain := NewProxy(st.svc, st.secrets, TransportOptions{})
	defer plain.Close()
	_, err := forward(plain, httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), "tls", "/x")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", err)
	}
}

// A response's cut (the stream watch's, from another goroutine) that comes
// after the body was read to its end and the connection went back to the
// pool must not reach the next request on that connection.
func TestClientCutAfterTheEndSparesThePooledConnection(t *testing.T) {
	srv, cc := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	})
	cl := newClient(true, TransportOptions{})
	addr := strings.TrimPrefix(srv.URL, "http://")
	req := func(path string) *upstreamRequest {
		return &upstreamRequest{method: "GET", scheme: "http", host: addr, addr: addr, key: poolKey("http", addr), target: path, deadline: time.Now().Add(5 * time.Second)}
	}
	resp, err := cl.roundTrip(t.Context(), req("/first"))
	if err != nil {
		t.Fatal(err)
	}
	first := resp.Body.(*upstreamBody)
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "ok" {
		t.Fatalf("first body %q, %v", b, err)
	}
	resp.Body.Close() // the connection is back in the pool
	done := make(chan error, 1)
	go func() {
		resp, err := cl.roundTrip(t.Context(), req("/slow"))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the second request waits on the pooled connection
	first.cut()
	if err := <-done; err != nil {
		t.Fatalf("the request after a late cut failed: %v", err)
	}
	if n := cc.count(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// A caller whose context ends (it went away) cuts the upstream call at
// once, long before the integration's timeout; a context that cannot end
// is not watched, and its connection still goes back to the pool
// (TestClientReusesConnections).
func TestClientCallerGoesAway(t *testing.T) {
	h := newHarness(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	srv, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
	})
	defer close(release)
	h.integration(t, Integration{Name: "api", Upstream: srv.URL, AllowPrivate: true, Timeout: Duration(30 * time.Second)})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	start := time.Now()
	_, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/api/slow", nil).WithContext(ctx))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("call = %v, want the caller's context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the call ended after %s: the caller's end did not cut it", d)
	}
}

// A pooled connection keeps its last call's deadline while idle: once that
// has passed, the connection still carries the next calls, a request with
// a body (which checks the idle socket first) as well as one without, each
// under its own deadline.
func TestClientReusesConnectionPastItsLastDeadline(t *testing.T) {
	srv, cc := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(append([]byte("ok:"), b...))
	})
	cl := newClient(true, TransportOptions{})
	t.Cleanup(func() { cl.closeIdle(true) })
	addr := strings.TrimPrefix(srv.URL, "http://")
	call := func(method, body string, timeout time.Duration) {
		t.Helper()
		req := &upstreamRequest{method: method, scheme: "http", host: addr, addr: addr, key: poolKey("http", addr), target: "/x",
			deadline: time.Now().Add(timeout)}
		if body != "" {
			req.body, req.contentLength = strings.NewReader(body), int64(len(body))
		}
		resp, err := cl.roundTrip(t.Context(), req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "ok:"+body {
			t.Fatalf("%s: body %q, %v", method, b, err)
		}
	}
	call("GET", "", 100*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // its deadline passes while it is idle
	call("POST", "not replayable", 5*time.Second)
	call("GET", "", 100*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	call("GET", "", 5*time.Second)
	if n := cc.count(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// deferringConn is a connection with a Defer (as sockio's): it records
// what is deferred and what is written, and answers every read from
// answer.
type deferringConn struct {
	net.Conn
	deferred, written strings.Builder
	answer            *strings.Reader
}

func (c *deferringConn) Defer(p []byte)                     { c.deferred.Write(p) }
func (c *deferringConn) Write(p []byte) (int, error)        { return c.written.Write(p) }
func (c *deferringConn) Read(p []byte) (int, error)         { return c.answer.Read(p) }
func (c *deferringConn) SetDeadline(time.Time) error        { return nil }
func (c *deferringConn) Close() error                       { return nil }
func (c *deferringConn) SetReadDeadline(time.Time) error    { return nil }
func (c *deferringConn) SetWriteDeadline(t time.Time) error { return nil }

// A body-less request goes to the connection's Defer, to be sent with the
// read of its answer; a request with a body is written at once.
func TestExchangeDefersBodylessRequests(t *testing.T) {
	for _, withBody := range []bool{false, true} {
		fc := &deferringConn{answer: strings.NewReader("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")}
		pc := &pconn{conn: fc}
		pc.cr.r = fc
		pc.br = bufio.NewReader(&pc.cr)
		pc.bw = bufio.NewWriter(pcWriter{pc})
		req := &upstreamRequest{method: "GET", host: "up", target: "/x", deadline: time.Now().Add(time.Minute)}
		if withBody {
			req.method, req.body, req.contentLength = "POST", strings.NewReader("abc"), 3
		}
		resp, err := (&client{}).exchange(context.Background(), pc, req)
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("body %v: %v, %v", withBody, resp, err)
		}
		sent, other := fc.deferred.String(), fc.written.String()
		if withBody {
			sent, other = other, sent
		}
		if !strings.HasPrefix(sent, req.method+" /x HTTP/1.1\r\nHost: up\r\n") || other != "" {
			t.Errorf("body %v: deferred %q, written %q", withBody, fc.deferred.String(), fc.written.String())
		}
		if pc.deferTo != nil {
			t.Errorf("body %v: the connection is still deferring after the request", withBody)
		}
	}
}

// deadlineConn records the deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error { c.set = append(c.set, t); return nil }

// A call's deadline may run late by a 64th of its time (at most
// maxDeadlineSlack), never early; calls due within that keep the
// connection's deadline, and a cut's deadline, or none, is never kept.
func TestCallDeadlineKeptWithinItsSlack(t *testing.T) {
	fc := &deadlineConn{}
	pc := &pconn{conn: fc}
	start := time.Now()
	const timeout, slack = 640 * time.Millisecond, 10 * time.Millisecond
	var now, d time.Time
	for i := range 100 { // calls 1 ms apart
		now = start.Add(time.Duration(i) * time.Millisecond)
		d = now.Add(timeout)
		pc.callDeadline(d, now)
		if late := fc.set[len(fc.set)-1].Sub(d); late < 0 || late > slack {
			t.Fatalf("call %d: the connection's deadline is %v after the call's", i, late)
		}
	}
	if n := len(fc.set); n != 10 { // at calls 0, 11, 22, ... 99
		t.Errorf("%d deadline changes for 100 calls, want 10", n)
	}
	for _, other := range []time.Time{time.Unix(1, 0), {}} {
		pc.setDeadline(other)
		pc.callDeadline(d, now)
		if got := fc.set[len(fc.set)-1]; !got.Equal(d.Add(slack)) {
			t.Errorf("after a deadline of %v: %v, want the call's own", other, got)
		}
	}
	now = time.Now()
	d = now.Add(time.Hour)
	pc.callDeadline(d, now)
	if late := fc.set[len(fc.set)-1].Sub(d); late != maxDeadlineSlack {
		t.Errorf("a call of an hour: deadline %v late, want %v", late, maxDeadlineSlack)
	}
	pc.callDeadline(d.Add(time.Millisecond), time.Time{}) // no clock: no slack
	if got := fc.set[len(fc.set)-1]; !got.Equal(d.Add(time.Millisecond)) {
		t.Errorf("without the call's start: %v, want its deadline", got)
	}
}
