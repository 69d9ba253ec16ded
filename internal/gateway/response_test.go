package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// fastResponse is fastAnswer.read on an answer of its own: the fast path
// alone, as the tests and FuzzFastResponse hold it to http.ReadResponse
// (the client reads into the answer it allocates).
func fastResponse(br *bufio.Reader, req *http.Request) (*http.Response, bool) {
	a := new(fastAnswer)
	if !a.read(br, req) {
		return nil, false
	}
	return &a.resp, true
}

// responseSeeds are answer heads and bodies as upstreams send them, and
// malformed ones.
var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Sat, 05 Dec 2026 16:00:00 GMT\r\nContent-Length: 27\r\n\r\n{\"ok\":true,\"service\":\"up\"}\n",
	"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhiNEXT",
	"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nx-custom-header: a\r\nX-Custom-Header: b\r\n\r\n",
	"HTTP/1.1 201\r\nContent-Length: 3\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nVary: Accept\r\n\r\nabc",
	"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length:  4 \r\nX-Empty:\r\n\r\nbusy",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	"HTTP/1.1 200 OK\r\nx-MULTI-part-KEY: a\r\nX-Multi-Part-Key: b\r\nwww-authenticate: c\r\nContent-Length: 2\r\nX-MULTI-PART-KEY: d\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\nI: 9\r\na: 10\r\nContent-Length: 2\r\n\r\nok",
	// left to http.ReadResponse
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n folded\r\n\r\nok",
	"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\nX: y\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX: a\rb\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX y: a\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
	"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 O\rK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\n\r\nuntil close",
}

// readAll reads what a caller of the response would: the head, then the
// body to its end, then what is left on the connection.
func readAll(resp *http.Response, br *bufio.Reader) (body []byte, bodyErr error, rest []byte) {
	body, bodyErr = io.ReadAll(resp.Body)
	rest, _ = io.ReadAll(br)
	return body, bodyErr, rest
}

// FuzzFastResponse holds fastResponse to http.ReadResponse: whatever it
// takes, ReadResponse reads the same way (status, fields, framing, body,
// the bytes it leaves for the next answer).
func FuzzFastResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add(s, false)
	}
	f.Add(responseSeeds[0], true)
	f.Fuzz(func(t *testing.T, in string, head bool) {
		req := headRequests[http.MethodGet]
		if head {
			req = headRequests[http.MethodHead]
		}
		fbr := bufio.NewReaderSize(strings.NewReader(in), 8<<10)
		fbr.Peek(1) // fill the buffer, as the client's first read does
		got, ok := fastResponse(fbr, req)
		if !ok {
			if fbr.Buffered() != min(len(in), 8<<10) {
				t.Fatalf("a refused answer consumed bytes: %d buffered of %d", fbr.Buffered(), len(in))
			}
			return
		}
		sbr := bufio.NewReaderSize(strings.NewReader(in), 8<<10)
		want, err := http.ReadResponse(sbr, req)
		if err != nil {
			t.Fatalf("fastResponse took %q, which http.ReadResponse refuses: %v", in, err)
		}
		gotBody, gotErr, gotRest := readAll(got, fbr)
		wantBody, wantErr, wantRest := readAll(want, sbr)
		got.Body, want.Body = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("for %q\nfast:         %+v\nReadResponse: %+v", in, got, want)
		}
		if !bytes.Equal(gotBody, wantBody) || !errors.Is(gotErr, wantErr) && !(gotErr != nil && wantErr != nil) {
			t.Fatalf("for %q body %q (%v), ReadResponse's %q (%v)", in, gotBody, gotErr, wantBody, wantErr)
		}
		if !bytes.Equal(gotRest, wantRest) {
			t.Fatalf("for %q left %q, ReadResponse left %q", in, gotRest, wantRest)
		}
	})
}

// TestFastResponseTaken: the fast path serves the usual answers (so the
// fuzz test above cannot pass by refusing everything), and refuses what
// it leaves to http.ReadResponse.
func TestFastResponseTaken(t *testing.T) {
	for i, s := range responseSeeds {
		br := bufio.NewReaderSize(strings.NewReader(s), 8<<10)
		br.Peek(1)
		_, ok := fastResponse(br, headRequests[http.MethodGet])
		if want := i < 8; ok != want {
			t.Errorf("seed %d %q: fast path %v, want %v", i, s, ok, want)
		}
	}
	br := bufio.NewReaderSize(strings.NewReader(responseSeeds[0]), 8<<10)
	br.Peek(1)
	if _, ok := fastResponse(br, headRequests[http.MethodHead]); ok {
		t.Error("the answer to a HEAD request took the fast path")
	}
}

