package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// responseSeeds are answer heads and bodies as upstreams send them, and
// malformed ones.
var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Sat, 05 Dec 2026 16:00:00 GMT\r\nContent-Length: 27\r\n\r\n{\"ok\":true,\"service\":\"up\"}\n",
	"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhiNEXT",
	"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nx-custom-header: a\r\nX-Custom-Header: b\r\n\r\n",
	"HTTP/1.1 201\r\nContent-Length: 3\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nVary: Accept\r\n\r\nabc",
	"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length:  4 \r\nX-Empty:\r\n\r\nbusy",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	// left to http.ReadResponse
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n folded\r\n\r\nok",
	"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\nX: y\r\n\r\nok",
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
		if want := i < 6; ok != want {
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
