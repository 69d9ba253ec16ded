package audit

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// Quick settings for tests: a look every 10 ms, a lease of 300 ms.
const (
	testShipEvery = 10 * time.Millisecond
	testShipLease = 300 * time.Millisecond
)

// lineSeqs decodes the seq of each line.
func lineSeqs(t *testing.T, lines []string) []int64 {
	t.Helper()
	out := make([]int64, len(lines))
	for i, l := range lines {
		var e Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %d: %v: %q", i, err, l)
		}
		out[i] = e.Seq
	}
	return out
}

// wantSeqs fails unless got is exactly from..to in order.
func wantSeqs(t *testing.T, got []int64, from, to int64) {
	t.Helper()
	if int64(len(got)) != to-from+1 {
		t.Fatalf("got seqs %v, want %d..%d", got, from, to)
	}
	for i, s := range got {
		if s != from+int64(i) {
			t.Fatalf("got seqs %v, want %d..%d", got, from, to)
		}
	}
}

// serveCollector serves a collector that checks signatures under a test
// secret, until the test ends.
func serveCollector(t *testing.T) (*collector, string) {
	c := &collector{secret: []byte("collector-secret-0123456789")}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv.URL
}

// storedCursor reads the shipping cursor (-1 when none).
func storedCursor(t *testing.T, st storage.Store) int64 {
	t.Helper()
	cur := int64(-1)
	st.Read(t.Context(), func(tx storage.Tx) error {
		v, err := storage.GetSys(t.Context(), tx, ShipCursorKey)
		if err == nil {
			cur, err = parseCursor(v)
		}
		return err
	})
	return cur
}

// errs collects what a Shipper reports.
type errs struct {
	mu sync.Mutex
	e  []string
}

func (r *errs) add(err error) { r.mu.Lock(); r.e = append(r.e, err.Error()); r.mu.Unlock() }
func (r *errs) all() string   { r.mu.Lock(); defer r.mu.Unlock(); return strings.Join(r.e, "\n") }

// A shipper starts at the log's head, keeps every entry while the
// collector fails, delivers them in order once it answers, sends what is
// stored at Close, and the next shipper (another start) resumes after the
// last delivered entry: nothing lost, nothing twice.
func TestShipperDeliversEveryEntryOnce(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{})
		appendN(t, l, 3) // before the webhook was on: not shipped
		c, url := serveCollector(t)
		c.fail.Store(4)
		var reported errs
		s := l.ship(url, c.secret, nil, reported.add, testShipEvery, testShipLease)
		appendN(t, l, 20)
		waitFor(t, "20 entries shipped", func() bool { return len(c.got()) >= 20 })
		wantSeqs(t, lineSeqs(t, c.got()), 4, 23)
		if !strings.Contains(reported.all(), "503") || !strings.Contains(reported.all(), "kept; retried") {
			t.Errorf("failures not reported: %q", reported.all())
		}
		appendN(t, l, 2)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wantSeqs(t, lineSeqs(t, c.got()), 4, 25) // Close sent the last two
		if s.Shipped() != 22 || s.Failing() {
			t.Errorf("Shipped = %d, Failing = %v; want 22, false", s.Shipped(), s.Failing())
		}

		appendN(t, l, 5) // while no node ships
		c.fail.Store(1 << 20)
		s2 := l.ship(url, c.secret, nil, reported.add, testShipEvery, testShipLease)
		waitFor(t, "5 entries pending", func() bool { return s2.Pending() == 5 && s2.Failing() })
		c.fail.Store(0)
		waitFor(t, "the backlog shipped", func() bool { return len(c.got()) >= 27 })
		waitFor(t, "nothing pending", func() bool { return s2.Pending() == 0 && !s2.Failing() })
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
		wantSeqs(t, lineSeqs(t, c.got()), 4, 30)
		if c.badSigs != 0 {
			t.Errorf("%d requests badly signed", c.badSigs)
		}
	})
}

