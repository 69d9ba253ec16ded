package h1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// response is the http.ResponseWriter of one request. The answer's head is
// written when the handler first flushes, writes more than
// bufferBeforeCommit bytes without a Content-Length, or returns; in the
// last case a Content-Length is set from what it wrote, as net/http does.
type response struct {
	c    *conn
	req  *http.Request
	body *requestBody // nil when the request has none

	header     http.Header
	sent       http.Header // header as WriteHeader saw it, once the handler asks for it again
	length     int64       // the answer's Content-Length; -1 unknown
	lengthText string      // length as the handler's header had it at WriteHeader
	written    int64       // body bytes the handler wrote
	held       []byte
	werr       error // the first write error: the client is gone

	// The small fields, packed (a response is in simpleRequest, whose
	// size is held under a malloc size class).
	status      int32 // 100 to 999
	wroteHeader bool  // WriteHeader was called (or implied by Write)
	committed   bool  // the head is in c.bw
	chunked     bool
	closeAfter  bool        // the connection ends after this answer
	done        atomic.Bool // the handler returned: it may write nothing more
	// what the request asked of the connection, read before the handler
	wantsClose, wantsKeepAlive10 bool
	// c.bw, between an Expect: 100-continue reply and the head
	mu sync.Mutex
}

// bufferBeforeCommit: an answer without a Content-Length that fits is sent
// with one (net/http's bufferBeforeChunkingSize).
const bufferBeforeCommit = 2048

var (
	heldPool = sync.Pool{New: func() any { b := make([]byte, 0, bufferBeforeCommit); return &b }}
)

// newResponse makes req's response in w, a zero response, or in a new one
// when w is nil.
func newResponse(c *conn, req *http.Request, w *response) *response {
	// not pooled: a handler's goroutine that writes after the handler
	// returned must find this one finished, not another request's (w,
	// when given, was allocated with req, for req alone)
	if w == nil {
		w = new(response)
	}
	conn := firstValue(req.Header, "Connection") // read before the handler, which may change it
	w.c, w.req, w.header, w.length = c, req, make(http.Header), -1
	w.wantsClose = req.Close || hasToken(conn, "close")
	w.wantsKeepAlive10 = req.ProtoMajor == 1 && req.ProtoMinor == 0 && hasToken(conn, "keep-alive")
	if req.Body != http.NoBody && req.Body != nil {
		w.body = &requestBody{r: req.Body, w: w, chunked: len(req.TransferEncoding) > 0}
		req.Body = w.body
	}
	return w
}

func (w *response) free() {
	w.done.Store(true) // also after a panic, when finish did not run
	if b := w.body; b != nil && !w.c.hijacked() {
		// a read left behind must not reach the connection's buffers,
		// which go back to their pools (or to the next request); a
		// hijacked connection's are its owner's, and a read of it may
		// block for good
		b.mu.Lock()
		b.closed.Store(true)
		b.mu.Unlock()
	}
	if w.held != nil {
		h := w.held[:0]
		w.held = nil
		heldPool.Put(&h)
	}
}

// errFinished: the handler wrote after it returned.
var errFinished = errors.New("h1: write after the handler returned")

func (w *response) Header() http.Header {
	if w.wroteHeader && !w.committed && w.sent == nil {
		// changes after WriteHeader do not reach the answer
		w.sent = w.header.Clone()
	}
	return w.header
}

func (w *response) WriteHeader(code int) {
	if w.done.Load() || w.c.hijacked() || w.wroteHeader {
		return
	}
	w.writeHeader(code)
}

func (w *response) writeHeader(code int) {
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		return // informational answers are not sent (see doc.go)
	}
	w.wroteHeader = true
	w.status = int32(code)
	if cl := firstValue(w.header, "Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.length, w.lengthText = n, cl
		} else {
			w.c.srv.logger().Warn("h1: handler set an invalid Content-Length; dropped", "value", cl)
			delete(w.header, "Content-Length")
		}
	}
}

// bodyAllowed reports whether the answer may carry a body (RFC 9110 §6.4.1).
func (w *response) bodyAllowed() bool {
	return !(w.status >= 100 && w.status <= 199 || w.status == http.StatusNoContent || w.status == http.StatusNotModified)
}

