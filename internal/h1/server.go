package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves HTTP/1.1 requests to Handler. Its fields mirror
// net/http.Server's of the same names; set them before Serve.
type Server struct {
	Handler           http.Handler
	ReadHeaderTimeout time.Duration // from a request's first byte to the end of its head; 0: ReadTimeout
	ReadTimeout       time.Duration // from a request's first byte to the end of its body
	// IdleTimeout ends a connection idle for this long between requests
	// (within a sixteenth of it after). 0: ReadTimeout.
	IdleTimeout    time.Duration
	MaxHeaderBytes int // a request's line and headers; 0: 1 MB as net/http
	// WriteStallTimeout ends a connection whose client stops reading: a
	// write to it that cannot go on for this long fails (between half of
	// it and all of it). Unlike net/http's WriteTimeout it does not bound
	// a whole answer, so a long stream that the client reads goes on.
	// 0: no bound.
	WriteStallTimeout time.Duration
	// TLSConfig, when set, makes every connection a TLS server connection.
	TLSConfig *tls.Config
	// H2, when set with TLSConfig, is offered HTTP/2 (ALPN "h2"): a
	// connection that negotiates it is handed, after the handshake, to H2,
	// a net/http server that should have the same handler. Shutdown shuts
	// it down too.
	H2 *http.Server
	// Log receives what cannot go to a client: a handler's panic, a failed
	// TLS handshake. Nil: slog's default.
	Log *slog.Logger

	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*conn]struct{}
	closing  atomic.Bool
	h2ln     *chanListener
	h2served chan struct{}
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

const (
	defaultMaxHeaderBytes = 1 << 20
	// readBufferSize holds a typical request's head, so its Host lines are
	// counted without copying (see head.go); a larger head moves the
	// connection to a buffer of MaxHeaderBytes.
	readBufferSize  = 4 << 10
	writeBufferSize = 4 << 10
	// maxPostHandlerReadBytes of a body the handler did not read are read
	// and dropped to keep the connection; past that it is closed, as in
	// net/http.
	maxPostHandlerReadBytes = 256 << 10
)

func (s *Server) maxHeaderBytes() int64 {
	if s.MaxHeaderBytes > 0 {
		return int64(s.MaxHeaderBytes)
	}
	return defaultMaxHeaderBytes
}

// headReadLimit is how many bytes a request's head may take, with
// net/http's slack of 4096 for the request line.
func (s *Server) headReadLimit() int64 { return s.maxHeaderBytes() + 4096 }