// Two nodes on one database: one ships at a time, every node's entries
// once and in order; when it stops, the other takes over at once; when it
// dies without a word, the other takes over once the lease has run out.
func TestShipperOneNodeAtATime(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		signer := newSigner(t)
		a := openLog(t, st, signer, Options{})
		b := openLog(t, st, signer, Options{})
		c, url := serveCollector(t)
		sa := a.ship(url, c.secret, nil, nil, testShipEvery, testShipLease)
		sb := b.ship(url, c.secret, nil, nil, testShipEvery, testShipLease)
		for i := range 10 {
			appendN(t, []*Log{a, b}[i%2], 1)
		}
		waitFor(t, "10 entries shipped", func() bool { return len(c.got()) >= 10 })
		time.Sleep(5 * testShipEvery) // a second shipper would send them again by now
		wantSeqs(t, lineSeqs(t, c.got()), 1, 10)
		if got := sa.Shipped() + sb.Shipped(); got != 10 || sa.Shipped() != 0 && sb.Shipped() != 0 {
			t.Errorf("shipped by a %d, by b %d; want 10 by one of them", sa.Shipped(), sb.Shipped())
		}

		// The holder stops: the other takes over.
		holder, other := sa, sb
		if sb.Shipped() > 0 {
			holder, other = sb, sa
		}
		if err := holder.Close(); err != nil {
			t.Fatal(err)
		}
		appendN(t, a, 3)
		waitFor(t, "the other node shipping", func() bool { return len(c.got()) >= 13 })
		wantSeqs(t, lineSeqs(t, c.got()), 1, 13)

		// A node that dies keeps its lease until it runs out. (It dies
		// after storing its cursor: one that dies between a delivery and
		// that write sends the batch again, at least once.)
		waitFor(t, "the cursor at 13", func() bool { return storedCursor(t, st) == 13 })
		close(other.quit)
		<-other.done
		var dead lease
		if err := st.Write(t.Context(), func(tx storage.Tx) (err error) {
			dead, err = readLease(t.Context(), tx, tx.LockForUpdate())
			return err
		}); err != nil || dead.holder != other.node {
			t.Fatalf("lease held by %q (%v), want the dead node %q", dead.holder, err, other.node)
		}
		until := dead.until
		third := b.ship(url, c.secret, nil, nil, testShipEvery, testShipLease)
		defer third.Close()
		appendN(t, b, 2)
		waitFor(t, "a third node shipping", func() bool { return len(c.got()) >= 15 })
		if now := time.Now(); now.Before(until) {
			t.Errorf("took over %v before the dead node's lease ran out", until.Sub(now))
		}
		wantSeqs(t, lineSeqs(t, c.got()), 1, 15)
	})
}

// Entries deleted by retention before they were shipped are reported as
// a gap, and shipping goes on after it.
func TestShipperReportsEntriesDeletedBeforeShipping(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := newClock(t0)
	l := openLog(t, st, newSigner(t), Options{Now: clk.now})
	// The webhook was on before anything was logged, then off.
	if err := st.Write(t.Context(), func(tx storage.Tx) error {
		return storage.PutSys(t.Context(), tx, ShipCursorKey, []byte("0"))
	}); err != nil {
		t.Fatal(err)
	}
	for range 12 {
		clk.add(time.Second)
		appendN(t, l, 1)
	}
	if n, err := l.Prune(t.Context(), t0.Add(10500*time.Millisecond)); err != nil || n != 10 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	c, url := serveCollector(t)
	var reported errs
	s := l.ship(url, c.secret, nil, reported.add, testShipEvery, testShipLease)
	defer s.Close()
	waitFor(t, "the rest shipped", func() bool { return len(c.got()) >= 2 })
	wantSeqs(t, lineSeqs(t, c.got()), 11, 12)
	if !strings.Contains(reported.all(), "entries 1 to 10 were deleted") {
		t.Errorf("gap not reported: %q", reported.all())
	}
}

