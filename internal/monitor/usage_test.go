package monitor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func sum(rows []Row, kind, subject string, status int) int64 {
	var n int64
	for _, r := range rows {
		if r.Kind == kind && r.Subject == subject && (status == 0 || r.Status == status) {
			n += r.Count
		}
	}
	return n
}

func TestRecordFlushQuery(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		c := &clock{t: time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)}
		// Two nodes sharing one database.
		a, b := New(st, c.now), New(st, c.now)
		var wg sync.WaitGroup
		for i := range 64 {
			wg.Go(func() {
				u := a
				if i%2 == 1 {
					u = b
				}
				for range 50 {
					u.Record(KindIntegration, "maps", 200)
				}
				u.Record(KindKey, "key_1", 429)
			})
		}
		wg.Wait()
		c.add(time.Minute)
		a.Record(KindIntegration, "maps", 502)
		for _, u := range []*Usage{a, b} {
			if err := u.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		// A second flush of the same minute adds, it does not overwrite.
		b.Record(KindIntegration, "maps", 200)
		if err := b.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		rows, err := a.Query(t.Context(), Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if got := sum(rows, KindIntegration, "maps", 200); got != 64*50+1 {
			t.Errorf("maps 200 = %d, want %d", got, 64*50+1)
		}
		if got := sum(rows, KindIntegration, "maps", 502); got != 1 {
			t.Errorf("maps 502 = %d, want 1", got)
		}
		if got := sum(rows, KindKey, "key_1", 429); got != 64 {
			t.Errorf("key_1 429 = %d, want 64", got)
		}
		// Minutes are separate rows.
		minutes := map[time.Time]bool{}
		for _, r := range rows {
			if r.Subject == "maps" {
				minutes[r.Minute] = true
			}
		}
		if len(minutes) != 2 {
			t.Errorf("maps spans %d minutes, want 2: %+v", len(minutes), rows)
		}
		// Filters.
		only, err := a.Query(t.Context(), Filter{Kind: KindKey, Subject: "key_1"})
		if err != nil || len(only) != 1 || only[0].Count != 64 || only[0].Minute != time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) {
			t.Fatalf("key filter = %+v, %v", only, err)
		}
		if n, err := a.Prune(t.Context(), c.now()); err != nil || n != 2 {
			t.Fatalf("Prune = %d, %v; want the 2 rows of the first minute", n, err)
		}
		if rows, _ := a.Query(t.Context(), Filter{}); sum(rows, KindIntegration, "maps", 0) != 2 {
			t.Errorf("after prune: %+v", rows)
		}
	})
}

func TestQueryRejectsBadFilters(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	u := New(st, nil)
	now := time.Now()
	for name, f := range map[string]Filter{
		"unknown kind":       {Kind: "user"},
		"subject w/o kind":   {Subject: "x"},
		"until before since": {Since: now, Until: now.Add(-time.Hour)},
	} {
		if _, err := u.Query(t.Context(), f); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

// A flush that fails keeps its counts for the next one.
func TestFailedFlushKeepsCounts(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	u := New(st, nil)
	u.Record(KindToken, "acc", 200)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := u.Flush(ctx); err == nil {
		t.Fatal("flush with a cancelled context succeeded")
	}
	if err := u.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	rows, err := u.Query(t.Context(), Filter{Kind: KindToken})
	if err != nil || sum(rows, KindToken, "acc", 200) != 1 {
		t.Fatalf("rows = %+v, %v", rows, err)
	}
}

func BenchmarkRecord(b *testing.B) {
	u := New(storagetest.OpenSQLite(b, storage.Options{}), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u.Record(KindIntegration, "maps", 200)
		}
	})
}