func (s *Server) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Serve accepts connections on ln and serves each in its own goroutine
// until Shutdown or Close, when it returns ErrServerClosed; it closes ln.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("h1: Server.Handler is nil")
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	if s.lns == nil {
		s.lns = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
	}
	s.lns[ln] = struct{}{}
	var tlsConf *tls.Config
	if s.TLSConfig != nil {
		tlsConf = s.TLSConfig.Clone()
		tlsConf.NextProtos = []string{"http/1.1"}
		if s.H2 != nil {
			tlsConf.NextProtos = []string{"h2", "http/1.1"}
			if s.h2ln == nil {
				s.h2ln = newChanListener(ln.Addr())
				s.h2served = make(chan struct{})
				go func() {
					defer close(s.h2served)
					s.H2.Serve(s.h2ln)
				}()
			}
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var delay time.Duration // after a temporary Accept error, as net/http
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logger().Warn("h1: accept failed; retrying", "err", err, "in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := s.newConn(rw, tlsConf)
		if c == nil {
			rw.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

// newConn registers a connection; nil once the server is closing.
func (s *Server) newConn(rw net.Conn, tlsConf *tls.Config) *conn {
	c := &conn{srv: s, rwc: rw, created: time.Now()} // before closeIdle can read it
	if tlsConf != nil {
		c.rwc = tls.Server(rw, tlsConf)
	}
	c.state.Store(stateNew)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil
	}
	s.conns[c] = struct{}{}
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections and waits for the
// active ones to finish their request (each then closes) until ctx ends,
// when it closes them all and returns ctx's error. Hijacked connections
// (WebSocket sessions) are not waited for: their owner ends them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for ln := range s.lns {
		ln.Close()
	}
	h2ln := s.h2ln
	s.mu.Unlock()
	var h2err error
	h2done := make(chan struct{})
	go func() {
		defer close(h2done)
		if h2ln != nil {
			h2err = s.H2.Shutdown(ctx)
			h2ln.Close()
		}
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			<-h2done
			return h2err
		}
		select {
		case <-ctx.Done():
			s.Close()
			<-h2done
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdle closes the connections waiting for a request and reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if st := c.state.Load(); st == stateIdle || st == stateNew && time.Since(c.created) > 5*time.Second {
			c.rwc.Close()
			delete(s.conns, c)
		}
	}
	return len(s.conns) == 0
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.rwc.Close()
		delete(s.conns, c)
	}
	if s.h2ln != nil {
		s.H2.Close()
		s.h2ln.Close()
	}
	return nil
}

// Connection states, for Shutdown.
const (
	stateNew    int32 = iota // accepted; TLS handshake or first request pending
	stateActive              // a request is being read or served
	stateIdle                // waiting for the next request
	stateGone                // hijacked or closed: not the server's
)

type conn struct {
	srv     *Server
	rwc     net.Conn
	created time.Time
	state   atomic.Int32
	remote  string
	tls     *tls.ConnectionState
	lr      io.LimitedReader // rwc; limited while a request's head is read
	br      *bufio.Reader
	bw      *bufio.Writer
	bigHead bool       // br is larger than readBufferSize (a head did not fit it)
	cw      connWriter // what bw writes to
	// lingering: the connection ends with a request body unread, so it is
	// half-closed first, for the client to read the answer before a reset
	lingering bool
	// rdl is the read deadline last set on rwc (zero: none), which lets
	// the idle wait keep one that is still good enough (awaitRequest)
	rdl time.Time
	// base is what every request on the connection has of it: its
	// context, RemoteAddr and TLS; the rest is zero
	base *http.Request
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}
)

func (c *conn) serve() {
	s := c.srv
	defer func() {
		if err := recover(); err != nil && err != http.ErrAbortHandler {
			s.logger().Error("h1: handler panic", "remote", c.remote, "panic", fmt.Sprint(err))
		}
		if c.hijacked() { // the handler's, or H2's, now
			return
		}
		c.state.Store(stateGone)
		c.rwc.Close()
		s.forget(c)
		c.release()
	}()
	if ra := c.rwc.RemoteAddr(); ra != nil {
		c.remote = ra.String()
	}
	if tc, ok := c.rwc.(*tls.Conn); ok {
		if d := s.headerTimeout(); d > 0 {
			tc.SetDeadline(time.Now().Add(d))
		}
		if err := tc.Handshake(); err != nil {
			s.logger().Debug("h1: TLS handshake failed", "remote", c.remote, "err", err)
			var re tls.RecordHeaderError
			if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
				// plain HTTP to a TLS address: say so, as net/http does,
				// rather than end the connection without a word
				re.Conn.SetWriteDeadline(time.Now().Add(time.Second))
				io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			}
			return
		}
		tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		c.tls = &st
		if st.NegotiatedProtocol == "h2" && s.h2ln != nil {
			s.forget(c)
			c.state.Store(stateGone) // H2's now
			if !s.h2ln.hand(tc) {
				tc.Close()
			}
			return
		}
	}
	// never cancelled (doc.go): nothing here could notice a client that
	// goes away while a handler runs
	ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, c.rwc.LocalAddr())
	c.base = new(http.Request).WithContext(ctx)
	c.base.RemoteAddr, c.base.TLS = c.remote, c.tls
	c.lr = io.LimitedReader{R: c.rwc, N: s.headReadLimit()}
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.lr)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.cw = connWriter{c: c}
	c.bw.Reset(&c.cw)

	var lastPOST bool
	for {
		if !c.awaitRequest() {
			return
		}
		req, w, err := c.readRequest(lastPOST)
		if s.closing.Load() {
			return
		}
		if err != nil {
			c.replyError(err)
			return
		}
		lastPOST = req.Method == http.MethodPost
		if !c.serveRequest(req, w) {
			if c.lingering && !c.hijacked() {
				c.closeWriteAndWait()
			}
			return
		}
	}
}