// A stored cursor that is not a number stops shipping with an error
// naming it, rather than starting over.
func TestShipperRefusesABadCursor(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{})
	if err := st.Write(t.Context(), func(tx storage.Tx) error {
		return storage.PutSys(t.Context(), tx, ShipCursorKey, []byte("x1"))
	}); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	c, url := serveCollector(t)
	var reported errs
	s := l.ship(url, c.secret, nil, reported.add, testShipEvery, testShipLease)
	waitFor(t, "the error", func() bool { return reported.all() != "" })
	s.Close()
	if !strings.Contains(reported.all(), `stored cursor "x1" is not a seq`) || len(c.got()) != 0 {
		t.Errorf("reported %q, shipped %d lines", reported.all(), len(c.got()))
	}
}

// An entry edited in the database does not stop shipping: the collector
// gets a line naming its seq as tampered, then the entries after it.
func TestShipperShipsPastATamperedEntry(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		l := openLog(t, st, newSigner(t), Options{})
		c, url := serveCollector(t)
		var reported errs
		s := l.ship(url, c.secret, nil, reported.add, testShipEvery, testShipLease)
		defer s.Close()
		appendN(t, l, 5) // one block each
		waitFor(t, "5 entries shipped", func() bool { return len(c.got()) >= 5 })
		s.Close()
		appendN(t, l, 3)
		rawExec(t, st, `UPDATE audit_blocks SET entries = 'edited' WHERE seq = 7`)
		s2 := l.ship(url, c.secret, nil, reported.add, testShipEvery, testShipLease)
		defer s2.Close()
		waitFor(t, "8 lines shipped", func() bool { return len(c.got()) >= 8 })
		lines := c.got()
		wantSeqs(t, lineSeqs(t, lines), 1, 8)
		var bad Tampered
		if err := json.Unmarshal([]byte(lines[6]), &bad); err != nil || bad.Seq != 7 || !strings.Contains(bad.Tampered, "tampered") {
			t.Fatalf("line of the edited entry: %q (%v)", lines[6], err)
		}
		if strings.Contains(lines[7], "tampered") || strings.Contains(lines[5], "tampered") {
			t.Fatalf("its neighbours: %q, %q", lines[5], lines[7])
		}
	})
}

// Batches of WebhookBatch lines cut through blocks of many entries: each
// entry still goes once, in order.
func TestShipperBatchesCutThroughBlocks(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	l := openLog(t, st, newSigner(t), Options{})
	c, url := serveCollector(t)
	s := l.ship(url, c.secret, nil, nil, testShipEvery, testShipLease)
	defer s.Close()
	const n = 2*WebhookBatch + 77
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		if err := l.AppendAsync(testEntry(i+1), func(err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	var blocks int
	if err := st.Read(t.Context(), func(tx storage.Tx) error {
		return tx.QueryRow(t.Context(), `SELECT count(*) FROM audit_blocks`).Scan(&blocks)
	}); err != nil || blocks >= n/4 {
		t.Fatalf("%d blocks for %d entries (%v): the test needs blocks of many entries", blocks, n, err)
	}
	waitFor(t, "every entry shipped", func() bool { return len(c.got()) >= n })
	wantSeqs(t, lineSeqs(t, c.got()), 1, n)
}

// A webhook turned on after retention deleted every block starts at the
// chain's head, not at 0: no gap is reported for entries it was never
// meant to ship.
func TestShipperStartsAtTheHeadAfterEverythingWasPruned(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := newClock(t0)
	l := openLog(t, st, newSigner(t), Options{Now: clk.now})
	for range 5 {
		clk.add(time.Second)
		appendN(t, l, 1)
	}
	if n, err := l.Prune(t.Context(), t0.Add(time.Hour)); err != nil || n != 5 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	c, url := serveCollector(t)
	var reported errs
	s := l.ship(url, c.secret, nil, reported.add, testShipEvery, testShipLease)
	defer s.Close()
	if cur := storedCursor(t, st); cur != 5 {
		t.Fatalf("first cursor = %d, want the head, 5", cur)
	}
	clk.add(2 * time.Hour)
	appendN(t, l, 1)
	waitFor(t, "the new entry shipped", func() bool { return len(c.got()) >= 1 })
	wantSeqs(t, lineSeqs(t, c.got()), 6, 6)
	if r := reported.all(); r != "" {
		t.Errorf("reported %q, want nothing", r)
	}
}
