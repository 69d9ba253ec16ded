package httpapi

import (
	"context"
	"testing"
	"time"
)

// sinkEvent keeps the benchmark's events reachable, as an auditor does.
var sinkEvent *AuditEvent

// BenchmarkGatewayAuditEvent measures what the edge does per proxied call
// to build its audit event: the request's state, the call's four details
// and AuditEventFor.
func BenchmarkGatewayAuditEvent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		s := &reqState{id: "01JD4K7ZQ8X3V5N2M9T6W1Y0B8", start: time.Now(), ua: "bench/1", srcText: "127.0.0.1",
			action: "proxy", resource: "integrations/up"}
		ctx := context.WithValue(context.Background(), keyRequest, s)
		AddAuditDetail(ctx, "method", "GET")
		AddAuditDetail(ctx, "path", "/v1/ping")
		AddAuditDetail(ctx, "bytes_in", "0")
		AddAuditDetail(ctx, "bytes_out", "27")
		sinkEvent = AuditEventFor(ctx, 200)
	}
}