// release returns the buffers to their pools (not a hijacked
// connection's: they are its new owner's).
func (c *conn) release() {
	if c.br != nil {
		c.br.Reset(nil)
		if !c.bigHead {
			readerPool.Put(c.br)
		}
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
	}
	c.br, c.bw = nil, nil
}

func (c *conn) hijacked() bool { return c.state.Load() == stateGone }

// awaitRequest waits, up to IdleTimeout, for the first byte of a request,
// then gives the rest of its head ReadHeaderTimeout.
func (c *conn) awaitRequest() bool {
	s := c.srv
	if st := c.state.Load(); st == stateNew && c.br.Buffered() == 0 {
		// a new connection stays new, which Shutdown closes after 5 s,
		// until its first byte comes
		c.setReadDeadline(time.Now(), s.headerTimeout())
		b, err := c.br.Peek(1)
		if err != nil {
			return false
		}
		if b[0] == 0x16 && c.tls == nil {
			// a TLS handshake record (https:// to a plain-HTTP address),
			// which holds no line end to wait for: answer at once, in
			// plain text, which the client's TLS stack reports as not
			// TLS, instead of after the header timeout
			c.replyError(statusError{http.StatusBadRequest, TLSToPlainReason})
			return false
		}
	} else if st != stateNew && c.br.Buffered() < 4 {
		c.state.Store(stateIdle)
		if s.closing.Load() {
			return false
		}
		if d := s.idleTimeout(); d > 0 {
			// The idle deadline is set d+d/16 ahead and kept while it is
			// at least d ahead: a connection idle for d is closed within
			// d/16 after, and a busy one changes its deadline (a runtime
			// timer update) once in d/16 instead of once a request.
			now := time.Now()
			if left := c.rdl.Sub(now); left < d || left > d+d/16 { // none (zero): far below d
				c.setReadDeadline(now, d+d/16)
			}
		} else {
			c.setReadDeadline(time.Time{}, 0)
		}
		// as net/http: a connection that ends with fewer than 4 bytes
		// after a request ends without an answer
		if _, err := c.br.Peek(4); err != nil {
			return false
		}
	}
	if st := c.state.Load(); st == stateGone || st != stateActive && !c.state.CompareAndSwap(st, stateActive) {
		return false // closed by Shutdown meanwhile
	}
	return true
}

// setReadDeadline bounds the reads to come by d from t (no bound when d is
// 0). Reads that will not block need none, so a request whose head is
// already buffered and that has no body changes no deadline: each change
// costs a timer update in the runtime.
func (c *conn) setReadDeadline(t time.Time, d time.Duration) {
	if d > 0 {
		c.rdl = t.Add(d)
	} else {
		c.rdl = time.Time{}
	}
	c.rwc.SetReadDeadline(c.rdl)
}

func (s *Server) headerTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return s.ReadTimeout
}

// idleTimeout is ReadTimeout when unset, as headerTimeout and net/http's.
func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return s.ReadTimeout
}

// statusError is a refusal of a request's head with a status and a reason
// that goes to the client.
type statusError struct {
	code   int
	reason string
}

func (e statusError) Error() string { return fmt.Sprintf("%d %s", e.code, e.reason) }

// looksLikeHTTP reports whether a TLS record header (its first five bytes)
// is the start of an HTTP/1 request instead (net/http's test).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE", "TRACE":
		return true
	}
	return false
}

var errHeadTooLarge = statusError{http.StatusRequestHeaderFieldsTooLarge, ""}

