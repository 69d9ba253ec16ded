package identity

import (
	"sync"
	"time"
)

// Throttle counts failed logins per key ("principal:user:alice",
// "src:192.0.2.1", ...) in memory. After Threshold failures without a
// Window-long pause, each further failure locks the key for
// 2^(failures-Threshold) seconds, capped at MaxLockout. A key's count is
// forgotten once it has been quiet (no failure, no lockout) for Window.
//
// Memory is bounded: at MaxKeys entries, quiet entries are swept and, if the
// map is still full, the least recently active of a random sample is evicted.
//
// Each node throttles on its own; behind a load balancer an attacker gets
// at most one budget per node.
type Throttle struct {
	opts ThrottleOptions

	mu        sync.Mutex
	m         map[string]*throttleEntry
	lastSweep time.Time
}

type throttleEntry struct {
	failures    int
	last        time.Time // last failure
	lockedUntil time.Time
}

// quiet reports whether e has been inactive for a whole window at now.
func (e *throttleEntry) quiet(now time.Time, window time.Duration) bool {
	active := e.last
	if e.lockedUntil.After(active) {
		active = e.lockedUntil
	}
	return now.Sub(active) >= window
}

// ThrottleOptions configure a Throttle. The zero value gives the defaults.
type ThrottleOptions struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnLockout is called, outside the Throttle's lock, for every key a
	// failure locks.
	OnLockout func(key string)
	// Threshold is the number of failures before the first lockout (default 5).
	Threshold int
	// Window is how long a key must be quiet to be forgotten (default 15 min).
	Window time.Duration
	// MaxLockout caps one lockout (default 15 min).
	MaxLockout time.Duration
	// MaxKeys bounds the number of keys tracked (default 65536).
	MaxKeys int
}

// Throttle defaults.
const (
	DefaultThrottleThreshold  = 5
	DefaultThrottleWindow     = 15 * time.Minute
	DefaultThrottleMaxLockout = 15 * time.Minute
	DefaultThrottleMaxKeys    = 1 << 16

	throttleSweepEvery = time.Minute
	throttleSample     = 16
)

// NewThrottle returns an empty Throttle.
func NewThrottle(opts ThrottleOptions) *Throttle {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Threshold <= 0 {
		opts.Threshold = DefaultThrottleThreshold
	}
	if opts.Window <= 0 {
		opts.Window = DefaultThrottleWindow
	}
	if opts.MaxLockout <= 0 {
		opts.MaxLockout = DefaultThrottleMaxLockout
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultThrottleMaxKeys
	}
	return &Throttle{opts: opts, m: map[string]*throttleEntry{}}
}

// Check reports whether any of keys is locked out and, if so, how long until
// the last of their lockouts ends.
func (t *Throttle) Check(keys ...string) (retryAfter time.Duration, locked bool) {
	now := t.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if e := t.m[k]; e != nil && now.Before(e.lockedUntil) {
			retryAfter = max(retryAfter, e.lockedUntil.Sub(now))
			locked = true
		}
	}
	return retryAfter, locked
}

// Fail records one failure against each key and reports whether it locked
// any of them.
func (t *Throttle) Fail(keys ...string) (lockedNow bool) {
	now := t.opts.Now()
	var lockedKeys []string
	t.mu.Lock()
	for _, k := range keys {
		e := t.m[k]
		if e == nil {
			t.makeRoom(now)
			e = &throttleEntry{}
			t.m[k] = e
		} else if e.quiet(now, t.opts.Window) {
			*e = throttleEntry{}
		}
		e.failures++
		e.last = now
		if e.failures >= t.opts.Threshold {
			e.lockedUntil = now.Add(t.lockout(e.failures))
			lockedKeys = append(lockedKeys, k)
		}
	}
	t.mu.Unlock()
	if t.opts.OnLockout != nil {
		for _, k := range lockedKeys {
			t.opts.OnLockout(k)
		}
	}
	return len(lockedKeys) > 0
}

// Success forgets key's failures (after a successful login, or an operator's
// unlock).
func (t *Throttle) Success(key string) {
	t.mu.Lock()
	delete(t.m, key)
	t.mu.Unlock()
}

// Len returns the number of keys tracked.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// lockout is 2^(failures-Threshold) seconds, capped.
func (t *Throttle) lockout(failures int) time.Duration {
	n := failures - t.opts.Threshold
	if n >= 30 {
		return t.opts.MaxLockout
	}
	return min(time.Duration(1<<n)*time.Second, t.opts.MaxLockout)
}

// makeRoom ensures one more key fits. t.mu is held.
func (t *Throttle) makeRoom(now time.Time) {
	if len(t.m) < t.opts.MaxKeys {
		return
	}
	if now.Sub(t.lastSweep) >= throttleSweepEvery {
		t.lastSweep = now
		for k, e := range t.m {
			if e.quiet(now, t.opts.Window) {
				delete(t.m, k)
			}
		}
	}
	for len(t.m) >= t.opts.MaxKeys {
		var victim string
		var oldest time.Time
		i := 0
		for k, e := range t.m { // map order is randomised: a random sample
			active := e.last
			if e.lockedUntil.After(active) {
				active = e.lockedUntil
			}
			if victim == "" || active.Before(oldest) {
				victim, oldest = k, active
			}
			if i++; i == throttleSample {
				break
			}
		}
		delete(t.m, victim)
	}
}
