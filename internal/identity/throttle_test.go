package identity

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestThrottleGrowingLockout(t *testing.T) {
	clk := newClock()
	var lockouts []string
	th := NewThrottle(ThrottleOptions{Now: clk.Now, OnLockout: func(k string) { lockouts = append(lockouts, k) }})
	const k = "principal:user:alice"
	for i := 1; i <= 4; i++ {
		if th.Fail(k) {
			t.Fatalf("failure %d locked", i)
		}
		if _, locked := th.Check(k); locked {
			t.Fatalf("locked after %d failures", i)
		}
	}
	// The 5th failure locks for 1 s, then 2 s, 4 s, ...
	for i, want := range []time.Duration{1, 2, 4, 8, 16} {
		if !th.Fail(k) {
			t.Fatalf("failure %d did not lock", 5+i)
		}
		d, locked := th.Check(k)
		if !locked || d != want*time.Second {
			t.Fatalf("failure %d: locked=%v retry=%v, want %v", 5+i, locked, d, want*time.Second)
		}
		clk.Advance(d - time.Millisecond)
		if _, locked := th.Check(k); !locked {
			t.Fatalf("lock %d ended early", i)
		}
		clk.Advance(time.Millisecond)
		if _, locked := th.Check(k); locked {
			t.Fatalf("lock %d did not end", i)
		}
	}
	if len(lockouts) != 5 || lockouts[0] != k {
		t.Fatalf("OnLockout calls: %v", lockouts)
	}
	// Capped at 15 min.
	for range 20 {
		th.Fail(k)
	}
	if d, _ := th.Check(k); d != 15*time.Minute {
		t.Fatalf("lockout not capped: %v", d)
	}
}

func TestThrottleForgetsAfterQuietWindow(t *testing.T) {
	clk := newClock()
	th := NewThrottle(ThrottleOptions{Now: clk.Now})
	for range 4 {
		th.Fail("k")
	}
	clk.Advance(15 * time.Minute)
	if th.Fail("k") {
		t.Fatal("failures older than the window still counted")
	}
	// A lockout keeps the key active: quiet starts when the lockout ends.
	for range 30 {
		th.Fail("k")
	}
	d, _ := th.Check("k")
	clk.Advance(d + 14*time.Minute)
	if !th.Fail("k") {
		t.Fatal("count forgotten before a quiet window after the lockout")
	}
}

func TestThrottleSuccessAndKeysIndependent(t *testing.T) {
	clk := newClock()
	th := NewThrottle(ThrottleOptions{Now: clk.Now})
	for range 5 {
		th.Fail("a", "src:1")
	}
	if _, locked := th.Check("b"); locked {
		t.Fatal("untouched key locked")
	}
	if _, locked := th.Check("b", "src:1"); !locked {
		t.Fatal("Check does not consider every key")
	}
	th.Success("a")
	if _, locked := th.Check("a"); locked {
		t.Fatal("Success did not clear the key")
	}
}

func TestThrottleBoundedMemory(t *testing.T) {
	clk := newClock()
	th := NewThrottle(ThrottleOptions{Now: clk.Now, MaxKeys: 100})
	for i := range 1000 {
		th.Fail(fmt.Sprintf("src:%d", i))
		clk.Advance(time.Millisecond)
	}
	if n := th.Len(); n > 100 {
		t.Fatalf("throttle holds %d keys, cap 100", n)
	}
	// Quiet entries go first when the sweep runs.
	clk.Advance(time.Hour)
	for range 5 {
		th.Fail("attacker")
	}
	if _, locked := th.Check("attacker"); !locked {
		t.Fatal("new key not tracked when full")
	}
	if n := th.Len(); n > 100 {
		t.Fatalf("throttle holds %d keys after sweep", n)
	}
}
