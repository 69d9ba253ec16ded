package httpapi

import (
	"context"
	"slices"
	"testing"
	"time"
)

// sinkEvent keeps the benchmark's events reachable, as an auditor does.
var sinkEvent *AuditEvent

// BenchmarkGatewayAuditEvent measures what the edge does per proxied call
// to build its audit event: the request's state, the call's four details
// and the event (AuditEventFor before finalAuditEvent).
func BenchmarkGatewayAuditEvent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		s := &reqState{id: "01JD4K7ZQ8X3V5N2M9T6W1Y0B8", start: time.Now(), ua: "bench/1", srcText: "127.0.0.1",
			action: "proxy", resource: "integrations/up"}
		ctx := context.WithValue(context.Background(), keyRequest, s)
		AddAuditDetail(ctx, "bytes_in", "0")
		AddAuditDetail(ctx, "bytes_out", "27")
		AddAuditDetail(ctx, "method", "GET")
		AddAuditDetail(ctx, "path", "/v1/ping")
		sinkEvent = s.finalAuditEvent(200)
	}
}

// AddAuditDetail keeps one value a key, the last, in the order the keys
// came, past the details the request state holds without allocating too.
func TestAddAuditDetail(t *testing.T) {
	s := &reqState{start: time.Now()}
	ctx := context.WithValue(context.Background(), keyRequest, s)
	want := AuditDetails{}
	for i := range 9 {
		k := string(rune('a' + i))
		AddAuditDetail(ctx, k, "first")
		AddAuditDetail(ctx, k, k)
		want = append(want, auditDetail{Key: k, Value: k})
	}
	AddAuditDetail(ctx, "a", "again")
	want[0].Value = "again"
	ev := AuditEventFor(ctx, 200)
	if !slices.Equal(ev.Detail, want) || ev.Detail.Get("a") != "again" || ev.Detail.Get("i") != "i" {
		t.Fatalf("detail %q, want %q", ev.Detail, want)
	}
	if final := s.finalAuditEvent(200); !slices.Equal(final.Detail, want) || final.Status != 200 || final.Outcome != "allowed" {
		t.Fatalf("final event %+v", final)
	}
}
