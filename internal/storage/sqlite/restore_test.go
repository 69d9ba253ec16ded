package sqlite_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/sqlite"
)

// backupOf makes a snapshot of a keyward database holding "k" = value and a
// keyring row (an initialised server), and returns its path.
func backupOf(t *testing.T, value string) string {
	t.Helper()
	s := open(t, filepath.Join(t.TempDir(), "keyward.db"))
	put(t, s, "barrier/keyring", "sealed keyring")
	put(t, s, "k", value)
	f, err := s.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	dst := filepath.Join(t.TempDir(), "backup.db")
	if err := os.Rename(f.Name(), dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

func readK(t *testing.T, path string) string {
	t.Helper()
	s := open(t, path)
	defer s.Close()
	var v []byte
	err := s.Read(t.Context(), func(tx storage.Tx) error {
		var err error
		v, err = storage.GetSys(t.Context(), tx, "k")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func TestRestore(t *testing.T) {
	backup := backupOf(t, "from the backup")
	dir := t.TempDir()
	db := filepath.Join(dir, "keyward.db")
	cur := open(t, db)
	put(t, cur, "k", "current")
	if err := cur.Close(); err != nil { // a stopped server: no -wal, no -shm
		t.Fatal(err)
	}

	res, err := sqlite.Restore(t.Context(), backup, db, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Migration < 19 || len(res.SetAside) != 1 || !strings.HasPrefix(res.SetAside[0], db+".pre-restore-") {
		t.Fatalf("Restore = %+v", res)
	}
	if fi, err := os.Stat(db); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored file: %v, %v", fi, err)
	}
	if got := readK(t, db); got != "from the backup" {
		t.Fatalf("restored k = %q", got)
	}
	if got := readK(t, res.SetAside[0]); got != "current" {
		t.Fatalf("set-aside k = %q", got)
	}
	if b, _ := os.ReadFile(backup); !strings.HasPrefix(string(b), "SQLite format 3") {
		t.Fatal("the backup file was changed")
	}
}

// A database with a WAL beside it (a running or crashed server) is left
// alone unless forced; with force, the WAL is set aside with it, not
// applied to the restored file.
func TestRestoreRefusesADatabaseInUse(t *testing.T) {
	backup := backupOf(t, "from the backup")
	dir := t.TempDir()
	db := filepath.Join(dir, "keyward.db")
	running := open(t, db)
	put(t, running, "k", "in the WAL")
	_, err := sqlite.Restore(t.Context(), backup, db, false)
	if err == nil || !strings.Contains(err.Error(), "stop the server first") {
		t.Fatalf("Restore beside a live WAL: %v", err)
	}
	if got := readK(t, db); got != "in the WAL" {
		t.Fatalf("the refused restore touched the database: %q", got)
	}
	running.Close()
	if _, err := os.Stat(db + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a cleanly closed database keeps its WAL: %v", err)
	}
	os.WriteFile(db+"-wal", []byte("left by a crash"), 0o600)
	res, err := sqlite.Restore(t.Context(), backup, db, true)
	if err != nil || len(res.SetAside) != 2 {
		t.Fatalf("forced Restore = %+v, %v", res, err)
	}
	if _, err := os.Stat(db + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the WAL is still beside the restored file: %v", err)
	}
	if got := readK(t, db); got != "from the backup" {
		t.Fatalf("restored k = %q", got)
	}
}

func TestRestoreRefusesBadBackups(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "keyward.db")
	good := backupOf(t, "v")
	goodBytes, _ := os.ReadFile(good)
	write := func(name string, b []byte) string {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	damaged := append([]byte(nil), goodBytes...)
	for i := 4096; i < len(damaged); i++ { // every page after the first
		damaged[i] ^= 0x5a
	}
	uninit := func() string {
		s := open(t, filepath.Join(t.TempDir(), "keyward.db"))
		f, err := s.Snapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		return f.Name()
	}()
	newer := func() string {
		s := open(t, filepath.Join(t.TempDir(), "keyward.db"))
		put(t, s, "barrier/keyring", "x")
		if _, err := s.Exec(t.Context(), `INSERT INTO schema_migrations (version, name, sha256, applied_at) VALUES (9999, '9999_future.sql', '', 0)`); err != nil {
			t.Fatal(err)
		}
		f, err := s.Snapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		return f.Name()
	}()
	for name, tc := range map[string]struct {
		path, want string
	}{
		"missing":       {filepath.Join(dir, "nope.db"), "no such file"},
		"not sqlite":    {write("x.db", []byte("KEY=value\n")), "not an SQLite database"},
		"damaged":       {write("d.db", damaged), "damaged"},
		"uninitialised": {uninit, "never initialised"},
		"newer":         {newer, "migration 9999"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := sqlite.Restore(t.Context(), tc.path, db, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore = %v, want an error saying %q", err, tc.want)
			}
			if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a refused restore wrote the database")
			}
		})
	}
}
