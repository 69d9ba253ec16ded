package gateway

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// wsUpstream accepts WebSocket handshakes that carry the injected key and
// then echoes every read back prefixed with "echo:" (it does not parse
// frames: neither does the proxy).
func wsUpstream(t *testing.T) *upstream {
	return newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testKey || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "no")
			return
		}
		sum := sha1.Sum([]byte(r.Header.Get("Sec-Websocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n" +
			"X-Echo-Auth: " + r.Header.Get("Authorization") + "\r\n\r\n")
		brw.Flush()
		buf := make([]byte, 1024)
		for {
			n, err := brw.Read(buf)
			if err != nil {
				return
			}
			if _, err := conn.Write(append([]byte("echo:"), buf[:n]...)); err != nil {
				return
			}
		}
	})
}

// wsFront serves the proxy over a real HTTP server (sessions hijack the
// connection), with check as every call's session check; calls receive
// each finished call.
func wsFront(t *testing.T, h *harness, check func() error) (url string, calls chan Call) {
	calls = make(chan Call, 16)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/v1/gateway/"), "/")
		pc, err := h.proxy.Prepare(w, r, name, "/"+rest)
		if err == nil {
			pc.SessionCheck = check
			pc.Caller = r.URL.Query().Get("who")
			var c Call
			if c, err = h.proxy.Send(w, r, pc); err == nil {
				calls <- c
				return
			}
		}
		switch {
		case errors.Is(err, ErrWebSocket):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case errors.Is(err, ErrTooManySessions):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		http.Error(w, err.Error(), http.StatusBadGateway)
	}))
	t.Cleanup(front.Close)
	return front.URL, calls
}

// handshake opens a WebSocket through the front and returns the connection
// and the answer's head.
func handshake(t *testing.T, front, path, upgrade string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: keyward.test\r\nConnection: Upgrade\r\nUpgrade: "+upgrade+"\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer kwt_caller\r\n\r\n")
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

func TestWebSocketSession(t *testing.T) {
	h := newHarness(t)
	up := wsUpstream(t)
	h.integration(t, Integration{Name: "ws", Upstream: up.URL, AllowPrivate: true, WebSocket: true, Methods: []string{"GET"}})
	front, calls := wsFront(t, h, nil)
	conn, br, resp := handshake(t, front, "/v1/gateway/ws/chat?room=1", "websocket")
	if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("handshake answer %d %v", resp.StatusCode, resp.Header)
	}
	if resp.Header.Get("X-Echo-Auth") != "" {
		t.Fatal("the 101 answer echoes the injected key")
	}
	got := up.requests()
	if len(got) != 1 || got[0].Header.Get("Authorization") != "Bearer "+testKey || got[0].Path != "/chat" || got[0].Query != "room=1" ||
		got[0].Header.Get("Sec-Websocket-Key") != "dGhlIHNhbXBsZSBub25jZQ==" {
		t.Fatalf("upstream saw %+v", got)
	}
	for _, msg := range []string{"hello", "again"} {
		io.WriteString(conn, msg)
		buf := make([]byte, 64)
		n, err := br.Read(buf)
		if err != nil || string(buf[:n]) != "echo:"+msg {
			t.Fatalf("read %q, %v; want echo:%s", buf[:n], err, msg)
		}
	}
	closed := time.Now()
	conn.Close()
	select {
	case c := <-calls:
		if time.Since(closed) > time.Second {
			t.Errorf("the session took %s to end after the caller closed", time.Since(closed))
		}
		if c.Status != 101 || c.BytesIn != 10 || c.BytesOut != 20 || c.SessionEnded != "caller" {
			t.Fatalf("call = %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not end when the caller closed")
	}
}

// Without the integration's websocket setting a handshake is refused
// before anything is sent; another Upgrade is dropped and the call goes on
// as a plain GET; an upstream that declines answers like any call.
func TestWebSocketRefusedAndDeclined(t *testing.T) {
	h := newHarness(t)
	up := wsUpstream(t)
	h.integration(t, Integration{Name: "plain", Upstream: up.URL, AllowPrivate: true})
	h.integration(t, Integration{Name: "ws", Upstream: up.URL, AllowPrivate: true, WebSocket: true, Secret: "pay/prod/other"})
	h.secrets.set("pay/prod/other", "not-the-key")
	front, _ := wsFront(t, h, nil)
	if _, _, resp := handshake(t, front, "/v1/gateway/plain/chat", "websocket"); resp.StatusCode != 400 {
		t.Fatalf("websocket on a plain integration = %d, want 400", resp.StatusCode)
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("%d upstream requests for a refused handshake", n)
	}
	// A handshake with a body (none is allowed) is refused before anything is sent.
	conn, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /v1/gateway/ws/chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 400 {
		t.Fatalf("handshake with a body: %v %v", resp, err)
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("%d upstream requests after a handshake with a body", n)
	}
	// Upgrade: h2c is no WebSocket: a plain GET without Upgrade goes up.
	_, br, resp := handshake(t, front, "/v1/gateway/plain/x", "h2c")
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
	_ = br
	if resp.StatusCode != 403 || string(body) != "no" {
		t.Fatalf("h2c upgrade = %d %q, want the upstream's plain answer", resp.StatusCode, body)
	}
	if r := up.requests(); len(r) != 1 || r[0].Header.Get("Upgrade") != "" || r[0].Header.Get("Connection") != "" {
		t.Fatalf("upstream saw %+v", r)
	}
	// The upstream declines (it wants another key): its 403 reaches the caller.
	_, _, resp = handshake(t, front, "/v1/gateway/ws/chat", "websocket")
	body, _ = io.ReadAll(io.LimitReader(resp.Body, 100))
	if resp.StatusCode != 403 || string(body) != "no" {
		t.Fatalf("declined handshake = %d %q", resp.StatusCode, body)
	}
}

// A failing session check (the caller's credential was revoked) and the
// proxy's Close end sessions.
func TestWebSocketSessionEnds(t *testing.T) {
	defer func(d time.Duration) { SessionCheckEvery = d }(SessionCheckEvery)
	SessionCheckEvery = 20 * time.Millisecond
	h := newHarness(t)
	up := wsUpstream(t)
	h.integration(t, Integration{Name: "ws", Upstream: up.URL, AllowPrivate: true, WebSocket: true})
	var revoked atomic.Bool
	front, calls := wsFront(t, h, func() error {
		if revoked.Load() {
			return errors.New("revoked")
		}
		return nil
	})
	ended := func(conn net.Conn, br *bufio.Reader, want string) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var ne net.Error
		if _, err := br.ReadByte(); err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the caller's connection is still open: %v", err)
		}
		if c := <-calls; c.SessionEnded != want {
			t.Fatalf("session ended by %q, want %q", c.SessionEnded, want)
		}
	}
	conn, br, resp := handshake(t, front, "/v1/gateway/ws/a", "websocket")
	if resp.StatusCode != 101 {
		t.Fatalf("handshake = %d", resp.StatusCode)
	}
	io.WriteString(conn, "x")
	if b := make([]byte, 6); func() bool { _, err := io.ReadFull(br, b); return err != nil || string(b) != "echo:x" }() {
		t.Fatal("no echo before the revocation")
	}
	revoked.Store(true)
	ended(conn, br, "credential")

	revoked.Store(false)
	conn, br, resp = handshake(t, front, "/v1/gateway/ws/b", "websocket")
	if resp.StatusCode != 101 {
		t.Fatalf("handshake = %d", resp.StatusCode)
	}
	done := make(chan struct{})
	go func() { h.proxy.Close(); close(done) }()
	ended(conn, br, "shutdown")
	<-done
}

// Past MaxSessions a handshake is refused before the upstream is called;
// a slot frees when a session ends.
func TestWebSocketSessionBound(t *testing.T) {
	h := newHarness(t)
	h.proxy.maxSessions = 1
	up := wsUpstream(t)
	h.integration(t, Integration{Name: "ws", Upstream: up.URL, AllowPrivate: true, WebSocket: true})
	front, calls := wsFront(t, h, nil)
	conn, _, resp := handshake(t, front, "/v1/gateway/ws/a", "websocket")
	if resp.StatusCode != 101 {
		t.Fatalf("first handshake = %d", resp.StatusCode)
	}
	if _, _, resp := handshake(t, front, "/v1/gateway/ws/b", "websocket"); resp.StatusCode != 503 {
		t.Fatalf("second handshake = %d, want 503", resp.StatusCode)
	}
	if n := len(up.requests()); n != 1 {
		t.Fatalf("%d upstream handshakes, want 1", n)
	}
	conn.Close()
	<-calls
	if _, _, resp := handshake(t, front, "/v1/gateway/ws/c", "websocket"); resp.StatusCode != 101 {
		t.Fatalf("handshake after the first ended = %d, want 101", resp.StatusCode)
	}
}

// One caller holds at most MaxSessionsPerCaller; others are not affected;
// once the proxy closes, no handshake reaches the upstream.
func TestWebSocketPerCallerBoundAndClose(t *testing.T) {
	h := newHarness(t)
	h.proxy.maxPerCaller = 2
	up := wsUpstream(t)
	h.integration(t, Integration{Name: "ws", Upstream: up.URL, AllowPrivate: true, WebSocket: true})
	front, _ := wsFront(t, h, nil)
	for i, tc := range []struct {
		who  string
		want int
	}{{"a", 101}, {"a", 101}, {"a", 503}, {"b", 101}} {
		if _, _, resp := handshake(t, front, "/v1/gateway/ws/x?who="+tc.who, "websocket"); resp.StatusCode != tc.want {
			t.Fatalf("handshake %d by %s = %d, want %d", i, tc.who, resp.StatusCode, tc.want)
		}
	}
	n := len(up.requests())
	go h.proxy.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.proxy.sessMu.Lock()
		closed := h.proxy.sessClosed
		h.proxy.sessMu.Unlock()
		if closed || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, resp := handshake(t, front, "/v1/gateway/ws/y?who=c", "websocket"); resp.StatusCode != 503 {
		t.Fatalf("handshake after Close = %d, want 503", resp.StatusCode)
	}
	if len(up.requests()) != n {
		t.Fatal("a handshake after Close reached the upstream")
	}
}

func TestWebSocketNeedsGET(t *testing.T) {
	in := Integration{Name: "ws", Upstream: "https://api.example.com", Secret: "a/b/c", Inject: "query:key", WebSocket: true, Methods: []string{"POST"}}
	if _, err := in.Normalize(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "GET") {
		t.Fatalf("websocket without GET: %v", err)
	}
}