func (w *response) Write(p []byte) (int, error) {
	if w.done.Load() {
		return 0, errFinished
	}
	if w.c.hijacked() {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.length != -1 && w.written > w.length {
		return 0, http.ErrContentLength
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil
	}
	if !w.committed {
		if w.length == -1 && len(w.held)+len(p) <= bufferBeforeCommit {
			if w.held == nil {
				w.held = *heldPool.Get().(*[]byte)
			}
			w.held = append(w.held, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	return w.writeBody(p)
}

func (w *response) writeBody(p []byte) (int, error) {
	if w.werr != nil {
		return 0, w.werr
	}
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, w.werr = bw.WriteString("\r\n")
	} else {
		_, w.werr = bw.Write(p)
	}
	if w.werr != nil {
		return 0, w.werr
	}
	return len(p), nil
}

// commit writes the head and the held body into c.bw. final: the handler
// has returned, so a body without Content-Length is whole in held.
func (w *response) commit(final bool) {
	if w.body != nil && w.body.expect.Load() {
		w.mu.Lock()
		defer w.mu.Unlock()
		// no 100 Continue after the answer's head; the client has not
		// sent the body and may never: end the connection, do not read it
		if w.body.expect.Swap(false) {
			w.closeAfter = true
		}
	}
	w.committed = true
	req, h := w.req, w.header
	if w.sent != nil {
		h = w.sent
	}
	isHEAD := req.Method == http.MethodHead
	if w.bodyAllowed() && w.length == -1 && final && (!isHEAD || w.written > 0) {
		// the handler returned: its whole answer is held (or, for HEAD,
		// was counted), so its length is known
		w.length = int64(len(w.held))
		if isHEAD {
			w.length = w.written
		}
	}
	// Whether the connection goes on, as net/http's server decides (an
	// HTTP/1.0 client that asked to keep it keeps it when the length is
	// known, whatever else its Connection field says); before settleBody,
	// which reads no body of a connection that ends.
	keepAlive10 := false
	if w.wantsKeepAlive10 && (isHEAD || w.length != -1 || !w.bodyAllowed()) {
		_, set := h["Connection"]
		keepAlive10 = !set
	} else if !req.ProtoAtLeast(1, 1) || w.wantsClose {
		w.closeAfter = true
	}
	if firstValue(h, "Connection") == "close" || w.c.srv.closing.Load() {
		w.closeAfter = true
	}
	if w.body != nil {
		w.settleBody()
	}
	delete(h, "Transfer-Encoding")
	if w.bodyAllowed() {
		switch {
		case w.length != -1:
			// the handler's map may have changed since WriteHeader: the
			// head says what frames the body
			if vs := h["Content-Length"]; len(vs) != 1 || vs[0] != w.lengthText {
				h["Content-Length"] = []string{strconv.FormatInt(w.length, 10)}
			}
		case isHEAD:
			delete(h, "Content-Length")
		case req.ProtoAtLeast(1, 1):
			w.chunked = true
			delete(h, "Content-Length")
		default:
			w.closeAfter = true // HTTP/1.0: the body ends with the connection
			delete(h, "Content-Length")
		}
	} else if w.status != http.StatusNotModified {
		delete(h, "Content-Length")
	}

	bw := w.c.bw
	if req.ProtoAtLeast(1, 1) || req.ProtoMajor > 1 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	// the numbers are appended in bw's own buffer (a local array would
	// escape to the heap through bw.Write)
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(w.status), 10))
	bw.WriteByte(' ')
	if text := http.StatusText(int(w.status)); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(w.status), 10))
	}
	bw.WriteString("\r\n")
	hasDate := false // h["Date"] is set: found by the loop, not looked up
	for k, vs := range h {
		if k == "Date" {
			hasDate = true
		}
		if k == "Connection" && (w.closeAfter || keepAlive10) {
			continue // written below
		}
		if !validFieldName(k) {
			continue
		}
		for _, v := range vs {
			writeField(bw, k, v)
		}
	}
	if !hasDate {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter && req.ProtoAtLeast(1, 1):
		bw.WriteString("Connection: close\r\n")
	case keepAlive10:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
	if len(w.held) > 0 {
		held := w.held
		w.held = held[:0]
		w.writeBody(held)
	}
}

// settleBody decides, before the head is written, what becomes of a
// request body the handler did not read to its end: up to
// maxPostHandlerReadBytes are read and dropped; a larger one, or one that
// cannot be read, ends the connection after this answer (as net/http).
func (w *response) settleBody() {
	b := w.body
	if b.sawEOF || w.closeAfter {
		return
	}
	if b.err != nil || b.expected {
		// a broken body, or one asked for with 100 Continue (sent or
		// not): the client may still be sending it, or never will; end
		// the connection rather than read it (as net/http)
		w.closeAfter = true
		return
	}
	n, err := io.CopyN(io.Discard, b.r, maxPostHandlerReadBytes+1)
	switch {
	case err == io.EOF:
		b.sawEOF = true
	case err == nil && n > maxPostHandlerReadBytes:
		w.closeAfter, w.c.lingering = true, true
	default:
		w.closeAfter = true
	}
}

