package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/storage"
)

// Statements are prepared once, after the transaction that first ran
// them, and give the same results from the cache; texts that do not
// prepare keep failing with their own error; the cache is bounded.
func TestStatementCache(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "kw.db"))
	base := s.CachedStatements()
	ctx := t.Context()
	exec := func(q string, args ...any) error {
		return s.Write(ctx, func(tx storage.Tx) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		})
	}
	if err := exec(`CREATE TABLE cache_t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	const ins = `INSERT INTO cache_t (k, v) VALUES ($1, $2)`
	for i := range 5 {
		if err := exec(ins, fmt.Sprint("k", i), i); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	sum := func() (n, total int64) {
		err := s.Read(ctx, func(tx storage.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(v), 0) FROM cache_t WHERE v >= $1`, 0).Scan(&n, &total)
		})
		if err != nil {
			t.Fatal(err)
		}
		return n, total
	}
	for range 3 { // first unprepared, then from the cache
		if n, total := sum(); n != 5 || total != 10 {
			t.Fatalf("count, sum = %d, %d; want 5, 10", n, total)
		}
	}
	if got := s.CachedStatements() - base; got != 2 {
		t.Fatalf("%d statements cached, want 2 (the insert and the select; not the CREATE)", got)
	}
	// A uniqueness violation through a cached statement is still ErrConflict.
	if err := exec(ins, "k1", 9); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate insert through the cache = %v, want ErrConflict", err)
	}
	// A text that does not prepare fails each time, the same way.
	for range 2 {
		if err := exec(`INSERT INTO no_such_table VALUES ($1)`, 1); err == nil || !strings.Contains(err.Error(), "no_such_table") {
			t.Fatalf("bad statement = %v, want an error naming the table", err)
		}
	}
	// Bounded: past MaxCachedStatements, texts run unprepared.
	for i := range storage.MaxCachedStatements + 20 {
		if err := exec(fmt.Sprintf(`UPDATE cache_t SET v = v WHERE k = $1 AND %d = %d`, i, i), "k0"); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.CachedStatements(); n > storage.MaxCachedStatements {
		t.Fatalf("%d statements cached, over the bound of %d", n, storage.MaxCachedStatements)
	}
	// A cancelled context does not keep a text from being cached later.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	s.Write(cctx, func(tx storage.Tx) error { _, err := tx.Exec(cctx, `SELECT 42`); return err })
	if n, total := sum(); n != 5 || total != 10 {
		t.Fatalf("after all that: count, sum = %d, %d", n, total)
	}
}
