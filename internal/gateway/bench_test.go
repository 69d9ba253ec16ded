package gateway

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkProxyCall measures one call through Prepare and Send on its
// hot path: a small GET with a few caller headers, the credential injected
// in a header, and an upstream answering 200 with a small Content-Length
// body on a pooled keep-alive connection. The upstream is raw HTTP/1.1
// over loopback that answers 401 without the credential, so allocs/op is
// the proxy's and a 200 proves the injection.
//
//	go test ./internal/gateway -run '^$' -bench ProxyCall -benchmem -count 5
func BenchmarkProxyCall(b *testing.B) {
	h := newHarness(b)
	up := benchUpstream(b, "Authorization: Bearer "+testKey)
	if _, err := h.svc.Create(b.Context(), Integration{Name: "api", Upstream: "http://" + up, Secret: "pay/prod/key",
		Inject: "header:Authorization=Bearer {{secret}}", AllowPrivate: true}, "test", nil); err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/gateway/api/v1/ping?x=1", nil)
	r.Header.Set("User-Agent", "bench/1")
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Authorization", "Bearer caller-token")
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.code = 0
		p, err := h.proxy.Prepare(w, r, "api", "/v1/ping")
		if err != nil {
			b.Fatal(err)
		}
		call, err := h.proxy.Send(w, r, p)
		if err != nil || call.Status != 200 || w.code != 200 || call.BytesOut != 27 {
			b.Fatalf("call: %+v, %v", call, err)
		}
	}
}

// benchWriter is a ResponseWriter that keeps the header and the status
// and drops the body.
type benchWriter struct {
	h    http.Header
	code int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) Flush()                      {}

// benchUpstream answers every request with a small JSON body when want is
// among its header lines, else 401; it returns its address.
func benchUpstream(tb testing.TB, want string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	ok := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Sun, 06 Dec 2026 20:00:00 GMT\r\nContent-Length: 27\r\n\r\n{\"ok\":true,\"service\":\"up\"}\n")
	refused := []byte("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
	wantLine := want + "\r\n"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					authorized := false
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
						authorized = authorized || string(line) == wantLine
					}
					answer := refused
					if authorized {
						answer = ok
					}
					if _, err := c.Write(answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