// finish ends the answer after the handler returned; it reports whether
// the connection can carry another request.
func (w *response) finish() bool {
	w.done.Store(true)
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	if w.chunked && w.werr == nil {
		_, w.werr = w.c.bw.WriteString("0\r\n\r\n")
	}
	if w.werr == nil {
		w.werr = w.c.bw.Flush()
	}
	if w.werr != nil {
		return false
	}
	if w.length != -1 && w.written != w.length && w.bodyAllowed() && w.req.Method != http.MethodHead {
		// shorter than it said, or a write past it was refused (written
		// counts it, as net/http's): the client must see the end
		return false
	}
	if w.body != nil && !w.body.sawEOF && !w.closeAfter {
		// read after the head was sent (the handler flushed early)
		w.settleBody()
	}
	return !w.closeAfter
}

// Flush sends what the handler wrote so far.
func (w *response) Flush() {
	if w.done.Load() || w.c.hijacked() {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	if w.werr == nil {
		w.werr = w.c.bw.Flush()
	}
}

// FlushError is Flush with the error (http.ResponseController's).
func (w *response) FlushError() error {
	if w.done.Load() {
		return errFinished
	}
	w.Flush()
	return w.werr
}

// Hijack hands the connection to the handler: the server no longer reads,
// writes or closes it. Its buffers hold what the client has sent so far.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if w.done.Load() {
		return nil, nil, errFinished
	}
	if c.hijacked() {
		return nil, nil, http.ErrHijacked
	}
	if w.committed {
		if err := c.bw.Flush(); err != nil {
			return nil, nil, err
		}
	}
	c.state.Store(stateGone)
	c.srv.forget(c)
	c.rwc.SetDeadline(time.Time{}) // the request's are not the new owner's (as net/http)
	return c.rwc, bufio.NewReadWriter(c.br, c.bw), nil
}

// requestBody is a request's body as the handler reads it. Close does not
// read the rest (which could be endless); the server decides that
// (settleBody). Once the handler returned it is closed (free).
type requestBody struct {
	r        io.ReadCloser // http.ReadRequest's body
	w        *response
	expect   atomic.Bool // Expect: 100-continue, not answered yet
	expected bool        // the request had Expect: 100-continue
	chunked  bool        // the body is chunked (else framed by Content-Length)
	mu       sync.Mutex  // a Read, against free
	sawEOF   bool
	closed   atomic.Bool
	err      error
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.expect.Load() {
		b.sendContinue()
	}
	n, err := b.r.Read(p)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF && !b.chunked && !b.expected:
		// the body ended, whole or, with a Content-Length, cut short by
		// the client's end of stream (as net/http's sawEOF): nothing more
		// can come, and the next request's read finds the end. A cut
		// chunked body is an error, as there, and so is a cut body asked
		// for with 100 Continue (net/http's expectContinueReader).
		b.sawEOF = true
	case err != nil:
		b.err = err
	}
	return n, err
}

func (b *requestBody) sendContinue() {
	w := b.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if !b.expect.Load() {
		return
	}
	b.expect.Store(false)
	bw := w.c.bw
	bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	if err := bw.Flush(); err != nil {
		w.werr = err
	}
}

func (b *requestBody) Close() error {
	b.closed.Store(true)
	return nil
}

// writeField writes one header field line, with CR and LF in the value
// turned into spaces and surrounding spaces trimmed (as http.Header.Write).
func writeField(bw *bufio.Writer, k, v string) {
	if !plainValue(v) {
		if strings.ContainsAny(v, "\r\n") {
			v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
		}
		v = strings.Trim(v, " \t")
	}
	if b := bw.AvailableBuffer(); cap(b) >= len(k)+len(v)+4 {
		// one copy into bw's buffer, where four writes would check its
		// room four times
		b = append(b, k...)
		b = append(b, ": "...)
		b = append(b, v...)
		b = append(b, "\r\n"...)
		bw.Write(b)
		return
	}
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// plainValue reports whether writeField writes v as it is: v has no CR or
// LF, and no SP or HTAB at either end. One pass over v, where writeField's
// replacement and trim would take two or three for the values most
// answers have.
func plainValue(v string) bool {
	if n := len(v); n > 0 && (v[0] == ' ' || v[0] == '\t' || v[n-1] == ' ' || v[n-1] == '\t') {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= '\r' && (c == '\r' || c == '\n') {
			return false
		}
	}
	return true
}

// firstValue is h.Get(key) for a key already canonical, without
// canonicalizing it again.
func firstValue(h http.Header, key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// validFieldName reports whether k is a token (RFC 9110 §5.1); a handler's
// header with another name is dropped, as net/http's server does.
func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !tokenByte[k[i]] {
			return false
		}
	}
	return true
}

// validFieldValue reports whether v holds no control byte but HTAB
// (RFC 9110 §5.5), as net/http's server checks.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// tokenByte: the bytes of a token (RFC 9110 §5.6.2).
var tokenByte = alnumAnd("!#$%&'*+-.^_`|~")

// httpDate is the Date field's value, formatted once a second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &dateText{sec: sec, text: now.UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	sec  int64
	text string
}

var cachedDate atomic.Pointer[dateText]
