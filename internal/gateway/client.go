package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/sockio"
)

// client is the proxy's HTTP/1.1 client. A call takes a keep-alive
// connection from a per-upstream pool (or dials one through the guarded
// dialer), writes the request and reads the response head on the caller's
// goroutine, and streams the body from the same connection; the connection
// goes back to the pool when the body has been read to its end.
//
// net/http.Transport runs two goroutines per connection and hands every
// request and response between them over channels; for small calls that
// bookkeeping cost more CPU than the whole of the rest of the proxy. This
// client keeps only what a proxy needs: HTTP/1.1 (no HTTP/2, no proxies,
// no compression, no redirects), the response head parsed by net/http's
// own http.ReadResponse unless it is of the simple kind fastResponse
// reads (response.go), bounded response heads, one retry of a body-less
// request on a fresh connection when a pooled one turns out to be closed.
type client struct {
	dialer      *net.Dialer
	tls         *tls.Config
	maxIdle     int           // idle connections kept per upstream
	idleTimeout time.Duration // an idle connection older than this is not reused

	mu     sync.Mutex
	idle   map[string]*idlePool // by poolKey; entries stay, emptied by closeIdle
	closed bool
}

// Limits of the client.
const (
	maxResponseHead     = 64 << 10
	defaultIdleTimeout  = 30 * time.Second
	replayableIdleLimit = time.Second // a request with a body never goes on a connection idle longer
)

func newClient(allowPrivate bool, o TransportOptions) *client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.ControlContext = guard
	}
	if o.MaxIdlePerHost <= 0 {
		o.MaxIdlePerHost = 256
	}
	return &client{
		dialer: d, maxIdle: o.MaxIdlePerHost, idleTimeout: defaultIdleTimeout,
		tls:  &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs, NextProtos: []string{"http/1.1"}},
		idle: map[string]*idlePool{},
	}
}

// poolKey names the idle pool of the connections to addr over scheme:
// "scheme://addr". It is computed once per integration (and token
// endpoint), not per call.
func poolKey(scheme, addr string) string { return scheme + "://" + addr }

// idlePool holds the idle connections to one upstream, most recently
// used last, under client.mu.
type idlePool struct{ conns []*pconn }

// pool returns the idle pool of key, made on first use.
func (c *client) pool(key string) *idlePool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.idle[key]
	if p == nil {
		p = &idlePool{}
		c.idle[key] = p
	}
	return p
}

// pconn is a connection to an upstream.
type pconn struct {
	pool      *idlePool // where it waits between calls
	conn      net.Conn
	deferTo   sockio.Deferrer // set while a body-less request is written (pcWriter)
	cr        countingReader  // what br reads from
	br        *bufio.Reader
	bw        *bufio.Writer
	idleUntil time.Time
	idleSince time.Time
	// deadline is the read and write deadline last set on conn by its
	// owner (setDeadline), or by a cut (upstreamBody.cut). The cut of a
	// caller that went away (exchange's AfterFunc) is not recorded: its
	// connection is closed, never pooled.
	deadline time.Time
}

// setDeadline sets conn's read and write deadline to t and remembers it.
func (pc *pconn) setDeadline(t time.Time) error {
	pc.deadline = t
	return pc.conn.SetDeadline(t)
}

// maxDeadlineSlack bounds how late a call's timeout may fire (callDeadline).
const maxDeadlineSlack = 100 * time.Millisecond

// callDeadline bounds pc's reads and writes for a call due at d that began
// at now: a deadline at most a 64th of the call's time (and
// maxDeadlineSlack) after d. The deadline of an earlier call that falls
// there is kept: on a pooled connection that carries a call every few
// milliseconds, most calls then change no deadline, which costs a runtime
// timer update. Without now (zero), d itself.
func (pc *pconn) callDeadline(d, now time.Time) {
	var slack time.Duration
	if !now.IsZero() {
		slack = min(d.Sub(now)/64, maxDeadlineSlack)
	}
	if late := pc.deadline.Sub(d); late >= 0 && late <= slack { // none (zero) is far before d
		return
	}
	pc.setDeadline(d.Add(slack))
}

