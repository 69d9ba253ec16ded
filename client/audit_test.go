package client

import (
	"context"
	"net/url"
	"testing"
	"time"
)

func TestListAudit(t *testing.T) {
	f, c := newFake(t)
	f.json("GET /v1/audit", 200, `{"entries":[{"seq":7,"time":"2030-01-01T00:00:00Z","principal":"user:alice","action":"read","resource":"projects/p/envs/dev/secrets/x","outcome":"denied","status":403,"latency_us":120,"detail":{"reason":"no policy"}}],"next":8}`)
	since := time.Date(2030, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))
	es, next, err := c.ListAudit(context.Background(), AuditFilter{Since: since, Principal: "user:alice", ResourcePrefix: "projects/p/", Outcome: "denied", After: 6, Limit: 50})
	if err != nil || len(es) != 1 || next != 8 || es[0].Seq != 7 || es[0].Status != 403 || es[0].Detail["reason"] != "no policy" {
		t.Fatalf("list: %+v %d %v", es, next, err)
	}
	q, _ := url.ParseQuery(f.last().RawQuery)
	want := url.Values{"since": {"2029-12-31T23:00:00Z"}, "principal": {"user:alice"}, "resource_prefix": {"projects/p/"}, "outcome": {"denied"}, "after": {"6"}, "limit": {"50"}}
	if q.Encode() != want.Encode() {
		t.Errorf("query = %s, want %s", q.Encode(), want.Encode())
	}
	if _, _, err := c.ListAudit(context.Background(), AuditFilter{}); err != nil || f.last().RawQuery != "" {
		t.Errorf("empty filter sent %q (%v)", f.last().RawQuery, err)
	}
}

func TestVerifyAudit(t *testing.T) {
	f, c := newFake(t)
	f.json("POST /v1/audit/verify", 200, `{"ok":false,"entries":41,"checkpoints":2,"first_bad":42,"problem":"hash mismatch"}`)
	v, err := c.VerifyAudit(context.Background())
	if err != nil || v.OK || v.FirstBad != 42 || v.Problem != "hash mismatch" || v.Entries != 41 || v.Checkpoints != 2 {
		t.Fatalf("verify: %+v %v", v, err)
	}
	if f.last().Method != "POST" {
		t.Errorf("verify used %s", f.last().Method)
	}
}
