package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// SessionCheckEvery is how often a WebSocket session's or a streamed
// answer's SessionCheck runs: a revocation reaches open sessions within
// about a second, as it reaches new requests. A check is a cache lookup
// and a policy decision (microseconds), so 10,000 sessions cost a few
// milliseconds of CPU a second.
var SessionCheckEvery = time.Second

// sessionDrain is how long the other direction of a session may go on
// once one side has closed (for the closing handshake's last frames).
const sessionDrain = 2 * time.Second

// isWebSocketHandshake reports whether r opens a WebSocket session (RFC
// 6455 §4.1): a GET with "Upgrade: websocket" and "upgrade" among the
// Connection tokens. Any other Upgrade is dropped like every hop-by-hop
// header and the request goes on as a plain call.
func isWebSocketHandshake(r *http.Request, conn map[string]bool) bool {
	return r.Method == http.MethodGet && conn["Upgrade"] && strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket")
}

// session joins the caller's connection to up, the upstream's connection
// that answered the handshake with 101 (resp), until one side closes, the
// session check fails, the integration no longer allows the session or
// the proxy closes.
func (p *Proxy) session(w http.ResponseWriter, pc Prepared, cr *credential, resp *http.Response, up *pconn) (Call, error) {
	var call Call
	c := pc.c
	if !strings.EqualFold(strings.TrimSpace(resp.Header.Get("Upgrade")), "websocket") || !connectionTokens(resp.Header)["Upgrade"] {
		up.conn.Close()
		return call, fmt.Errorf("%w: it switched protocols without accepting the WebSocket upgrade", ErrUpstreamUnavailable)
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.conn.Close()
		return call, fmt.Errorf("%w: %w", ErrWebSocket, err)
	}
	defer conn.Close()
	defer up.conn.Close()
	conn.SetDeadline(time.Time{}) // the server's read and write timeouts
	h := w.Header()
	copyResponseHeader(h, resp.Header, c.strip, cr.needles)
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	h.Write(brw) // values from our own headers and http.ReadResponse's: no CR or LF
	brw.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	call.Status, call.Wrote = http.StatusSwitchingProtocols, true
	if err := brw.Flush(); err != nil {
		return call, nil // the caller left; nothing to report
	}
	check := func() error {
		if err := p.stillAllows(pc); err != nil {
			return err
		}
		if pc.SessionCheck != nil {
			return pc.SessionCheck()
		}
		return nil
	}
	start := time.Now()
	call.BytesIn, call.BytesOut, call.SessionEnded = p.join(conn, brw.Reader, up, check)
	call.Duration = time.Since(start)
	return call, nil
}

// errIntegrationChanged: the integration a session was opened through no
// longer allows it.
var errIntegrationChanged = errors.New("the integration no longer allows the session")

// stillAllows checks that the integration pc was prepared with still
// allows its session: it exists, allows WebSocket sessions, GET and the
// session's path, names the same upstream, and has not lost allow_private.
// Other changes (rates, the secret) leave the session open, and so does a
// failure to read the integration (the next check tries again).
func (p *Proxy) stillAllows(pc Prepared) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	was := pc.c
	c, err := p.svc.lookup(ctx, was.in.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		return errIntegrationChanged
	case err != nil, c == was:
		return nil
	case !c.in.WebSocket || !c.allowsMethod(http.MethodGet) || !c.allowsPath(pc.path.Segs) ||
		c.scheme != was.scheme || c.addr != was.addr || c.host != was.host || c.baseRaw != was.baseRaw ||
		was.in.AllowPrivate && !c.in.AllowPrivate:
		return errIntegrationChanged
	}
	return nil
}