// LastSeen gives each subject asked about the last minute with a stored
// count of its kind; one never counted (or of another kind) is absent.
func TestLastSeen(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		c := &clock{t: time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)}
		u := New(st, c.now)
		u.Record(KindIntegration, "maps", 200)
		u.Record(KindIntegration, "pay", 502)
		u.Record(KindKey, "key_1", 200)
		if err := u.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.add(90 * time.Minute)
		u.Record(KindIntegration, "maps", 429)
		if err := u.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		got, err := u.LastSeen(t.Context(), KindIntegration, []string{"maps", "pay", "unused"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]time.Time{
			"maps": time.Date(2026, 11, 23, 11, 30, 0, 0, time.UTC),
			"pay":  time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		}
		if len(got) != len(want) || !got["maps"].Equal(want["maps"]) || !got["pay"].Equal(want["pay"]) {
			t.Errorf("LastSeen = %v, want %v", got, want)
		}
	})
}

// BenchmarkRecordCall is a gateway call's usage counting: one record for
// the integration, one for the caller's token, from many goroutines.
func BenchmarkRecordCall(b *testing.B) {
	u := New(storagetest.OpenSQLite(b, storage.Options{}), nil)
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u.Record(KindIntegration, "maps", 200)
			u.Record(KindToken, "hmac-accessor-0123456789abcdef", 200)
		}
	})
}

// BenchmarkRecordPair is BenchmarkRecordCall's counting with RecordPair.
func BenchmarkRecordPair(b *testing.B) {
	u := New(storagetest.OpenSQLite(b, storage.Options{}), nil)
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u.RecordPair(KindIntegration, "maps", KindToken, "hmac-accessor-0123456789abcdef", 200)
		}
	})
}

// RecordPair counts what two Records would, in the same minutes, and
// reports each count to OnRecord; an empty kind or subject skips only its
// own count.
func TestRecordPair(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)}
	u := New(st, c.now)
	type rec struct {
		kind, subject string
		status        int
	}
	var seen []rec
	u.OnRecord = func(kind, subject string, status int) { seen = append(seen, rec{kind, subject, status}) }
	u.RecordPair(KindIntegration, "maps", KindToken, "acc", 200)
	u.RecordPair(KindIntegration, "maps", KindKey, "key_1", 200)
	u.Record(KindIntegration, "maps", 200)
	u.RecordPair(KindIntegration, "maps", KindToken, "", 502) // no caller
	u.RecordPair(KindIntegration, "", KindToken, "acc", 502)  // no integration
	u.RecordPair("", "", "", "", 200)                         // nothing
	c.add(time.Minute)
	u.RecordPair(KindIntegration, "maps", KindToken, "acc", 200)
	want := []rec{
		{KindIntegration, "maps", 200}, {KindToken, "acc", 200},
		{KindIntegration, "maps", 200}, {KindKey, "key_1", 200},
		{KindIntegration, "maps", 200},
		{KindIntegration, "maps", 502},
		{KindToken, "acc", 502},
		{KindIntegration, "maps", 200}, {KindToken, "acc", 200},
	}
	if len(seen) != len(want) {
		t.Fatalf("OnRecord saw %+v, want %+v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("OnRecord saw %+v, want %+v", seen, want)
		}
	}
	if err := u.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	rows, err := u.Query(t.Context(), Filter{Since: c.now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	first, second := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC)
	got := map[Row]bool{}
	for _, r := range rows {
		got[r] = true
	}
	for _, r := range []Row{
		{KindIntegration, "maps", first, 200, 3},
		{KindIntegration, "maps", first, 502, 1},
		{KindToken, "acc", first, 200, 1},
		{KindToken, "acc", first, 502, 1},
		{KindKey, "key_1", first, 200, 1},
		{KindIntegration, "maps", second, 200, 1},
		{KindToken, "acc", second, 200, 1},
	} {
		if !got[r] {
			t.Errorf("missing %+v in %+v", r, rows)
		}
	}
	if len(rows) != 7 {
		t.Errorf("%d rows, want 7: %+v", len(rows), rows)
	}
}
