package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/keyward/keyward/internal/storage"
)

// Conformance runs the battery every storage.Store must pass. It only adds
// rows to sys under keys of its own (prefix "conformance/<random>/"), so s
// may hold other data; it does not close s.
func Conformance(t *testing.T, s storage.Store) {
	prefix := "conformance/" + rand.Text()[:10] + "/"
	key := func(name string) string { return prefix + name }
	ctx := t.Context()

	t.Run("Backend", func(t *testing.T) {
		want := map[string]string{storage.SQLite: "", storage.Postgres: " FOR UPDATE"}
		lock, ok := want[s.Backend()]
		if !ok {
			t.Fatalf("Backend() = %q, want %q or %q", s.Backend(), storage.SQLite, storage.Postgres)
		}
		mustWrite(t, s, func(tx storage.Tx) error {
			if tx.Backend() != s.Backend() {
				t.Errorf("Tx.Backend() = %q, Store.Backend() = %q", tx.Backend(), s.Backend())
			}
			if tx.LockForUpdate() != lock {
				t.Errorf("LockForUpdate() = %q, want %q", tx.LockForUpdate(), lock)
			}
			return nil
		})
	})

	t.Run("Ping", func(t *testing.T) {
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})

	t.Run("CommitAndRollback", func(t *testing.T) {
		mustWrite(t, s, func(tx storage.Tx) error {
			return storage.PutSys(ctx, tx, key("committed"), []byte("yes"))
		})
		errFn := errors.New("fn failed")
		err := s.Write(ctx, func(tx storage.Tx) error {
			if err := storage.PutSys(ctx, tx, key("rolled-back"), []byte("no")); err != nil {
				return err
			}
			return errFn
		})
		if err != errFn {
			t.Errorf("Write returned %v, want fn's own error value", err)
		}
		if got := get(t, s, key("committed")); string(got) != "yes" {
			t.Errorf("committed value = %q, want %q", got, "yes")
		}
		if v, err := tryGet(s, key("rolled-back")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("rolled-back key: value %q, err %v; want ErrNotFound", v, err)
		}
		// fn's own sentinel errors keep their identity.
		err = s.Read(ctx, func(tx storage.Tx) error { return fmt.Errorf("wrapped: %w", storage.ErrNotFound) })
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Read lost fn's error: %v", err)
		}
	})

	t.Run("ReadYourWrites", func(t *testing.T) {
		mustWrite(t, s, func(tx storage.Tx) error {
			if err := storage.PutSys(ctx, tx, key("ryw"), []byte("v1")); err != nil {
				return err
			}
			got, err := storage.GetSys(ctx, tx, key("ryw"))
			if err != nil {
				return err
			}
			if string(got) != "v1" {
				t.Errorf("inside the writing tx: %q, want v1", got)
			}
			return nil
		})
		if got := get(t, s, key("ryw")); string(got) != "v1" {
			t.Errorf("after commit: %q, want v1", got)
		}
	})

	t.Run("ReadIsSnapshot", func(t *testing.T) {
		put(t, s, key("snap"), []byte("before"))
		err := s.Read(ctx, func(tx storage.Tx) error {
			first, err := storage.GetSys(ctx, tx, key("snap"))
			if err != nil {
				return err
			}
			// A write committed while this Read is open...
			put(t, s, key("snap"), []byte("after"))
			// ...is not seen by it.
			second, err := storage.GetSys(ctx, tx, key("snap"))
			if err != nil {
				return err
			}
			if string(first) != "before" || string(second) != "before" {
				t.Errorf("inside one Read: %q then %q, want before twice", first, second)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, key("snap")); string(got) != "after" {
			t.Errorf("a later Read: %q, want after", got)
		}
	})

	t.Run("ReadIsReadOnly", func(t *testing.T) {
		err := s.Read(ctx, func(tx storage.Tx) error {
			return storage.PutSys(ctx, tx, key("ro"), []byte("x"))
		})
		if err == nil {
			t.Error("PutSys inside Read succeeded")
		}
		if _, err := tryGet(s, key("ro")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("write inside Read persisted: %v", err)
		}
	})

	t.Run("Conflict", func(t *testing.T) {
		put(t, s, key("dup"), []byte("first"))
		var execErr error
		err := s.Write(ctx, func(tx storage.Tx) error {
			_, execErr = tx.Exec(ctx, `INSERT INTO sys (key, value, updated_at) VALUES ($1, $2, $3)`, key("dup"), []byte("second"), 1)
			return execErr
		})
		if !errors.Is(execErr, storage.ErrConflict) {
			t.Errorf("Exec duplicate insert: %v, want ErrConflict", execErr)
		}
		if !errors.Is(err, storage.ErrConflict) {
			t.Errorf("Write: %v, want ErrConflict", err)
		}
		// An error met by QueryRow surfaces at Scan, untranslated; Write
		// translates what fn returns.
		err = s.Write(ctx, func(tx storage.Tx) error {
			var k string
			return tx.QueryRow(ctx, `INSERT INTO sys (key, value, updated_at) VALUES ($1, $2, $3) RETURNING key`, key("dup"), []byte("third"), 1).Scan(&k)
		})
		if !errors.Is(err, storage.ErrConflict) {
			t.Errorf("Write with QueryRow duplicate: %v, want ErrConflict", err)
		}
		if got := get(t, s, key("dup")); string(got) != "first" {
			t.Errorf("value after conflicts = %q, want first", got)
		}
	})

	t.Run("Exec", func(t *testing.T) {
		ins := `INSERT INTO sys (key, value, updated_at) VALUES ($1, $2, $3)`
		for i := range 2 { // the second time, a cached statement where the backend caches
			k := key("exec-" + strconv.Itoa(i))
			res, err := s.Exec(ctx, ins, k, []byte("v"), 1)
			if err != nil {
				t.Fatalf("Exec insert: %v", err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				t.Fatalf("RowsAffected = %d, %v; want 1", n, err)
			}
			if got := get(t, s, k); string(got) != "v" {
				t.Fatalf("value after Exec = %q", got)
			}
		}
		if _, err := s.Exec(ctx, ins, key("exec-0"), []byte("w"), 2); !errors.Is(err, storage.ErrConflict) {
			t.Errorf("Exec duplicate insert: %v, want ErrConflict", err)
		}
		res, err := s.Exec(ctx, `UPDATE sys SET value = $1 WHERE key = $2 AND updated_at > $3`, []byte("x"), key("exec-0"), 5)
		if err != nil {
			t.Fatalf("Exec update: %v", err)
		}
		if n, _ := res.RowsAffected(); n != 0 {
			t.Errorf("an update matching no row affected %d", n)
		}
		if got := get(t, s, key("exec-0")); string(got) != "v" {
			t.Errorf("value = %q, want v", got)
		}
	})

	t.Run("InsertSys", func(t *testing.T) {
		mustWrite(t, s, func(tx storage.Tx) error {
			return storage.InsertSys(ctx, tx, key("init"), []byte("one"))
		})
		// A conflict leaves the transaction usable on both backends.
		mustWrite(t, s, func(tx storage.Tx) error {
			if err := storage.InsertSys(ctx, tx, key("init"), []byte("two")); !errors.Is(err, storage.ErrConflict) {
				t.Errorf("second InsertSys: %v, want ErrConflict", err)
			}
			return storage.PutSys(ctx, tx, key("after-conflict"), []byte("ok"))
		})
		if got := get(t, s, key("init")); string(got) != "one" {
			t.Errorf("value = %q, want one", got)
		}
		if got := get(t, s, key("after-conflict")); string(got) != "ok" {
			t.Errorf("write after conflict = %q, want ok", got)
		}
		// Racing initialisers: exactly one wins.
		const racers = 8
		var wg sync.WaitGroup
		errs := make([]error, racers)
		for i := range racers {
			wg.Go(func() {
				errs[i] = s.Write(ctx, func(tx storage.Tx) error {
					return storage.InsertSys(ctx, tx, key("race"), []byte(strconv.Itoa(i)))
				})
			})
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, storage.ErrConflict):
				t.Errorf("racing InsertSys: %v", err)
			}
		}
		if wins != 1 {
			t.Errorf("%d racing InsertSys succeeded, want 1", wins)
		}
	})

	t.Run("NoRows", func(t *testing.T) {
		var scanErr error
		err := s.Read(ctx, func(tx storage.Tx) error {
			var v []byte
			scanErr = tx.QueryRow(ctx, `SELECT value FROM sys WHERE key = $1`, key("absent")).Scan(&v)
			return scanErr
		})
		if !errors.Is(scanErr, sql.ErrNoRows) || !errors.Is(err, sql.ErrNoRows) {
			t.Errorf("Scan: %v, Read: %v; want sql.ErrNoRows from both", scanErr, err)
		}
	})

	t.Run("Sys", func(t *testing.T) {
		k := key("sys")
		if _, err := tryGet(s, k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetSys absent: %v, want ErrNotFound", err)
		}
		put(t, s, k, []byte("a"))
		put(t, s, k, []byte("b"))
		if got := get(t, s, k); string(got) != "b" {
			t.Errorf("after overwrite: %q, want b", got)
		}
		var at int64
		if err := s.Read(ctx, func(tx storage.Tx) error {
			return tx.QueryRow(ctx, `SELECT updated_at FROM sys WHERE key = $1`, k).Scan(&at)
		}); err != nil || at <= 0 {
			t.Errorf("updated_at = %d, %v; want unix nanos", at, err)
		}
		mustWrite(t, s, func(tx storage.Tx) error { return storage.DeleteSys(ctx, tx, k) })
		if _, err := tryGet(s, k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("after delete: %v, want ErrNotFound", err)
		}
		err := s.Write(ctx, func(tx storage.Tx) error { return storage.DeleteSys(ctx, tx, k) })
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("deleting an absent key: %v, want ErrNotFound", err)
		}
		put(t, s, key("empty"), nil)
		if got := get(t, s, key("empty")); got == nil || len(got) != 0 {
			t.Errorf("empty value read back as %#v, want []byte{}", got)
		}
		// Binary values survive exactly, NUL bytes and all.
		bin := []byte{0, 1, 2, 0xff, 0, 'x', 0x80}
		put(t, s, key("bin"), bin)
		if got := get(t, s, key("bin")); !bytes.Equal(got, bin) {
			t.Errorf("binary value = %x, want %x", got, bin)
		}
	})

	t.Run("Placeholders", func(t *testing.T) {
		// $n bind by number on both backends: reordered and repeated.
		mustWrite(t, s, func(tx storage.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO sys (updated_at, value, key) VALUES ($3, $2, $1)`, key("ph"), []byte("v"), 7)
			return err
		})
		var n int
		if err := s.Read(ctx, func(tx storage.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM sys WHERE key = $1 AND updated_at = $2 AND key = $1`, key("ph"), 7).Scan(&n)
		}); err != nil || n != 1 {
			t.Errorf("count = %d, %v; want 1", n, err)
		}
	})

	t.Run("LargeValue", func(t *testing.T) {
		big := make([]byte, 1<<20)
		rand.Read(big)
		put(t, s, key("big"), big)
		if got := get(t, s, key("big")); !bytes.Equal(got, big) {
			t.Errorf("1 MiB value did not round-trip (got %d bytes)", len(got))
		}
	})

	t.Run("ConcurrentWriters", func(t *testing.T) {
		const writers = 64
		k := key("counter")
		put(t, s, k, []byte("0"))
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Go(func() {
				errs <- s.Write(ctx, func(tx storage.Tx) error {
					var v []byte
					if err := tx.QueryRow(ctx, `SELECT value FROM sys WHERE key = $1`+tx.LockForUpdate(), k).Scan(&v); err != nil {
						return err
					}
					n, err := strconv.Atoi(string(v))
					if err != nil {
						return err
					}
					return storage.PutSys(ctx, tx, k, []byte(strconv.Itoa(n+1)))
				})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent Write: %v", err)
			}
		}
		if got := get(t, s, k); string(got) != strconv.Itoa(writers) {
			t.Errorf("counter = %s after %d increments: updates were lost", got, writers)
		}
	})

	t.Run("Cancellation", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		ran := false
		err := s.Write(cctx, func(tx storage.Tx) error { ran = true; return nil })
		if !errors.Is(err, context.Canceled) || ran {
			t.Errorf("Write on a cancelled context: err %v, fn ran %v; want context.Canceled, not run", err, ran)
		}
		if err := s.Read(cctx, func(tx storage.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Errorf("Read on a cancelled context: %v, want context.Canceled", err)
		}
		// Cancelled mid-transaction: nothing commits, even though fn returns nil.
		cctx, cancel = context.WithCancel(ctx)
		err = s.Write(cctx, func(tx storage.Tx) error {
			if err := storage.PutSys(cctx, tx, key("cancelled"), []byte("x")); err != nil {
				return err
			}
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Write cancelled mid-way: %v, want context.Canceled", err)
		}
		if _, err := tryGet(s, key("cancelled")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("write of a cancelled transaction persisted: %v", err)
		}
		// The store still works.
		put(t, s, key("after-cancel"), []byte("ok"))
	})

	t.Run("Panic", func(t *testing.T) {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("panic in fn did not propagate")
				}
			}()
			s.Write(ctx, func(tx storage.Tx) error {
				if err := storage.PutSys(ctx, tx, key("panicked"), []byte("x")); err != nil {
					return err
				}
				panic("fn panics")
			})
		}()
		if _, err := tryGet(s, key("panicked")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("write of a panicking transaction persisted: %v", err)
		}
		// The writer was released: further writes go through.
		put(t, s, key("after-panic"), []byte("ok"))
		if got := get(t, s, key("after-panic")); string(got) != "ok" {
			t.Errorf("after panic: %q", got)
		}
	})
}

func mustWrite(t *testing.T, s storage.Store, fn func(storage.Tx) error) {
	t.Helper()
	if err := s.Write(t.Context(), fn); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func put(t *testing.T, s storage.Store, k string, v []byte) {
	t.Helper()
	mustWrite(t, s, func(tx storage.Tx) error { return storage.PutSys(t.Context(), tx, k, v) })
}

func tryGet(s storage.Store, k string) ([]byte, error) {
	var v []byte
	err := s.Read(context.Background(), func(tx storage.Tx) error {
		var err error
		v, err = storage.GetSys(context.Background(), tx, k)
		return err
	})
	return v, err
}

func get(t *testing.T, s storage.Store, k string) []byte {
	t.Helper()
	v, err := tryGet(s, k)
	if err != nil {
		t.Fatalf("GetSys(%q): %v", k, err)
	}
	return v
}