// countingReader counts what is read from the connection and, while limit
// is positive, refuses to read past it (the response head).
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

var errHeadTooLarge = errors.New("the upstream's response head is too large")

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limit > 0 {
		if c.n >= c.limit {
			return 0, errHeadTooLarge
		}
		if left := c.limit - c.n; int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// upstreamRequest is a request ready to be written.
type upstreamRequest struct {
	method, scheme, host string // host: the Host header
	addr                 string // host:port to dial
	key                  string // poolKey(scheme, addr)
	// The request target, escaped: base+target, then "?"+query when the
	// query is not empty. The parts meet only on the wire, so a call joins
	// no strings to build it.
	base, target, query string
	header              requestHeader
	body                io.Reader
	contentLength       int64 // -1: unknown (sent chunked)
	deadline            time.Time
	now                 time.Time // when the call began, if the caller read the clock: the idle pool's now
	// upgrade asks the upstream to switch to WebSocket: the request goes
	// on a new connection, which is never pooled; on 101 the caller takes
	// it over (client.upgrade).
	upgrade bool
}

// replayable requests can be sent again on a fresh connection.
func (r *upstreamRequest) replayable() bool { return r.body == nil }

// headRequests are what http.ReadResponse needs to know of a request (its
// method, for HEAD); shared and never modified.
var headRequests = func() map[string]*http.Request {
	m := map[string]*http.Request{}
	for _, meth := range Methods {
		m[meth] = &http.Request{Method: meth}
	}
	return m
}()

// roundTrip sends req and returns the response whose body must be closed.
// ctx is the caller's: when it ends, the connection is cut.
func (c *client) roundTrip(ctx context.Context, req *upstreamRequest) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		now := req.now
		if now.IsZero() || attempt > 0 {
			now = time.Now()
		}
		pc, reused := c.get(req.key, req.replayable(), now)
		if pc == nil {
			var err error
			if pc, err = c.dial(ctx, req); err != nil {
				return nil, err
			}
		}
		before := pc.cr.n
		resp, err := c.exchange(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		pc.conn.Close()
		// A pooled connection the upstream closed while it was idle fails
		// before any byte of an answer: send a body-less request again once.
		if reused && attempt == 0 && req.replayable() && pc.cr.n == before && ctx.Err() == nil && !isTimeout(err) {
			continue
		}
		return nil, err
	}
}

// upgrade sends req (an upgrade request) on a new connection. When the
// upstream switches protocols it returns the 101 response and the
// connection, whose deadlines are cleared, for the caller to use and
// close; otherwise the response, as roundTrip would, and no connection
// (its body closes the connection when done).
func (c *client) upgrade(ctx context.Context, req *upstreamRequest) (*http.Response, *pconn, error) {
	pc, err := c.dial(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.exchange(ctx, pc, req)
	if err != nil {
		pc.conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return resp, nil, nil
	}
	pc.setDeadline(time.Time{})
	return resp, pc, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exchange writes req on pc and reads the response head. It bounds pc by
// req's deadline first (callDeadline): a pooled connection still carries
// the deadline of its previous call (finish leaves it), which this
// replaces, unless it is good enough, before any read or write.
func (c *client) exchange(ctx context.Context, pc *pconn, req *upstreamRequest) (*http.Response, error) {
	pc.callDeadline(req.deadline, req.now)
	// A caller that goes away cuts the connection. A context that cannot
	// end (keyward's own HTTP/1.1 server gives those) needs no watch.
	stop := unwatched
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { pc.conn.SetDeadline(time.Unix(1, 0)) })
	}
	if req.body == nil {
		pc.deferTo, _ = pc.conn.(sockio.Deferrer)
	}
	err := writeRequest(pc.bw, req)
	pc.deferTo = nil
	if err != nil {
		stop()
		return nil, err
	}
	pc.cr.limit = pc.cr.n + maxResponseHead
	a := new(answer)
	var resp *http.Response
	for {
		// The common answer is read by fastAnswer.read once its head is
		// in the buffer (the first read brings it); anything else, and any
		// read error, by http.ReadResponse.
		var fast bool
		if _, perr := pc.br.Peek(1); perr == nil {
			if fast = a.fast.read(pc.br, headRequests[req.method]); fast {
				resp = &a.fast.resp
			}
		}
		if !fast {
			resp, err = http.ReadResponse(pc.br, headRequests[req.method])
		}
		if err == nil && (resp.StatusCode < 100 || resp.StatusCode > 599) {
			resp.Body.Close()
			err = fmt.Errorf("the upstream answered with status %d", resp.StatusCode)
		}
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx informational answers (103 Early Hints) precede the real one.
	}
	pc.cr.limit = 0
	if err != nil {
		stop()
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		stop()
		resp.Body.Close()
		if req.upgrade {
			return resp, nil // the caller owns pc from now on
		}
		return nil, errors.New("the upstream switched protocols unasked")
	}
	b := &a.body
	b.rc, b.pc, b.c, b.stop, b.reusable = resp.Body, pc, c, stop, !resp.Close && !req.upgrade
	if ka := resp.Header.Get("Keep-Alive"); ka != "" {
		pc.idleUntil = keepAliveUntil(ka)
	}
	if resp.Body == http.NoBody {
		b.finish(true)
	}
	resp.Body = b
	return resp, nil
}

