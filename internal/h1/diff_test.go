package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echo answers with what it saw of the request, so two servers that parse
// a request differently answer differently.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q %s host=%q cl=%d te=%q close=%v\n", r.Method, r.RequestURI, r.Proto, r.Host, r.ContentLength, r.TransferEncoding, r.Close)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %q\n", k, r.Header[k])
	}
	body, err := io.ReadAll(r.Body)
	fmt.Fprintf(&b, "body %q err=%v\n", body, err != nil)
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", fmt.Sprint(b.Len()))
	io.WriteString(w, b.String())
})

// modal is echo in one of several handler shapes, picked by the last byte
// of the request's path, so the fuzzer also explores how the servers frame
// answers and settle bodies the handler did not read.
var modal = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		// the harness reads answers without knowing their requests, and
		// an answer to HEAD has no body whatever its length says
		w.WriteHeader(http.StatusNoContent)
		return
	}
	mode := 0
	if p := r.URL.Path; p != "" {
		mode = int(p[len(p)-1]) % 5
	}
	switch mode {
	case 1: // the body unread, a small answer without a length
		io.WriteString(w, "unread")
	case 2: // part of the body read
		b := make([]byte, 3)
		n, _ := io.ReadFull(r.Body, b)
		fmt.Fprintf(w, "read %q", b[:n])
	case 3: // a long answer without a length (chunked), the body unread
		io.WriteString(w, strings.Repeat("z", 3000))
	case 4: // the handler ends the connection
		w.Header().Set("Connection", "close")
		echo(w, r)
	default:
		echo(w, r)
	}
})

// pair is net/http's server and h1's serving the same handler, with the
// data plane's limits.
type pair struct {
	std, h1 string // addresses
}

func newPair(t testing.TB, h http.Handler) pair {
	t.Helper()
	lnStd, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnH1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	std := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 8 << 10, ErrorLog: quietLog()}
	ours := &Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 8 << 10}
	go std.Serve(lnStd)
	go ours.Serve(lnH1)
	t.Cleanup(func() { std.Close(); ours.Close() })
	return pair{lnStd.Addr().String(), lnH1.Addr().String()}
}

// answer is one response as a client parses it.
type answer struct {
	Status  int
	Body    string
	Close   bool // the answer ends the connection
	Chunked bool
}

// exchange sends raw on a new connection, half-closes it and parses every
// answer until the server closes. cut reports that the connection was
// reset: a server that closes with request bytes unread makes the kernel
// reset it, which can destroy answers already sent, so what follows the
// answers read is unknown.
func exchange(t testing.TB, addr string, raw []byte) (out []answer, cut bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		c.Write(raw)
		c.(*net.TCPConn).CloseWrite()
	}()
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			// a reset, or an answer's head cut short, which neither server
			// writes but a reset can leave
			return out, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if errors.Is(err, syscall.ECONNRESET) {
			return out, true
		}
		a := answer{resp.StatusCode, string(body), resp.Close, len(resp.TransferEncoding) > 0}
		if err != nil { // shorter than its framing said: compared as such
			a.Body += fmt.Sprintf(" [cut short: %v]", err)
			return append(out, a), false
		}
		out = append(out, a)
	}
}

// compare reports how h1's answers differ from net/http's. When either
// connection was reset, only the answers both read are compared.
func compare(std, ours []answer, cut bool) string {
	n := max(len(std), len(ours))
	if cut {
		n = min(len(std), len(ours))
	}
	for i := range n {
		var s, o answer
		if i < len(std) {
			s = std[i]
		}
		if i < len(ours) {
			o = ours[i]
		}
		if s != o {
			return fmt.Sprintf("answer %d: net/http %+v, h1 %+v", i, s, o)
		}
	}
	return ""
}

// differ runs raw against both servers of p and reports a difference.
func differ(t testing.TB, p pair, raw []byte) string {
	std, cutStd := exchange(t, p.std, raw)
	ours, cutOurs := exchange(t, p.h1, raw)
	return compare(std, ours, cutStd || cutOurs)
}

// requests are heads and bodies that servers have disagreed on: framing,
// smuggling, Host, odd bytes and versions.
var requests = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /x?y=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost:\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost:\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: \r\n \r\n\tb\r\n\r\n",
	"GET / HTTP/1.1\r\nHost:\r\n b\r\n \r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n \r\n\r\n",
	"GET / HTTP/1.1\r\nHost:\r\n b c\r\n\r\n",
	"GET http://other/ HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://other/ HTTP/1.1\r\n\r\n",
	"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
	"GET / HTTP/0.9\r\nHost: a\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: 1\x00\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX\x00: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nno-colon\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
	"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nshort",
	"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
	"POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 2\r\n\r\nhi",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + strings.Repeat("v", 9000) + "\r\n\r\n",
	"GET /" + strings.Repeat("p", 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Mid: " + strings.Repeat("m", 5000) + "\r\n\r\n",
	"garbage\r\n\r\n",
	"",
	"GET / HTTP/1.1\r\nHost: a\r\n",
	"CONNECT a:443 HTTP/1.1\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
	"get / HTTP/1.1\r\nHost: a\r\n\r\n",
	// modal's shapes: /e reads nothing, /a part, /b answers long, /c closes
	"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /d HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /d HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /d HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhelloGET /d HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhelloGET /d HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloHEAD /b HTTP/1.1\r\nHost: a\r\n\r\nGET /d HTTP/1.0\r\n\r\n",
	"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /d HTTP/1.0\r\n\r\n",
	"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /d HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /e HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhelloGET /d HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /e HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
}

func TestDifferentialRequests(t *testing.T) {
	p := newPair(t, modal)
	for _, raw := range requests {
		if d := differ(t, p, []byte(raw)); d != "" {
			t.Errorf("%q:\n%s", raw, d)
		}
	}
}

// FuzzDifferential holds h1 to net/http's server: for any bytes on a
// connection, the same answers (statuses, what the handler saw, framing and
// whether the connection ends), whatever the handler's shape (modal).
func FuzzDifferential(f *testing.F) {
	for _, r := range requests {
		f.Add([]byte(r))
	}
	p := newPair(f, modal)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 0 && raw[0] == 0x16 {
			// On purpose: h1 answers a TLS handshake on a plain address
			// at once (TestWrongProtocolIsAnswered); net/http waits for a
			// request line that never comes.
			t.Skip()
		}
		if d := differ(t, p, raw); d != "" {
			t.Errorf("%q:\n%s", raw, d)
		}
	})
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }
