package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyward/keyward/internal/testupstream"
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
	up := testupstream.Raw(b, "Authorization: Bearer "+testKey, "Date: Sun, 06 Dec 2026 20:00:00 GMT\r\n")
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
