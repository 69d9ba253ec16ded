package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// record counts n requests of subject with status at minute m of u's clock.
func recordAt(u *Usage, c *clock, at time.Time, kind, subject string, status int, n int) {
	c.mu.Lock()
	saved := c.t
	c.t = at
	c.mu.Unlock()
	for range n {
		u.Record(kind, subject, status)
	}
	c.mu.Lock()
	c.t = saved
	c.mu.Unlock()
}

func TestDetector(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		ctx := t.Context()
		c := &clock{t: time.Unix(1_800_000_000, 0).Truncate(time.Minute)}
		u := New(st, c.now)
		m := c.t.Unix() / 60
		at := func(minute int64) time.Time { return time.Unix(minute*60+5, 0) }
		// steady: 20 a minute for an hour, then 700 (a spike).
		// busy: 700 a minute all hour (its usual: no spike).
		// prober: 40 refusals of 50 requests (refusals).
		// new: 700 in its first minute (a spike: no history).
		// quiet: 100 after 1 a minute (ten times, but under SpikeMin).
		for i := int64(1); i <= 60; i++ {
			recordAt(u, c, at(m-i), KindKey, "steady", 200, 20)
			recordAt(u, c, at(m-i), KindToken, "busy", 200, 700)
			recordAt(u, c, at(m-i), KindKey, "quiet", 200, 1)
		}
		recordAt(u, c, at(m), KindKey, "steady", 200, 700)
		recordAt(u, c, at(m), KindToken, "busy", 200, 700)
		recordAt(u, c, at(m), KindToken, "prober", 403, 40)
		recordAt(u, c, at(m), KindToken, "prober", 200, 10)
		recordAt(u, c, at(m), KindKey, "new", 200, 700)
		recordAt(u, c, at(m), KindKey, "quiet", 200, 100)
		recordAt(u, c, at(m), KindIntegration, "maps", 200, 5000) // integrations are not credentials
		if err := u.Flush(ctx); err != nil {
			t.Fatal(err)
		}

		d := NewDetector(st, Rules{}, c.now)
		var responded []string
		d.Respond = func(_ context.Context, a *Alert) string {
			responded = append(responded, a.Kind+" "+a.Subject)
			if a.Subject == "new" {
				return ResponseRevoked
			}
			return ResponseAlert
		}
		got, err := d.Evaluate(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{"spike steady": true, "refusals prober": true, "spike new": true}
		if len(got) != len(want) || len(responded) != len(want) {
			t.Fatalf("alerts %+v (responded %v), want %v", got, responded, want)
		}
		for _, a := range got {
			if !want[a.Kind+" "+a.Subject] || a.ID == 0 || a.Minute.Unix() != m*60 {
				t.Errorf("unexpected alert %+v", a)
			}
			if a.Subject == "steady" && (a.Count != 700 || a.Baseline != 20) {
				t.Errorf("steady's spike: %+v", a)
			}
		}

		// A second evaluation (another node, or a retry) records and
		// responds to nothing more.
		d2 := NewDetector(st, Rules{}, c.now)
		d2.Respond = func(context.Context, *Alert) string { t.Error("responded twice"); return ResponseAlert }
		if again, err := d2.Evaluate(ctx, m); err != nil || len(again) != 0 {
			t.Fatalf("second evaluation: %+v, %v", again, err)
		}
		list, err := d.Alerts(ctx, AlertFilter{})
		if err != nil || len(list) != 3 {
			t.Fatalf("Alerts = %+v, %v", list, err)
		}
		for _, a := range list {
			if want := map[bool]string{true: ResponseRevoked, false: ResponseAlert}[a.Subject == "new"]; a.Response != want {
				t.Errorf("%s: response %q, want %q", a.Subject, a.Response, want)
			}
		}
		if l, _ := d.Alerts(ctx, AlertFilter{Since: c.now().Add(time.Hour)}); len(l) != 0 {
			t.Fatalf("alerts since later: %+v", l)
		}
	})
}

func TestDetectorDue(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0).Truncate(time.Minute).Add(10 * time.Second)}
	d := NewDetector(nil, Rules{}, c.now)
	m := c.t.Unix() / 60
	// 10 s into minute m: m-1 ended 10 s ago, not settled (20 s).
	if from, to := d.due(); from != m-2 || to != m-2 {
		t.Fatalf("first due = %d..%d, want %d", from, to, m-2)
	}
	d.last = m - 2
	c.add(15 * time.Second)
	if from, to := d.due(); from != m-1 || to != m-1 {
		t.Fatalf("due after settling = %d..%d, want %d", from, to, m-1)
	}
	d.last = m - 500 // down for a while: at most an hour's worth
	if from, to := d.due(); to-from != 59 {
		t.Fatalf("catching up = %d..%d", from, to)
	}
}
