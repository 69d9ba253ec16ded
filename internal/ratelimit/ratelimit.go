// Package ratelimit is an in-memory rate limiter keyed by string: the
// generic cell rate algorithm (GCRA), the token bucket expressed as one
// timestamp per key.
//
// A Limit of N per period with burst B admits B requests at once and then one
// every period/N. Each key keeps only its theoretical arrival time (TAT): a
// request at now is admitted when max(TAT, now) + period/N - now fits within
// the burst tolerance B × period/N, and moves TAT forward by period/N.
//
// Invariants:
//   - Allow and Peek allocate nothing once a key is known (the first request
//     of a key inserts it into a map). Keys are spread over 64 shards, each
//     with its own mutex, so concurrent callers rarely meet.
//   - Memory is bounded: a key whose TAT has passed is fully replenished and
//     indistinguishable from an unknown key, so dropping it loses nothing. A
//     shard that reaches its share of MaxKeys first drops such idle keys; if
//     every key is busy it drops an arbitrary eighth of them, which hands
//     those keys a fresh budget (counted in Stats.Forced).
//   - State is per process. Nodes that share their spending make a
//     cluster-wide limit: Drain hands over what this limiter admitted since
//     the last Drain, and Debit charges a key for what other nodes admitted
//     (internal/server does this through the database on PostgreSQL), so
//     the cluster admits the limit plus at most what each node admits
//     between two exchanges. Quotas, which need exactness, are counted in
//     storage instead (internal/apikey).
//
// The package imports no keyward package; any package may import it.
package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limit is a rate: Count requests per Period, with bursts of up to Burst.
// The zero Limit means "no limit".
type Limit struct {
	Count  int
	Period time.Duration
	Burst  int // 0: Count
}

// Bounds on what ParseLimit accepts.
const (
	MaxCount  = 1_000_000_000
	MaxPeriod = 31 * 24 * time.Hour
)

// IsZero reports whether l is "no limit".
func (l Limit) IsZero() bool { return l.Count == 0 }

func (l Limit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return l.Count
}

// Valid reports whether l is usable (or zero).
func (l Limit) Valid() error {
	if l.IsZero() && l.Period == 0 && l.Burst == 0 {
		return nil
	}
	switch {
	case l.Count <= 0 || l.Count > MaxCount:
		return fmt.Errorf("rate: count must be between 1 and %d", MaxCount)
	case l.Period < time.Second || l.Period > MaxPeriod:
		return fmt.Errorf("rate: period must be between 1s and %s", MaxPeriod)
	case l.Burst < 0 || l.Burst > MaxCount:
		return fmt.Errorf("rate: burst must be between 0 and %d", MaxCount)
	}
	return nil
}

// Within reports whether l admits no more than outer: neither its
// sustained rate (Count per Period) nor its burst exceeds outer's. Every
// limit is within the zero Limit (no limit); the zero Limit is within no
// other. A child credential may hold only a rate within its parent's.
func (l Limit) Within(outer Limit) bool {
	switch {
	case outer.IsZero():
		return true
	case l.IsZero():
		return false
	}
	// l.Count/l.Period <= outer.Count/outer.Period, cross-multiplied in
	// 128 bits: a count (up to 1e9) times a period in nanoseconds (up to
	// 2.7e15) does not fit in 64.
	lh, ll := bits.Mul64(uint64(l.Count), uint64(outer.Period))
	oh, ol := bits.Mul64(uint64(outer.Count), uint64(l.Period))
	if lh > oh || lh == oh && ll > ol {
		return false
	}
	return l.burst() <= outer.burst()
}

var units = []struct {
	names []string
	d     time.Duration
}{
	{[]string{"s", "sec", "second"}, time.Second},
	{[]string{"m", "min", "minute"}, time.Minute},
	{[]string{"h", "hour"}, time.Hour},
	{[]string{"d", "day"}, 24 * time.Hour},
}

// ErrSyntax is wrapped by every ParseLimit error.
var ErrSyntax = errors.New("invalid rate")