// answer is the memory of one response: its body and, when fastAnswer
// reads it (the common answer), the response itself; one allocation.
type answer struct {
	body upstreamBody
	fast fastAnswer
}

// unwatched is the stop of a watch never set: nothing cut the connection.
func unwatched() bool { return true }

// keepAliveUntil reads "timeout=N" of a Keep-Alive header: the upstream
// closes idle connections after N seconds, so one is not reused after N-1.
func keepAliveUntil(v string) time.Time {
	for p := range strings.SplitSeq(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "timeout") {
			if n, err := strconv.Atoi(val); err == nil && n > 1 {
				return time.Now().Add(time.Duration(n-1) * time.Second)
			}
			if n, err := strconv.Atoi(val); err == nil && n <= 1 {
				return time.Now() // do not reuse
			}
		}
	}
	return time.Time{}
}

// writeRequest writes the request line, the headers (checked before: no
// CR, LF or NUL in values; names from Go's parser or the integration's
// validated spec), the credential header last, and the body.
func writeRequest(w *bufio.Writer, req *upstreamRequest) error {
	w.WriteString(req.method)
	w.WriteByte(' ')
	w.WriteString(req.base)
	w.WriteString(req.target)
	if req.query != "" {
		w.WriteByte('?')
		w.WriteString(req.query)
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(req.host)
	w.WriteString("\r\n")
	for k, vs := range req.header.src {
		if !req.header.forwarded(k) {
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if h := &req.header; h.inject != "" {
		w.WriteString(h.inject)
		w.WriteString(": ")
		w.WriteString(h.value)
		w.WriteString("\r\n")
	}
	switch {
	case req.contentLength > 0:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.contentLength, 10))
		w.WriteString("\r\n")
	case req.contentLength < 0:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case req.method == http.MethodPost || req.method == http.MethodPut || req.method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	if req.upgrade {
		w.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\n")
	}
	w.WriteString("\r\n")
	switch {
	case req.body == nil:
	case req.contentLength > 0:
		n, err := io.CopyN(w, req.body, req.contentLength)
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("request body: %d of %d bytes: %w", n, req.contentLength, io.ErrUnexpectedEOF)
			}
			return err
		}
	default:
		cw := httputil.NewChunkedWriter(w)
		if _, err := io.Copy(cw, req.body); err != nil {
			return err
		}
		if err := cw.Close(); err != nil {
			return err
		}
		w.WriteString("\r\n")
	}
	return w.Flush()
}