// TestFastResponseShortBody: a connection that ends inside a body fails
// the read, as net/http's does, and a body is not read past its length.
func TestFastResponseShortBody(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader(responseSeeds[5]), 8<<10)
	br.Peek(1)
	resp, ok := fastResponse(br, headRequests[http.MethodGet])
	if !ok {
		t.Fatal("fast path not taken")
	}
	b, err := io.ReadAll(resp.Body)
	if string(b) != "short" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("body %q, %v; want \"short\", unexpected EOF", b, err)
	}
	br = bufio.NewReaderSize(strings.NewReader(responseSeeds[1]), 8<<10)
	br.Peek(1)
	resp, _ = fastResponse(br, headRequests[http.MethodGet])
	p := make([]byte, 64)
	n, err := resp.Body.Read(p)
	if string(p[:n]) != "hi" || err != io.EOF {
		t.Fatalf("read %q, %v; want \"hi\" with io.EOF", p[:n], err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "NEXT" {
		t.Fatalf("left %q on the connection, want NEXT", rest)
	}
}

// BenchmarkReadResponse compares the fast path with http.ReadResponse on
// the bench upstream's answer.
func BenchmarkReadResponse(b *testing.B) {
	in := responseSeeds[0]
	r := strings.NewReader(in)
	br := bufio.NewReaderSize(r, 8<<10)
	read := map[string]func() *http.Response{
		"fast": func() *http.Response {
			resp, ok := fastResponse(br, headRequests[http.MethodGet])
			if !ok {
				b.Fatal("fast path not taken")
			}
			return resp
		},
		"ReadResponse": func() *http.Response {
			resp, err := http.ReadResponse(br, headRequests[http.MethodGet])
			if err != nil {
				b.Fatal(err)
			}
			return resp
		},
	}
	for _, name := range []string{"fast", "ReadResponse"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(in)
				br.Reset(r)
				br.Peek(1)
				resp := read[name]()
				io.Copy(io.Discard, resp.Body)
			}
		})
	}
}

// rawUpstream serves answers, in order, to the requests of every
// connection it accepts (an answer may be several, for a connection the
// test expects to be reused); after an answer marked close it closes the
// connection. It counts connections and records each request's
// Authorization header.
func rawUpstream(t *testing.T, answers []rawAnswer) (url string, conns func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	n, next := 0, 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					mu.Lock()
					if next >= len(answers) {
						mu.Unlock()
						return
					}
					a := answers[next]
					next++
					mu.Unlock()
					if req.Header.Get("Authorization") != "Bearer "+testKey {
						io.WriteString(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
						continue
					}
					io.WriteString(c, a.raw)
					if a.close {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

type rawAnswer struct {
	raw   string
	close bool // the upstream closes the connection after it
}

// Through the proxy, answers read by hand and answers left to
// http.ReadResponse alternate on one connection: each call gets its own
// status and body, the connection is kept while the framing allows and
// dropped when it does not.
func TestProxyMixesFastAndFallbackAnswers(t *testing.T) {
	url, conns := rawUpstream(t, []rawAnswer{
		{raw: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"},                         // by hand
		{raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},                         // ReadResponse
		{raw: "HTTP/1.1 204 No Content\r\n\r\n"},                                                                    // ReadResponse
		{raw: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew"}, // 1xx, then by hand
		{raw: "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlast", close: true},                 // ReadResponse; then closed
		{raw: "HTTP/1.1 404 Not Found\r\ncontent-length: 7\r\nx-a: 1\r\nX-A: 2\r\n\r\nmissing"},                     // by hand, a new connection
		{raw: "HTTP/1.1 200 OK\r\nX-Until: close\r\n\r\nuntil the end", close: true},                                // no length: ReadResponse
	})
	h := newHarness(t)
	h.integration(t, Integration{Name: "raw", Upstream: url, AllowPrivate: true})
	for i, want := range []struct {
		code       int
		body, xa   string
		connsAfter int
	}{
		{200, "hi", "", 1}, {200, "abc", "", 1}, {204, "", "", 1}, {201, "new", "", 1},
		{200, "last", "", 1}, {404, "missing", "1,2", 2}, {200, "until the end", "", 2},
	} {
		w, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/raw/x", nil))
		if err != nil || w.Code != want.code || w.Body.String() != want.body {
			t.Fatalf("call %d: %v %d %q; want %d %q", i, err, w.Code, w.Body, want.code, want.body)
		}
		if got := strings.Join(w.Header().Values("X-A"), ","); got != want.xa {
			t.Errorf("call %d: X-A %q, want %q", i, got, want.xa)
		}
		if strings.Contains(fmt.Sprint(w.Header()), testKey) {
			t.Fatalf("call %d: the key reached the caller", i)
		}
		if n := conns(); n != want.connsAfter {
			t.Errorf("after call %d: %d upstream connections, want %d", i, n, want.connsAfter)
		}
	}
}

// A Connection value lists close as net/http reads it: among comma-separated
// tokens, in any ASCII case, with spaces and tabs around; a Unicode
// look-alike is not close.
func TestHasCloseToken(t *testing.T) {
	for v, want := range map[string]bool{
		"close": true, "Close": true, " keep-alive ,\tCLOSE ": true, "upgrade, close": true,
		"": false, "closed": false, "keep-alive": false, "clo se": false, "cloſe": false, "CLOſE": false, ",": false,
	} {
		if got := hasCloseToken(v); got != want {
			t.Errorf("hasCloseToken(%q) = %v, want %v", v, got, want)
		}
	}
}