// A streamed answer (server-sent events) is cut within the check interval
// once the caller's credential fails its check; a short answer never runs
// the check.
func TestStreamCutWhenCredentialEnds(t *testing.T) {
	defer func(d time.Duration) { SessionCheckEvery = d }(SessionCheckEvery)
	SessionCheckEvery = 30 * time.Millisecond
	h := newHarness(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/short" {
			io.WriteString(w, "done")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 250; i++ {
			if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	})
	h.integration(t, Integration{Name: "sse", Upstream: up.URL, AllowPrivate: true})
	var revoked atomic.Bool
	var checks atomic.Int64
	check := func() error {
		checks.Add(1)
		if revoked.Load() {
			return errors.New("revoked")
		}
		return nil
	}
	send := func(path string) (*httptest.ResponseRecorder, Call, error) {
		r := httptest.NewRequest("GET", "/v1/gateway/sse"+path, nil)
		w := httptest.NewRecorder()
		pc, err := h.proxy.Prepare(w, r, "sse", path)
		if err != nil {
			t.Fatal(err)
		}
		pc.SessionCheck = check
		c, err := h.proxy.Send(w, r, pc)
		return w, c, err
	}
	if w, _, err := send("/short"); err != nil || w.Body.String() != "done" || checks.Load() != 0 {
		t.Fatalf("short answer: %q, %v, %d checks", w.Body, err, checks.Load())
	}
	time.AfterFunc(100*time.Millisecond, func() { revoked.Store(true) })
	start := time.Now()
	w, c, err := send("/events")
	if !errors.Is(err, ErrCredentialEnded) || c.SessionEnded != "credential" || !c.Wrote {
		t.Fatalf("stream: call %+v, err %v", c, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the stream went on for %s after the revocation", d)
	}
	if !strings.HasPrefix(w.Body.String(), "data: tick") {
		t.Fatalf("no event before the cut: %q", w.Body)
	}
}

// A session ends, within the check interval, once its integration no
// longer allows it: deleted, or updated without websocket or without the
// session's path. Another change (a rate, paths that still allow the
// session's) leaves it open.
func TestWebSocketSessionEndsWithItsIntegration(t *testing.T) {
	defer func(d time.Duration) { SessionCheckEvery = d }(SessionCheckEvery)
	SessionCheckEvery = 20 * time.Millisecond
	h := newHarness(t)
	up := wsUpstream(t)
	ws := Integration{Name: "ws", Upstream: up.URL, AllowPrivate: true, WebSocket: true, Secret: "pay/prod/key",
		Inject: "header:Authorization=Bearer {{secret}}"}
	h.integration(t, ws)
	front, calls := wsFront(t, h, nil)
	open := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		conn, br, resp := handshake(t, front, "/v1/gateway/ws/chat", "websocket")
		if resp.StatusCode != 101 {
			t.Fatalf("handshake = %d", resp.StatusCode)
		}
		return conn, br
	}
	echoes := func(conn net.Conn, br *bufio.Reader) bool {
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(conn, "x")
		b := make([]byte, 6)
		_, err := io.ReadFull(br, b)
		return err == nil && string(b) == "echo:x"
	}
	ended := func(conn net.Conn, br *bufio.Reader, what string) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var ne net.Error
		if _, err := br.ReadByte(); err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: the session is still open: %v", what, err)
		}
		select {
		case c := <-calls:
			if c.SessionEnded != "integration" {
				t.Fatalf("%s: session ended by %q, want integration", what, c.SessionEnded)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the session did not end", what)
		}
	}
	update := func(in Integration) {
		t.Helper()
		if _, err := h.svc.Update(t.Context(), in, "test", nil); err != nil {
			t.Fatal(err)
		}
	}

	conn, br := open()
	other := ws
	other.Rate = "100/s"
	update(other)
	time.Sleep(5 * SessionCheckEvery)
	if !echoes(conn, br) {
		t.Fatal("a change of rate ended the session")
	}
	still := ws
	still.Paths = []string{"/chat"}
	update(still)
	time.Sleep(5 * SessionCheckEvery)
	if !echoes(conn, br) {
		t.Fatal("paths that still allow the session's ended it")
	}
	off := ws
	off.WebSocket = false
	update(off)
	ended(conn, br, "websocket turned off")

	update(ws)
	conn, br = open()
	narrow := ws
	narrow.Paths = []string{"/other/**"}
	update(narrow)
	ended(conn, br, "path no longer allowed")

	update(ws)
	conn, br = open()
	if err := h.svc.Delete(t.Context(), "ws", nil); err != nil {
		t.Fatal(err)
	}
	ended(conn, br, "integration deleted")
}

// A handshake to an upstream that is down fails like any call (502), and
// frees its session slot.
func TestWebSocketUpstreamDown(t *testing.T) {
	h := newHarness(t)
	h.proxy.maxSessions = 1
	down := newUpstream(t, nil)
	h.integration(t, Integration{Name: "ws", Upstream: down.URL, AllowPrivate: true, WebSocket: true})
	down.Close()
	front, _ := wsFront(t, h, nil)
	for i := range 2 {
		if _, _, resp := handshake(t, front, "/v1/gateway/ws/x", "websocket"); resp.StatusCode != 502 {
			t.Fatalf("handshake %d to a down upstream = %d, want 502", i, resp.StatusCode)
		}
	}
}
