package h1

import (
	"bufio"

	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
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
	Status int
	Body   string
}

// exchange sends raw on a new connection, half-closes it and parses every
// answer until the server closes.
func exchange(t testing.TB, addr string, raw []byte) []answer {
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
	var out []answer
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, answer{resp.StatusCode, string(body)})
		if err != nil {
			return out
		}
	}
}

// compare reports how h1's answers differ from net/http's.
func compare(std, ours []answer) string {
	for i := range max(len(std), len(ours)) {
		var s, o answer
		if i < len(std) {
			s = std[i]
		}
		if i < len(ours) {
			o = ours[i]
		}
		if s != o {
			return fmt.Sprintf("answer %d: net/http %d %q, h1 %d %q", i, s.Status, s.Body, o.Status, o.Body)
		}
	}
	return ""
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
}

func TestDifferentialRequests(t *testing.T) {
	p := newPair(t, echo)
	for _, raw := range requests {
		std := exchange(t, p.std, []byte(raw))
		ours := exchange(t, p.h1, []byte(raw))
		if d := compare(std, ours); d != "" {
			t.Errorf("%q:\n%s", raw, d)
		}
	}
}

// FuzzDifferential holds h1 to net/http's server: for any bytes on a
// connection, the same answers (statuses and what the handler saw).
func FuzzDifferential(f *testing.F) {
	for _, r := range requests {
		f.Add([]byte(r))
	}
	p := newPair(f, echo)
	f.Fuzz(func(t *testing.T, raw []byte) {
		std := exchange(t, p.std, raw)
		ours := exchange(t, p.h1, raw)
		if d := compare(std, ours); d != "" {
			t.Errorf("%q:\n%s", raw, d)
		}
	})
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }
