package httpapi

import (
	"net/http"
	"net/url"
	"testing"
)

// benchWriter is a ResponseWriter that keeps nothing, reused across calls.
type benchWriter struct {
	h    http.Header
	code int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkEdgeGatewayCall measures the edge's own work on a gateway call
// (ServeHTTP, the dispatch, wrap, the request metrics) around a raw
// handler that answers 200 and counts the call's usage as the proxy does.
func BenchmarkEdgeGatewayCall(b *testing.B) {
	m := NewMetrics(func() bool { return false })
	a := New(Deps{Metrics: m}, []Route{{
		Pattern: "GET " + gatewayPattern, Open: true, WhileSealed: true, DataPlane: true,
		Raw: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			m.ObserveUsage("integration", IntegrationOf(r), http.StatusOK)
			m.ObserveUsage("token", "acc", http.StatusOK)
		},
	}})
	u, _ := url.Parse("/v1/gateway/up/v1/ping")
	r := &http.Request{Method: "GET", URL: u, Header: http.Header{"User-Agent": {"bench/1"}},
		RemoteAddr: "127.0.0.1:54321", Body: http.NoBody, Host: "bench"}
	r = r.WithContext(b.Context())
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		r.Pattern = ""
		a.ServeHTTP(w, r)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}