// readRequest reads a request's head, a simple one by hand (fast.go), any
// other with http.ReadRequest, and makes the checks net/http's server makes
// after it (of either). w is the zero response allocated with a simple
// head's request, for serveRequest; nil for any other.
func (c *conn) readRequest(lastPOST bool) (req *http.Request, w *response, err error) {
	s := c.srv
	c.lr.N = s.headReadLimit() - int64(c.br.Buffered())
	if lastPOST { // RFC 9112 §2.2's tolerance of a CRLF after a POST body, as net/http
		peek, _ := c.br.Peek(4)
		c.br.Discard(leadingCRLF(peek))
	}
	// The simple head (fast.go) is read by hand, any other by
	// http.ReadRequest. One already buffered whole, as a keep-alive
	// client's small request mostly is, is read at once: it needs no
	// deadline, so no clock reading, and its parser reports its Host
	// field as scanHead would. (Not tried in a grown buffer, where a
	// partial head could take long to parse: the clock is read first, as
	// it is for any other head.)
	var sr *simpleRequest
	var hd head
	tried := -1 // bytes buffered when the simple head was tried
	if !c.bigHead {
		sr, hd = readSimpleRequest(c.br, c.base)
		tried = c.br.Buffered()
	}
	var t0 time.Time // the head's start, for its deadlines and the body's
	if sr == nil {
		t0 = time.Now()
		if hd, err = c.scanHead(t0); err != nil {
			return nil, nil, err
		}
		if c.br.Buffered() != tried { // the head came whole only now
			sr, _ = readSimpleRequest(c.br, c.base)
		}
	}
	simple := sr != nil
	if simple {
		req, w = &sr.req, &sr.resp
	} else if req, err = http.ReadRequest(c.br); err != nil {
		if c.lr.N <= 0 {
			return nil, nil, errHeadTooLarge
		}
		return nil, nil, err
	}
	if !(req.ProtoMajor == 1 || req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*") {
		return nil, nil, statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	c.lr.N = 1<<63 - 1
	if err := hd.checkHost(req); err != nil {
		return nil, nil, err
	}
	// net/textproto lets some fields through that net/http's server
	// refuses; a simple head has none (its parser takes token names and
	// values without control bytes only; FuzzFastRequest checks it)
	if !simple {
		if err := checkFields(req.Header); err != nil {
			return nil, nil, err
		}
	}
	if !simple {
		// The request is h1's own (http.ReadRequest made it): the
		// connection's fields are set in place, by a copy the compiler
		// keeps on the stack, where req.WithContext would allocate a
		// second request. (A simple head's parser starts from c.base.)
		*req = *req.WithContext(c.base.Context())
		req.RemoteAddr, req.TLS = c.base.RemoteAddr, c.base.TLS
	}
	if req.Body != http.NoBody {
		if t0.IsZero() {
			// a simple head with a body, read without the clock: its
			// body's time runs from now
			t0 = time.Now()
		}
		c.setReadDeadline(t0, s.ReadTimeout)
	}
	return req, w, nil
}

// checkFields refuses the field names and values that net/http's server
// refuses.
func checkFields(h http.Header) error {
	for k, vs := range h {
		if !validFieldName(k) {
			return statusError{http.StatusBadRequest, "invalid header name"}
		}
		for _, v := range vs {
			if !validFieldValue(v) {
				return statusError{http.StatusBadRequest, "invalid header value"}
			}
		}
	}
	return nil
}

func leadingCRLF(b []byte) int {
	n := 0
	for _, c := range b {
		if c != '\r' && c != '\n' {
			break
		}
		n++
	}
	return n
}

// replyError answers a request whose head was refused, as net/http's

// TLSToPlainReason is what a client that began a TLS handshake at a
// plain-HTTP address is told, in a 400's status line (keyward's net/http
// mode tells it the same, internal/server).
const TLSToPlainReason = "the client sent a TLS handshake to a plain-HTTP address"

// server does, and the connection is closed after.
func (c *conn) replyError(err error) {
	const headers = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	c.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	var se statusError
	switch {
	case errors.As(err, &se) && se.reason == "":
		msg := fmt.Sprintf("%d %s", se.code, http.StatusText(se.code))
		io.WriteString(c.rwc, "HTTP/1.1 "+msg+headers+msg)
		if se.code == http.StatusRequestHeaderFieldsTooLarge {
			c.closeWriteAndWait()
		}
	case errors.As(err, &se):
		msg := fmt.Sprintf("%d %s: %s", se.code, http.StatusText(se.code), se.reason)
		io.WriteString(c.rwc, "HTTP/1.1 "+msg+headers+msg)
	case isUnsupportedTE(err):
		msg := fmt.Sprintf("%d %s", http.StatusNotImplemented, http.StatusText(http.StatusNotImplemented))
		io.WriteString(c.rwc, "HTTP/1.1 "+msg+headers+"Unsupported transfer encoding")
	case isNetReadError(err):
		// the client left or was too slow: no answer
	default:
		const msg = "400 Bad Request"
		io.WriteString(c.rwc, "HTTP/1.1 "+msg+headers+msg)
	}
}

// isUnsupportedTE: http.ReadRequest's error for a transfer coding it does
// not take (other than one "chunked"), whose type is not exported.
func isUnsupportedTE(err error) bool {
	return fmt.Sprintf("%T", err) == "*http.unsupportedTEError"
}

// isNetReadError: the request could not be read because the connection
// ended or timed out, not because it was malformed (net/http's
// isCommonNetReadError).
func isNetReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

// closeWriteAndWait half-closes the connection and waits a moment, so a
// client still sending reads the answer before a reset (as net/http).
func (c *conn) closeWriteAndWait() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	time.Sleep(500 * time.Millisecond)
}

