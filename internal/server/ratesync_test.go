package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/postgres"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// rateSyncNodes opens a fresh PostgreSQL schema (closed at the test's end)
// and returns it with a maker of nodes exchanging their spending through it.
func rateSyncNodes(t *testing.T) (storage.Store, func() *rateSync) {
	t.Helper()
	url, schema := storagetest.PostgresSchema(t)
	st, err := postgres.Open(t.Context(), url, storage.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, func() *rateSync {
		r, err := newRateSync(t.Context(), st, ratelimit.New(ratelimit.Options{Share: true}), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// Nodes that exchange their spending through rate_spend admit a limit
// between them; a node that starts later does not charge history.
func TestRateSyncSharesSpending(t *testing.T) {
	st, node := rateSyncNodes(t)
	ctx := t.Context()
	a, b := node(), node()
	lim := ratelimit.Limit{Count: 100, Period: time.Minute}
	const key = limitIntegration + "maps" // a NUL byte inside, as real keys have
	admit := func(r *rateSync, k string, n int) int {
		ok := 0
		for range n {
			if r.lim.Allow(k, lim).Allowed {
				ok++
			}
		}
		return ok
	}
	step := func(rs ...*rateSync) {
		t.Helper()
		for _, r := range rs {
			if err := r.step(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := admit(a, key, 60); got != 60 {
		t.Fatalf("a admitted %d", got)
	}
	step(a, b)
	if d := b.lim.Peek(key, lim); d.Remaining != 40 {
		t.Fatalf("b after the exchange: %d remaining, want 40", d.Remaining)
	}
	if got := admit(b, key, 60); got != 40 {
		t.Fatalf("b admitted %d, want 40", got)
	}
	step(b, a)
	if got := admit(a, key, 5); got != 0 {
		t.Fatalf("a admitted %d after b spent the rest", got)
	}
	step(a, b, a, b) // nothing new: nothing charged twice
	if d := b.lim.Peek(key, lim); d.Remaining != 0 || d.Reset > time.Minute+time.Second {
		t.Fatalf("b after idle exchanges: %+v", d)
	}

	// A node started now treats the rows already there as history.
	c := node()
	step(c)
	if d := c.lim.Peek(key, lim); d.Remaining != 100 {
		t.Fatalf("a late node charged history: %d remaining", d.Remaining)
	}
	// ... but what a node admits after it started is charged.
	admit(a, "token\x00other", 1)
	step(a, c)
	if d := c.lim.Peek("token\x00other", lim); d.Remaining != 99 {
		t.Fatalf("c after a's new spending: %d remaining, want 99", d.Remaining)
	}

	// Rows idle for ten minutes are swept; a row created again after that
	// is charged whole.
	if _, err := st.Exec(ctx, `UPDATE rate_spend SET updated = updated - $1 WHERE key = $2`, int64(rateSpendIdle+time.Minute), []byte(key)); err != nil {
		t.Fatal(err)
	}
	if err := c.tidy(ctx); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		st.Read(ctx, func(tx storage.Tx) error { return tx.QueryRow(ctx, `SELECT count(*) FROM rate_spend`).Scan(&n) })
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("%d rows left after tidying, want the one still in use", n)
	}
	c.lim.Allow(key, lim) // c's own budget for key: 99 left
	d := node()
	d.lim.Allow(key, lim)
	step(d, c) // d's row for key is new: c charges it whole
	if got := c.lim.Peek(key, lim).Remaining; got != 98 {
		t.Fatalf("c after d's new row: %d remaining, want 98", got)
	}
}

// Two running nodes on one database: a token's rate holds across them.
func TestTokenRateHoldsAcrossNodes(t *testing.T) {
	a, b := twoPostgresNodes(t, "")
	var tok struct {
		Token, Accessor string
	}
	if c := call(t, "POST", a.url+"/v1/auth/token/create", a.node.DevRootToken(), map[string]any{"policies": []string{"default"}, "rate": "10/min"}, &tok); c != 200 {
		t.Fatalf("token create = %d", c)
	}
	lookup := func(u string) int { return call(t, "GET", u+"/v1/auth/token/lookup-self", tok.Token, nil, nil) }
	for i := range 6 {
		if c := lookup(a.url); c != http.StatusOK {
			t.Fatalf("call %d on a = %d", i, c)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.node.keyLimiter.Peek(limitToken+tok.Accessor, ratelimit.Limit{Count: 10, Period: time.Minute}).Remaining > 4 {
		if time.Now().After(deadline) {
			t.Fatal("node b never learnt of node a's calls")
		}
		time.Sleep(20 * time.Millisecond)
	}
	codes := ""
	for range 5 {
		codes += fmt.Sprint(lookup(b.url), " ")
	}
	if codes != "200 200 200 200 429 " {
		t.Fatalf("calls on b = %s, want four 200 then 429", codes)
	}
}

// Spending a failed publish did not hand over goes with the next exchange,
// summed with what came after; carried longer than rateCarryFor, dropped.
func TestRateSyncRetriesAFailedPublish(t *testing.T) {
	_, node := rateSyncNodes(t)
	ctx := t.Context()
	a, b := node(), node()
	lim := ratelimit.Limit{Count: 100, Period: time.Minute}
	const key = "token\x00carry"
	admit := func(n int) {
		for range n {
			a.lim.Allow(key, lim)
		}
	}
	admit(30)
	dead, cancel := context.WithCancel(ctx)
	cancel()
	if err := a.step(dead); err == nil {
		t.Fatal("a publish with an ended context succeeded")
	}
	admit(10)
	if err := a.step(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.step(ctx); err != nil {
		t.Fatal(err)
	}
	if d := b.lim.Peek(key, lim); d.Remaining != 60 {
		t.Fatalf("b after a's retried publish: %d remaining, want 60 (30 carried + 10)", d.Remaining)
	}

	// Carried too long: dropped, not charged late.
	admit(5)
	start := time.Now()
	a.keepUnsent(a.withUnsent(a.lim.Drain()), start)
	a.keepUnsent(a.unsent, start.Add(rateCarryFor+time.Millisecond))
	if len(a.unsent) != 0 {
		t.Fatalf("spending carried past rateCarryFor: %+v", a.unsent)
	}
}

func TestRateSyncWithUnsentSumsByKey(t *testing.T) {
	r := &rateSync{unsent: []ratelimit.Spent{{Key: "k1", Interval: time.Second, N: 3}, {Key: "k2", Interval: time.Second, N: 1}}}
	got := r.withUnsent([]ratelimit.Spent{{Key: "k1", Interval: 2 * time.Second, N: 4}, {Key: "k3", Interval: time.Second, N: 2}})
	want := map[string]ratelimit.Spent{"k1": {Key: "k1", Interval: 2 * time.Second, N: 7}, "k2": {Key: "k2", Interval: time.Second, N: 1}, "k3": {Key: "k3", Interval: time.Second, N: 2}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for _, s := range got {
		if want[s.Key] != s {
			t.Errorf("%s: %+v, want %+v", s.Key, s, want[s.Key])
		}
	}
	if r.unsent[0].N != 3 {
		t.Fatal("withUnsent changed the carried entries in place")
	}
}
