package ratelimit

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newLimiter(opts Options) (*Limiter, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts.Now = c.Now
	return New(opts), c
}

func TestBurstThenSteadyRate(t *testing.T) {
	l, c := newLimiter(Options{})
	lim := Limit{Count: 10, Period: time.Second} // one per 100ms, burst 10
	for i := range 10 {
		d := l.Allow("k", lim)
		if !d.Allowed || d.Remaining != 9-i || d.Limit != 10 || d.Window != time.Second {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	d := l.Allow("k", lim)
	if d.Allowed || d.Remaining != 0 || d.RetryAfter != 100*time.Millisecond || d.Reset != time.Second {
		t.Fatalf("11th request: %+v, want refused, retry after 100ms, reset 1s", d)
	}
	c.Add(99 * time.Millisecond)
	if d := l.Allow("k", lim); d.Allowed || d.RetryAfter != time.Millisecond {
		t.Fatalf("after 99ms: %+v", d)
	}
	c.Add(time.Millisecond)
	if d := l.Allow("k", lim); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after 100ms: %+v", d)
	}
	// Another key is untouched.
	if d := l.Allow("other", lim); !d.Allowed || d.Remaining != 9 {
		t.Fatalf("other key: %+v", d)
	}
	// After a full period the bucket is full again.
	c.Add(time.Second)
	if d := l.Peek("k", lim); !d.Allowed || d.Remaining != 10 || d.Reset != 0 {
		t.Fatalf("replenished: %+v", d)
	}
}

func TestBurstOverride(t *testing.T) {
	l, _ := newLimiter(Options{})
	lim := Limit{Count: 60, Period: time.Minute, Burst: 2}
	for i := range 2 {
		if !l.Allow("k", lim).Allowed {
			t.Fatalf("request %d refused", i)
		}
	}
	if d := l.Allow("k", lim); d.Allowed || d.RetryAfter != time.Second {
		t.Fatalf("3rd: %+v, want retry after 1s", d)
	}
}

func TestPeekConsumesNothing(t *testing.T) {
	l, _ := newLimiter(Options{})
	lim := Limit{Count: 2, Period: time.Hour}
	for range 5 {
		if d := l.Peek("k", lim); !d.Allowed || d.Remaining != 2 {
			t.Fatalf("peek: %+v", d)
		}
	}
	l.Allow("k", lim)
	l.Allow("k", lim)
	if d := l.Peek("k", lim); d.Allowed || d.RetryAfter != 30*time.Minute {
		t.Fatalf("peek when exhausted: %+v", d)
	}
	if s := l.Stats(); s.Keys != 1 {
		t.Fatalf("peeks stored keys: %+v", s)
	}
}

func TestZeroLimitAdmits(t *testing.T) {
	l, _ := newLimiter(Options{})
	for range 100 {
		if d := l.Allow("k", Limit{}); !d.Allowed {
			t.Fatal("zero limit refused")
		}
	}
	if s := l.Stats(); s.Keys != 0 {
		t.Fatalf("zero limit stored state: %+v", s)
	}
}

// Exactly the burst is admitted however many goroutines ask at once.
func TestConcurrentExactBurst(t *testing.T) {
	l, _ := newLimiter(Options{})
	lim := Limit{Count: 100, Period: time.Hour}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 10 {
				if l.Allow("shared", lim).Allowed {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 100 {
		t.Fatalf("admitted %d, want exactly 100", ok.Load())
	}
}

func TestMemoryBounded(t *testing.T) {
	l, c := newLimiter(Options{MaxKeys: numShards * 16})
	lim := Limit{Count: 1, Period: time.Second}
	// Idle keys are dropped losslessly.
	for i := range 10_000 {
		l.Allow("idle-"+strconv.Itoa(i), lim)
		c.Add(time.Second) // every earlier key is replenished
	}
	s := l.Stats()
	if s.Keys > numShards*16 || s.Forced != 0 {
		t.Fatalf("idle keys: %+v, want at most %d keys and none forced", s, numShards*16)
	}
	// Busy keys: memory stays bounded, at the cost of forced drops.
	for i := range 10_000 {
		l.Allow("busy-"+strconv.Itoa(i), Limit{Count: 1, Period: time.Hour})
	}
	s = l.Stats()
	if s.Keys > numShards*16 || s.Forced == 0 {
		t.Fatalf("busy keys: %+v", s)
	}
	c.Add(2 * time.Hour)
	l.Sweep()
	if s := l.Stats(); s.Keys != 0 {
		t.Fatalf("after sweep: %+v", s)
	}
}

func TestSetHeaders(t *testing.T) {
	h := http.Header{}
	SetHeaders(h, Decision{Allowed: false, Limit: 100, Window: time.Minute, Remaining: 0, Reset: 1500 * time.Millisecond, RetryAfter: 200 * time.Millisecond})
	want := map[string]string{"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "2", "RateLimit-Policy": "100;w=60", "Retry-After": "1"}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	h = http.Header{}
	SetHeaders(h, Decision{Allowed: true, Limit: 5, Window: time.Second, Remaining: 4, Reset: 200 * time.Millisecond})
	if h.Get("Retry-After") != "" || h.Get("RateLimit-Remaining") != "4" || h.Get("RateLimit-Reset") != "1" {
		t.Errorf("allowed headers %v", h)
	}
	h = http.Header{}
	SetHeaders(h, Decision{Allowed: true})
	if len(h) != 0 {
		t.Errorf("no limit set headers %v", h)
	}
}

func TestParseLimit(t *testing.T) {
	good := map[string]Limit{
		"":           {},
		"100/min":    {Count: 100, Period: time.Minute},
		"100/m":      {Count: 100, Period: time.Minute},
		"100/minute": {Count: 100, Period: time.Minute},
		"5/sec":      {Count: 5, Period: time.Second},
		"5/s":        {Count: 5, Period: time.Second},
		"5/seconds":  {Count: 5, Period: time.Second},
		"5000/hour":  {Count: 5000, Period: time.Hour},
		"5000/h":     {Count: 5000, Period: time.Hour},
		"10/day":     {Count: 10, Period: 24 * time.Hour},
		"7/30s":      {Count: 7, Period: 30 * time.Second},
	}
	for in, want := range good {
		got, err := ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if back, err := ParseLimit(got.String()); err != nil || back != got {
			t.Errorf("%q does not round-trip through %q: %+v %v", in, got.String(), back, err)
		}
	}
	for _, in := range []string{"100", "100/", "/min", "0/min", "-1/min", "1.5/min", "+1/min", "01/min", "100/ms", "100/1ms",
		"100/fortnight", "100/60d", "2000000000/min", "1/min/x", "１/min"} {
		if l, err := ParseLimit(in); err == nil || !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseLimit(%q) = %+v, %v; want a syntax error", in, l, err)
		}
	}
}

func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"100/min", "5/s", "7/30s", "1/1h30m", "0/min", "x/y", "", "/", "9999999999999999999/min", "1/-1s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLimit(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		if verr := l.Valid(); verr != nil {
			t.Fatalf("ParseLimit(%q) accepted an invalid limit %+v: %v", s, l, verr)
		}
		if back, err := ParseLimit(l.String()); err != nil || back != l {
			t.Fatalf("%q: %+v does not round-trip through %q (%+v, %v)", s, l, l.String(), back, err)
		}
		if !l.IsZero() {
			d := New(Options{}).Allow("k", l)
			if !d.Allowed || d.Remaining != l.Count-1 {
				t.Fatalf("first request under %+v: %+v", l, d)
			}
		}
	})
}