// serveRequest runs the handler and ends the answer; it reports whether
// the connection can carry another request. w, when not nil, is a zero
// response for it (allocated with the request).
func (c *conn) serveRequest(req *http.Request, w *response) bool {
	w = newResponse(c, req, w)
	defer w.free()
	if expect := firstValue(req.Header, "Expect"); hasToken(expect, "100-continue") {
		if req.ProtoAtLeast(1, 1) && req.ContentLength != 0 && w.body != nil {
			w.body.expect.Store(true)
			w.body.expected = true
		}
	} else if expect != "" {
		c.bw.WriteString("HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		c.bw.Flush()
		return false
	}
	if req.RequestURI == "*" && req.Method == http.MethodOptions {
		optionsStar(w, req) // as net/http's server
	} else {
		c.srv.Handler.ServeHTTP(w, req)
	}
	if c.hijacked() {
		return false
	}
	if !w.finish() {
		return false
	}
	return !c.srv.closing.Load()
}

// hasToken reports whether token appears in v as a token: bounded by the
// ends, spaces, tabs or commas, in any case (net/http's hasToken, so both
// servers read Connection and Expect alike).
func hasToken(v, token string) bool {
	for sp := 0; sp+len(token) <= len(v); sp++ {
		if sp > 0 && !tokenBoundary(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end != len(v) && !tokenBoundary(v[end]) {
			continue
		}
		if strings.EqualFold(v[sp:sp+len(token)], token) {
			return true
		}
	}
	return false
}

func tokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

// chanListener hands connections that negotiated h2 to Server.H2.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) hand(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// optionsStar answers "OPTIONS *" (RFC 9110 §9.3.7), which asks about the
// server, not a resource, as net/http's server does.
func optionsStar(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10))
	}
}

// connWriter writes to the connection under WriteStallTimeout. Changing a
// deadline costs a runtime timer update, so it is moved only when less
// than half of it is left.
type connWriter struct {
	c        *conn
	deadline time.Time // zero, or with a monotonic clock reading (time.Now's)
}

func (w *connWriter) Write(p []byte) (int, error) {
	c := w.c
	if d := c.srv.WriteStallTimeout; d > 0 && !c.hijacked() {
		// time.Until of a time with a monotonic reading reads only the
		// monotonic clock, where time.Now reads the wall clock too; the
		// deadline, when moved, needs both (as SetWriteDeadline takes it)
		if w.deadline.IsZero() || time.Until(w.deadline) < d/2 {
			w.deadline = time.Now().Add(d)
			c.rwc.SetWriteDeadline(w.deadline)
		}
	}
	return c.rwc.Write(p)
}
