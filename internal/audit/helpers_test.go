package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// fakeSigner is the barrier's audit key; fail makes it act sealed.
type fakeSigner struct {
	priv ed25519.PrivateKey
	fail atomic.Bool
}

func newSigner(t testing.TB) *fakeSigner {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeSigner{priv: priv}
}

var errSealed = errors.New("fake signer: sealed")

func (s *fakeSigner) SignAudit(msg []byte) ([]byte, error) {
	if s.fail.Load() {
		return nil, errSealed
	}
	return ed25519.Sign(s.priv, msg), nil
}

func (s *fakeSigner) AuditPublicKey() (ed25519.PublicKey, error) {
	return s.priv.Public().(ed25519.PublicKey), nil
}

// openLog opens a Log on st, closed at cleanup.
func openLog(t testing.TB, st storage.Store, signer Signer, opts Options) *Log {
	t.Helper()
	l, err := Open(t.Context(), st, signer, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// testEntry is a plausible entry, distinct for each i.
func testEntry(i int) *Entry {
	return &Entry{
		RequestID:    fmt.Sprintf("req-%d", i),
		Principal:    fmt.Sprintf("user-%d", i%3),
		AuthMethod:   "token",
		AccessorHMAC: fmt.Sprintf("hmac-%032x", i),
		Action:       "read",
		Resource:     fmt.Sprintf("secret/app/%d", i),
		Environment:  "prod",
		SourceAddr:   "192.0.2.1",
		UserAgent:    "keyward-cli/1.0",
		Outcome:      OutcomeAllowed,
		Status:       200,
		LatencyUS:    int64(100 + i),
		Detail:       map[string]string{"version": fmt.Sprint(i)},
	}
}

// appendN appends n entries through Append and returns them.
func appendN(t testing.TB, l *Log, n int) []*Entry {
	t.Helper()
	out := make([]*Entry, n)
	for i := range n {
		e := testEntry(i + 1)
		if err := l.Append(t.Context(), e); err != nil {
			t.Fatalf("Append %d: %v", i+1, err)
		}
		out[i] = e
	}
	return out
}

// rawExec runs one statement on st, bypassing the Log.
func rawExec(t testing.TB, st storage.Store, q string, args ...any) {
	t.Helper()
	err := st.Write(t.Context(), func(tx storage.Tx) error {
		_, err := tx.Exec(t.Context(), q, args...)
		return err
	})
	if err != nil {
		t.Fatalf("raw SQL %q: %v", q, err)
	}
}

// rawRow reads one stored entry, its prev hash as List finds it.
func rawRow(t testing.TB, st storage.Store, seq int64) row {
	t.Helper()
	var r row
	err := st.Read(t.Context(), func(tx storage.Tx) error {
		b, err := rawBlock(tx, seq, true)
		if err != nil {
			return err
		}
		es, err := b.entries(nil)
		if err != nil {
			return err
		}
		r = es[seq-b.first()]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rawBlock reads the block holding entry seq.
func rawBlock(tx storage.Tx, seq int64, withPrev bool) (*storedBlock, error) {
	q := `SELECT ` + blockColumns + ` FROM audit_blocks a`
	if withPrev {
		q = selectWithPrev
	}
	rows, err := tx.Query(context.Background(), q+` WHERE a.seq >= $1 AND a.seq - a.n < $1 ORDER BY a.seq LIMIT 1`, seq)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, fmt.Errorf("entry %d not found", seq)
	}
	var b storedBlock
	if err := scanBlock(rows, &b, withPrev); err != nil {
		return nil, err
	}
	return &b, rows.Err()
}

// rawUpdate stores r (its time, principal, fields and hash) at r.seq in
// its block, as someone editing the database would: the block's text,
// hashes and latest time are rewritten, and r's principal listed.
func rawUpdate(t testing.TB, st storage.Store, r *row) {
	t.Helper()
	err := st.Write(t.Context(), func(tx storage.Tx) error {
		b, err := rawBlock(tx, r.seq, false)
		if err != nil {
			return err
		}
		es, err := b.entries(nil)
		if err != nil {
			return err
		}
		es[r.seq-b.first()] = *r
		rows := make([]*row, len(es))
		var hashes []byte
		tmax := es[0].time
		for i := range es {
			rows[i] = &es[i]
			hashes = append(hashes, es[i].hash...)
			tmax = max(tmax, es[i].time)
		}
		if _, err := tx.Exec(t.Context(), `UPDATE audit_blocks SET time_max = $1, entries = $2, hashes = $3 WHERE seq = $4`,
			tmax, string(appendBlockText(nil, rows)), hashes, b.seq); err != nil {
			return err
		}
		_, err = tx.Exec(t.Context(), `INSERT INTO audit_principals (principal, seq) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
			r.principal, b.seq)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// insertRaw inserts r as is.
func insertRaw(t testing.TB, st storage.Store, r *row) {
	t.Helper()
	err := st.Write(t.Context(), func(tx storage.Tx) error { return insertRows(t.Context(), tx, []*row{r}, nil) })
	if err != nil {
		t.Fatal(err)
	}
}

// count returns SELECT count(*) FROM table.
func count(t testing.TB, st storage.Store, table string) int64 {
	t.Helper()
	var n int64
	err := st.Read(t.Context(), func(tx storage.Tx) error {
		return tx.QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// mustVerify fails t unless the log verifies with want entries.
func mustVerify(t testing.TB, l *Log, want int64) *VerifyResult {
	t.Helper()
	res, err := l.Verify(t.Context())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.FirstBad != 0 || res.Problem != "" || res.Entries != want {
		t.Fatalf("Verify = %+v, want %d intact entries", res, want)
	}
	return res
}

// failingStore is a store whose Write fails while fail is set.
type failingStore struct {
	storage.Store
	fail atomic.Bool
}

var errDiskFull = errors.New("injected: disk full")

func (s *failingStore) Write(ctx context.Context, fn func(storage.Tx) error) error {
	if s.fail.Load() {
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, errDiskFull)
	}
	return s.Store.Write(ctx, fn)
}

// clock is a settable Options.Now.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }

// storedEntries returns how many entries the blocks hold.
func storedEntries(t testing.TB, st storage.Store) int64 {
	t.Helper()
	var n int64
	err := st.Read(t.Context(), func(tx storage.Tx) error {
		return tx.QueryRow(t.Context(), `SELECT coalesce(sum(n), 0) FROM audit_blocks`).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// int64s runs query, which selects one integer column, on st.
func int64s(t testing.TB, st storage.Store, query string) []int64 { return column[int64](t, st, query) }

// column runs query, which selects one column, on st and returns its values.
func column[T any](t testing.TB, st storage.Store, query string) []T {
	t.Helper()
	var out []T
	err := st.Read(t.Context(), func(tx storage.Tx) error {
		rows, err := tx.Query(t.Context(), query)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v T
			if err := rows.Scan(&v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// computeHash returns SHA-256(prevHash ‖ canonical(r)) as a slice, for
// tests that forge or check one entry.
func (r *row) computeHash(prevHash []byte, buf []byte) ([]byte, []byte) {
	sum, buf := r.sum(prevHash, buf)
	return sum[:], buf
}

// appendEntryText appends the text of r alone (no entry before it).
func (r *row) appendEntryText(b []byte) []byte { return r.appendEntryTextAfter(b, nil) }

// decodeEntryText sets r's fields from one entry text s alone (no null
// for an entry before it), as a block of one is decoded.
func (r *row) decodeEntryText(s string) error {
	d := textDecoder{s: s, elem: -1}
	if err := d.entry(r, nil); err != nil {
		return err
	}
	return d.end()
}