// ParseLimit reads "N/UNIT" (UNIT: s|sec|second, m|min|minute, h|hour,
// d|day) or "N/DURATION" ("100/30s"). "" is the zero Limit.
func ParseLimit(s string) (Limit, error) {
	if s == "" {
		return Limit{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("%w %q: want N/UNIT, such as 100/min (units: sec, min, hour, day)", ErrSyntax, printable(s))
	}
	count, err := strconv.Atoi(n)
	if err != nil || count <= 0 || count > MaxCount || strconv.Itoa(count) != n {
		return Limit{}, fmt.Errorf("%w %q: the count must be a whole number from 1 to %d", ErrSyntax, printable(s), MaxCount)
	}
	var period time.Duration
	for _, u := range units {
		for _, name := range u.names {
			if per == name || per == name+"s" && len(name) > 1 {
				period = u.d
			}
		}
	}
	if period == 0 {
		d, err := time.ParseDuration(per)
		if err != nil {
			return Limit{}, fmt.Errorf("%w %q: unknown unit %q (use sec, min, hour, day or a duration such as 30s)", ErrSyntax, printable(s), printable(per))
		}
		period = d
	}
	l := Limit{Count: count, Period: period}
	if err := l.Valid(); err != nil {
		return Limit{}, fmt.Errorf("%w %q: %v", ErrSyntax, printable(s), err)
	}
	return l, nil
}

// String formats l the way ParseLimit reads it.
func (l Limit) String() string {
	if l.IsZero() {
		return ""
	}
	switch l.Period {
	case time.Second:
		return strconv.Itoa(l.Count) + "/sec"
	case time.Minute:
		return strconv.Itoa(l.Count) + "/min"
	case time.Hour:
		return strconv.Itoa(l.Count) + "/hour"
	case 24 * time.Hour:
		return strconv.Itoa(l.Count) + "/day"
	}
	return strconv.Itoa(l.Count) + "/" + l.Period.String()
}

// printable quotes at most 64 bytes of untrusted input for a message.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// Decision is the outcome of Allow or Peek.
type Decision struct {
	Allowed   bool
	Limit     int           // requests per Window
	Window    time.Duration // the limit's period
	Remaining int           // requests that would be admitted right now
	// Reset is how long until the key is fully replenished.
	Reset time.Duration
	// RetryAfter, when not Allowed, is how long until one request fits.
	RetryAfter time.Duration
}

// Strictest returns whichever of a and b a client should be shown when
// both limits applied to one request: the one with fewer requests
// remaining (on a tie, the later reset). A decision without a limit never
// wins over one with a limit.
func Strictest(a, b Decision) Decision {
	switch {
	case a.Limit == 0:
		return b
	case b.Limit == 0:
		return a
	case b.Remaining < a.Remaining || b.Remaining == a.Remaining && b.Reset > a.Reset:
		return b
	}
	return a
}

const numShards = 64

type shard struct {
	mu    sync.Mutex
	tat   map[string]cell
	dirty []string      // keys admitted since the last Drain (Options.Share)
	_     [64 - 40]byte // keep shards on separate cache lines
}

// cell is a key's state.
type cell struct {
	tat   int64 // theoretical arrival time, nanoseconds since Limiter.epoch
	t     int64 // emission interval of the limit last applied, nanoseconds
	spent int64 // admissions since the last Drain
}

// Options tune a Limiter.
type Options struct {
	// MaxKeys bounds the keys remembered (default 1<<20, ~100 MB at worst).
	MaxKeys int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Share counts admissions for Drain. Set it only when something calls
	// Drain regularly: a key with admissions not yet drained is kept.
	Share bool
}

// Limiter limits many keys independently. It is safe for concurrent use.
type Limiter struct {
	shards   [numShards]shard
	seed     maphash.Seed
	now      func() time.Time
	epoch    time.Time
	perShard int
	share    int64 // 1 with Options.Share: what an admission adds to spent

	statsMu sync.Mutex
	forced  int64
}

// New returns a Limiter.
func New(opts Options) *Limiter {
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 1 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Limiter{seed: maphash.MakeSeed(), now: opts.Now, perShard: max(opts.MaxKeys/numShards, 1)}
	if opts.Share {
		l.share = 1
	}
	l.epoch = l.now()
	for i := range l.shards {
		l.shards[i].tat = map[string]cell{}
	}
	return l
}

// since returns nanoseconds from the limiter's epoch to t (monotonic when t
// carries a monotonic reading, as time.Now's do).
func (l *Limiter) since(t time.Time) int64 { return int64(t.Sub(l.epoch)) }

func (l *Limiter) shard(key string) *shard {
	return &l.shards[maphash.String(l.seed, key)%numShards]
}

// interval and tolerance of a limit, in nanoseconds.
func params(lim Limit) (t, tau int64) {
	t = max(int64(lim.Period)/int64(lim.Count), 1)
	b := int64(lim.burst())
	if b > math.MaxInt64/t {
		return t, math.MaxInt64 / 2
	}
	return t, t * b
}

// Allow admits or refuses one request of key under lim. A zero lim always
// admits. The key's state is only updated when the request is admitted.
func (l *Limiter) Allow(key string, lim Limit) Decision {
	return l.take(key, lim, l.now(), true)
}

// AllowAt is Allow at a time the caller has already read from the
// limiter's clock (saving a clock read on a hot path).
func (l *Limiter) AllowAt(key string, lim Limit, now time.Time) Decision {
	return l.take(key, lim, now, true)
}

// Peek reports what Allow would decide, without consuming anything.
func (l *Limiter) Peek(key string, lim Limit) Decision {
	return l.take(key, lim, l.now(), false)
}

func (l *Limiter) take(key string, lim Limit, at time.Time, consume bool) Decision {
	if lim.IsZero() {
		return Decision{Allowed: true}
	}
	t, tau := params(lim)
	d := Decision{Limit: lim.Count, Window: lim.Period}
	now := l.since(at)
	sh := l.shard(key)
	sh.mu.Lock()
	c, known := sh.tat[key]
	tat := max(c.tat, now)
	next := tat + t
	diff := next - now
	if diff > tau {
		sh.mu.Unlock()
		d.RetryAfter = time.Duration(diff - tau)
		d.Reset = time.Duration(tat - now)
		return d
	}
	if consume {
		if !known && len(sh.tat) >= l.perShard {
			l.evict(sh, now)
		}
		if l.share != 0 && c.spent == 0 {
			sh.dirty = append(sh.dirty, key)
		}
		sh.tat[key] = cell{tat: next, t: t, spent: c.spent + l.share}
	} else {
		diff = tat - now // nothing consumed: report the state as it is
	}
	sh.mu.Unlock()
	d.Allowed = true
	d.Remaining = int((tau - diff) / t)
	d.Reset = time.Duration(diff)
	return d
}

// idle reports whether c is fully replenished at now and has nothing left
// to Drain: dropping it loses nothing.
func (c cell) idle(now int64) bool { return c.tat <= now && c.spent == 0 }

// evict makes room in a full shard; sh.mu is held.
func (l *Limiter) evict(sh *shard, now int64) {
	for k, c := range sh.tat {
		if c.idle(now) {
			delete(sh.tat, k)
		}
	}
	if len(sh.tat) < l.perShard {
		return
	}
	n := 0
	for k := range sh.tat {
		delete(sh.tat, k)
		if n++; n >= l.perShard/8+1 {
			break
		}
	}
	l.statsMu.Lock()
	l.forced += int64(n)
	l.statsMu.Unlock()
}

// Sweep drops every idle key (fully replenished: nothing is lost). Call it
// now and then from a background job to return memory after a burst of keys.
func (l *Limiter) Sweep() {
	now := l.since(l.now())
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k, c := range sh.tat {
			if c.idle(now) {
				delete(sh.tat, k)
			}
		}
		sh.mu.Unlock()
	}
}