// dial opens a connection to the upstream: TCP through the guarded dialer,
// then TLS for https.
func (c *client) dial(ctx context.Context, req *upstreamRequest) (*pconn, error) {
	dctx, cancel := context.WithDeadline(ctx, req.deadline)
	defer cancel()
	conn, err := c.dialer.DialContext(dctx, "tcp", req.addr)
	if err != nil {
		return nil, err
	}
	conn = sockio.Wrap(conn)
	if req.scheme == "https" {
		cfg := c.tls.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(req.addr)
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	pc := &pconn{pool: c.pool(req.key), conn: conn}
	pc.cr.r = conn
	pc.br = bufio.NewReaderSize(&pc.cr, 8<<10)
	pc.bw = bufio.NewWriterSize(pcWriter{pc}, 8<<10)
	return pc, nil
}

// pcWriter is what a pconn's bw writes to: its connection, or, while a
// body-less request is written, the connection's Defer, so that the
// request goes out with the read of its answer, which then skips a read
// that could only find nothing (sockio.Deferrer).
type pcWriter struct{ pc *pconn }

func (w pcWriter) Write(p []byte) (int, error) {
	if d := w.pc.deferTo; d != nil {
		d.Defer(p)
		return len(p), nil
	}
	return w.pc.conn.Write(p)
}

// get takes the most recently used idle connection for key, if any is
// fresh enough at now. A request that cannot be replayed takes one idle
// for less than a second whose socket shows no close from the upstream
// (alive), so an upstream's idle close is unlikely to race it. The
// deadline an idle connection keeps from its previous call is cleared
// before that check: it may have passed, and a socket past its deadline
// cannot be peeked at.
func (c *client) get(key string, replayable bool, now time.Time) (*pconn, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.idle[key]
	if p == nil {
		return nil, false
	}
	list := p.conns
	for len(list) > 0 {
		pc := list[len(list)-1]
		if now.Sub(pc.idleSince) > c.idleTimeout || (!pc.idleUntil.IsZero() && now.After(pc.idleUntil)) {
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			pc.conn.Close()
			continue
		}
		if !replayable && now.Sub(pc.idleSince) > replayableIdleLimit {
			break
		}
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		if !replayable && (pc.setDeadline(time.Time{}) != nil || !alive(pc.conn)) {
			pc.conn.Close()
			continue
		}
		p.conns = list
		return pc, true
	}
	p.conns = list
	return nil, false
}

// put returns a connection whose last response was read to its end.
func (c *client) put(pc *pconn) {
	now := time.Now()
	pc.idleSince = now
	c.mu.Lock()
	list := pc.pool.conns
	// The oldest connection goes when it is stale or the pool is full.
	if len(list) > 0 && (len(list) >= c.maxIdle || now.Sub(list[0].idleSince) > c.idleTimeout) {
		list[0].conn.Close()
		list = append(list[:0], list[1:]...)
	}
	if c.closed {
		c.mu.Unlock()
		pc.conn.Close()
		return
	}
	pc.pool.conns = append(list, pc)
	c.mu.Unlock()
}

// closeIdle closes every idle connection; with final, later ones too.
func (c *client) closeIdle(final bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.idle {
		for _, pc := range p.conns {
			pc.conn.Close()
		}
		p.conns = nil
	}
	c.closed = c.closed || final
}

// upstreamBody is a response body: read to its end it returns the
// connection to the pool, closed early it closes the connection.
type upstreamBody struct {
	rc       io.ReadCloser
	pc       *pconn
	c        *client
	stop     func() bool
	reusable bool
	done     bool

	// released is set, under mu, when the connection goes back to the
	// pool or is closed: a cut from another goroutine after that must not
	// touch it (it may carry another request by then).
	mu       sync.Mutex
	released bool
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// cut ends the response at once from any goroutine: the next read fails.
// Once the body is finished it does nothing.
func (b *upstreamBody) cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.released {
		// recorded: a body read whole just before is pooled (finish), and
		// its next call must not keep this deadline
		b.pc.setDeadline(time.Unix(1, 0))
	}
}

// finish releases the connection: back to the pool after a whole response
// on a connection that stays open, closed otherwise. A pooled connection
// keeps this call's deadline: nothing reads or writes it while idle, and
// its next call sets its own (exchange) before using it, which spares a
// timer update a call.
func (b *upstreamBody) finish(whole bool) {
	b.done = true
	b.mu.Lock()
	b.released = true
	b.mu.Unlock()
	// A false stop means the caller went away and the connection was cut.
	if b.stop() && whole && b.reusable && b.pc.br.Buffered() == 0 {
		b.c.put(b.pc)
		return
	}
	b.pc.conn.Close()
}