func BenchmarkAllow(b *testing.B) {
	lim := Limit{Count: 1 << 30, Period: time.Second}
	b.Run("one-key", func(b *testing.B) {
		l := New(Options{})
		b.ReportAllocs()
		for b.Loop() {
			l.Allow("key_0123456789abcdefghij", lim)
		}
	})
	b.Run("parallel-1000-keys", func(b *testing.B) {
		l := New(Options{})
		keys := make([]string, 1000)
		for i := range keys {
			keys[i] = "key_" + strconv.Itoa(i)
			l.Allow(keys[i], lim)
		}
		var n atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(n.Add(1)) * 7919
			for pb.Next() {
				l.Allow(keys[i%len(keys)], lim)
				i++
			}
		})
	})
}

func TestWithin(t *testing.T) {
	perMin := func(n int) Limit { return Limit{Count: n, Period: time.Minute} }
	for _, c := range []struct {
		l, outer Limit
		want     bool
	}{
		{perMin(100), perMin(100), true},
		{perMin(99), perMin(100), true},
		{perMin(101), perMin(100), false},
		{perMin(100), Limit{}, true},                                    // anything is within no limit
		{Limit{}, perMin(100), false},                                   // no limit is looser than any
		{Limit{}, Limit{}, true},                                        // no limit within no limit
		{Limit{Count: 10, Period: time.Second}, perMin(100), false},     // 600/min
		{Limit{Count: 50, Period: 30 * time.Second}, perMin(100), true}, // same rate, smaller burst
		{Limit{Count: 6000, Period: time.Hour}, perMin(100), false},     // same rate, burst 6000 > 100
		{Limit{Count: 1, Period: time.Hour}, Limit{Count: 1, Period: time.Second}, true},
		{perMin(100), Limit{Count: 100, Period: time.Minute, Burst: 200}, true},
		{Limit{Count: 100, Period: time.Minute, Burst: 200}, perMin(100), false},
		// Products beyond 64 bits: a billion per 31 days against a billion per day.
		{Limit{Count: MaxCount, Period: MaxPeriod}, Limit{Count: MaxCount, Period: 24 * time.Hour}, true},
		{Limit{Count: MaxCount, Period: 24 * time.Hour}, Limit{Count: MaxCount, Period: MaxPeriod}, false},
	} {
		if got := c.l.Within(c.outer); got != c.want {
			t.Errorf("%+v within %+v = %v, want %v", c.l, c.outer, got, c.want)
		}
	}
}