// Spent is what a limiter admitted for one key since the last Drain.
type Spent struct {
	Key string
	// Interval is the time one request takes of the key's limit (its
	// period divided by its count), as last applied.
	Interval time.Duration
	N        int64
}

// Drain returns what was admitted since the last Drain, key by key, and
// starts counting afresh (nothing unless Options.Share).
func (l *Limiter) Drain() []Spent {
	var out []Spent
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for _, k := range sh.dirty {
			if c, ok := sh.tat[k]; ok && c.spent > 0 {
				out = append(out, Spent{Key: k, Interval: time.Duration(c.t), N: c.spent})
				c.spent = 0
				sh.tat[k] = c
			}
		}
		clear(sh.dirty)
		sh.dirty = sh.dirty[:0]
		sh.mu.Unlock()
	}
	return out
}

// Debit charges key n requests of interval each that were admitted
// elsewhere (by another node), as though admitted here now: the key's
// next admissions wait for them. They are not counted for Drain.
func (l *Limiter) Debit(key string, interval time.Duration, n int64) {
	if n <= 0 || interval <= 0 {
		return
	}
	now := l.since(l.now())
	// Capped so that no amount of remote spending can overflow the
	// arrival time: a key is never held back more than MaxPeriod.
	add := int64(MaxPeriod)
	if n < add/int64(interval) {
		add = n * int64(interval)
	}
	sh := l.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c, known := sh.tat[key]
	if !known && len(sh.tat) >= l.perShard {
		l.evict(sh, now)
	}
	c.tat = min(max(c.tat, now)+add, now+int64(MaxPeriod))
	if c.t == 0 {
		c.t = int64(interval)
	}
	sh.tat[key] = c
}

// Stats describes the limiter's memory.
type Stats struct {
	Keys   int   // keys remembered
	Forced int64 // busy keys dropped because a shard was full
}

// Stats counts the keys held.
func (l *Limiter) Stats() Stats {
	var s Stats
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		s.Keys += len(sh.tat)
		sh.mu.Unlock()
	}
	l.statsMu.Lock()
	s.Forced = l.forced
	l.statsMu.Unlock()
	return s
}

// SetHeaders writes the rate-limit headers of d: RateLimit-Limit,
// RateLimit-Remaining, RateLimit-Reset (whole seconds, rounded up) and
// RateLimit-Policy ("100;w=60") of the IETF httpapi draft, and Retry-After
// (seconds, rounded up) when d refused. A decision without a limit sets
// nothing.
func SetHeaders(h http.Header, d Decision) {
	if d.Limit == 0 {
		return
	}
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.Reset), 10))
	h.Set("RateLimit-Policy", strconv.Itoa(d.Limit)+";w="+strconv.FormatInt(ceilSeconds(d.Window), 10))
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(max(ceilSeconds(d.RetryAfter), 1), 10))
	}
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