// join copies between the caller (conn, read through br, which may hold
// bytes already) and the upstream until one side closes, check fails
// (every SessionCheckEvery), or the proxy closes; the other direction then
// gets sessionDrain to finish.
func (p *Proxy) join(conn net.Conn, br *bufio.Reader, up *pconn, check func() error) (in, out int64, ended string) {
	closing := p.sessClosing // the slot reserved in session keeps Close waiting
	type result struct {
		fromCaller bool
		n          int64
	}
	done := make(chan result, 2)
	go func() {
		n, _ := io.Copy(up.conn, br)
		done <- result{true, n}
	}()
	go func() {
		n, _ := io.Copy(conn, up.br)
		done <- result{false, n}
	}()
	record := func(r result) {
		if r.fromCaller {
			in = r.n
		} else {
			out = r.n
		}
	}
	failed := make(chan error, 1)
	defer watch(check, func(err error) { failed <- err })()
	pending := 2
wait:
	for {
		select {
		case r := <-done:
			record(r)
			pending--
			ended = "upstream"
			if r.fromCaller {
				ended = "caller"
			}
			break wait
		case err := <-failed:
			ended = "credential"
			if errors.Is(err, errIntegrationChanged) {
				ended = "integration"
			}
			break wait
		case <-closing:
			ended = "shutdown"
			break wait
		}
	}
	if ended == "caller" || ended == "upstream" {
		// Pass the end on (the other side reads EOF), let the other
		// direction finish its last frames, then cut both.
		if ended == "caller" {
			closeWrite(up.conn)
		} else {
			closeWrite(conn)
		}
		deadline := time.Now().Add(sessionDrain)
		conn.SetDeadline(deadline)
		up.conn.SetDeadline(deadline)
	} else {
		conn.Close()
		up.conn.Close()
	}
	for ; pending > 0; pending-- {
		record(<-done)
	}
	return in, out, ended
}

// closeWrite ends what is sent on c (a TCP half-close, or TLS's
// close_notify), or closes c when it cannot.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	c.Close()
}

// watch calls check every SessionCheckEvery until stop is called; the
// first time check fails it calls cut with the error and stops. stop
// reports whether cut was called. Streamed answers and WebSocket sessions
// are both re-checked this way.
func watch(check func() error, cut func(error)) (stop func() bool) {
	var mu sync.Mutex
	var failed, stopped bool
	var t *time.Timer
	mu.Lock()
	t = time.AfterFunc(SessionCheckEvery, func() {
		err := check()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case stopped:
		case err != nil:
			failed = true
			cut(err)
		default:
			t.Reset(SessionCheckEvery)
		}
	})
	mu.Unlock()
	return func() bool {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
		return failed
	}
}

// reserveSession takes a session slot for caller (a credential's id; ""
// counts only toward the node's bound) before the upstream is called:
// none once the proxy closes, none past the node's or the caller's bound.
func (p *Proxy) reserveSession(caller string) (release func(), err error) {
	p.sessMu.Lock()
	defer p.sessMu.Unlock()
	switch {
	case p.sessClosed:
		return nil, fmt.Errorf("%w: the gateway is shutting down", ErrTooManySessions) // and no Add after Wait
	case p.sessOpen >= p.maxSessions:
		return nil, ErrTooManySessions
	case caller != "" && p.sessByCaller[caller] >= p.maxPerCaller:
		return nil, fmt.Errorf("%w: this caller holds %d sessions already", ErrTooManySessions, p.maxPerCaller)
	}
	p.sessOpen++
	if caller != "" {
		p.sessByCaller[caller]++
	}
	p.sessions.Add(1) // Close waits for the slot's release
	return func() {
		defer p.sessions.Done()
		p.sessMu.Lock()
		defer p.sessMu.Unlock()
		p.sessOpen--
		if caller != "" {
			if p.sessByCaller[caller]--; p.sessByCaller[caller] <= 0 {
				delete(p.sessByCaller, caller)
			}
		}
	}, nil
}

// closeSessions ends every WebSocket session and waits for them.
func (p *Proxy) closeSessions() {
	p.sessMu.Lock()
	if !p.sessClosed {
		p.sessClosed = true
		close(p.sessClosing)
	}
	p.sessMu.Unlock()
	p.sessions.Wait()
}