func TestStrictest(t *testing.T) {
	a := Decision{Allowed: true, Limit: 100, Remaining: 40, Reset: time.Second}
	b := Decision{Allowed: true, Limit: 10, Remaining: 3, Reset: 2 * time.Second}
	tie := Decision{Allowed: true, Limit: 5, Remaining: 3, Reset: 9 * time.Second}
	for _, c := range []struct{ x, y, want Decision }{
		{a, b, b}, {b, a, b},
		{Decision{}, a, a}, {a, Decision{Allowed: true}, a},
		{b, tie, tie}, {tie, b, tie},
		{Decision{}, Decision{}, Decision{}},
	} {
		if got := Strictest(c.x, c.y); got != c.want {
			t.Errorf("Strictest(%+v, %+v) = %+v, want %+v", c.x, c.y, got, c.want)
		}
	}
}

// Two limiters that exchange what they admitted (Drain on one, Debit on the
// other, as two nodes do through storage) admit the limit between them.
func TestDrainAndDebitShareALimit(t *testing.T) {
	a, ca := newLimiter(Options{Share: true})
	b, cb := newLimiter(Options{Share: true})
	lim := Limit{Count: 100, Period: time.Minute}
	exchange := func() {
		for _, s := range a.Drain() {
			b.Debit(s.Key, s.Interval, s.N)
		}
		for _, s := range b.Drain() {
			a.Debit(s.Key, s.Interval, s.N)
		}
	}
	admit := func(l *Limiter, n int) int {
		ok := 0
		for range n {
			if l.Allow("k", lim).Allowed {
				ok++
			}
		}
		return ok
	}
	if got := admit(a, 60); got != 60 {
		t.Fatalf("a admitted %d of 60", got)
	}
	exchange()
	if d := b.Peek("k", lim); d.Remaining != 40 {
		t.Fatalf("b after the exchange: %+v, want 40 remaining", d)
	}
	if got := admit(b, 60); got != 40 {
		t.Fatalf("b admitted %d, want the 40 left", got)
	}
	exchange()
	if got := admit(a, 10); got != 0 {
		t.Fatalf("a admitted %d after b spent the rest", got)
	}
	// Drained spending is not handed over twice, and a debit is not
	// handed back.
	if s := a.Drain(); len(s) != 0 {
		t.Fatalf("a drained %+v with nothing admitted since", s)
	}
	// Time replenishes both, one request every 600 ms.
	ca.Add(6 * time.Second)
	cb.Add(6 * time.Second)
	if got := admit(a, 20); got != 10 {
		t.Fatalf("a admitted %d after 6 s, want 10", got)
	}
}

// A limiter without Share drains nothing and keeps no key for it; Debit
// never overflows, however much is charged.
func TestDrainOffAndDebitBounds(t *testing.T) {
	l, _ := newLimiter(Options{})
	lim := Limit{Count: 10, Period: time.Second}
	l.Allow("k", lim)
	if s := l.Drain(); len(s) != 0 {
		t.Fatalf("Drain without Share = %+v", s)
	}
	l.Debit("k", 100*time.Millisecond, 1<<62)
	d := l.Peek("k", lim)
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > MaxPeriod {
		t.Fatalf("after a huge debit: %+v", d)
	}
	l.Debit("other", 0, 5) // no interval: ignored
	l.Debit("other", time.Second, -1)
	if !l.Allow("other", lim).Allowed {
		t.Fatal("a meaningless debit held a key back")
	}
}

// BenchmarkAllowShared is Allow with Options.Share (each key's first
// admission after a Drain is noted), drained every 10,000 calls.
func BenchmarkAllowShared(b *testing.B) {
	l := New(Options{Share: true})
	lim := Limit{Count: 1_000_000, Period: time.Second}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	i := 0
	for b.Loop() {
		l.Allow(keys[i%len(keys)], lim)
		if i++; i%10_000 == 0 {
			l.Drain()
		}
	}
}
