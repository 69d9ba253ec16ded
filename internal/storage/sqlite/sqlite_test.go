package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/sqlite"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Conformance(t, storagetest.OpenSQLite(t, storage.Options{}))
}

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, storage.Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t *testing.T, s storage.Store, k, v string) {
	t.Helper()
	if err := s.Write(t.Context(), func(tx storage.Tx) error { return storage.PutSys(t.Context(), tx, k, []byte(v)) }); err != nil {
		t.Fatal(err)
	}
}

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "data")
	path := filepath.Join(dir, "keyward.db")
	s := open(t, path)
	put(t, s, "k", "v") // makes sure the -wal exists
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s mode = %o, want 600", filepath.Base(p), m)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o700 {
		t.Errorf("created data directory mode = %o, want 700", m)
	}
}

func TestTightensExistingMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	s := open(t, path)
	put(t, s, "k", "v")
	s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	open(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("mode after reopen = %o, want 600", m)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	s := open(t, path)
	put(t, s, "k", "kept")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	s = open(t, path)
	var v []byte
	var migrations int
	err := s.Read(t.Context(), func(tx storage.Tx) error {
		var err error
		if v, err = storage.GetSys(t.Context(), tx, "k"); err != nil {
			return err
		}
		return tx.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&migrations)
	})
	if err != nil || string(v) != "kept" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
	files, err := fs.ReadDir(sqlite.Migrations(), ".")
	if err != nil {
		t.Fatal(err)
	}
	if migrations != len(files) {
		t.Errorf("schema_migrations has %d rows after two opens, want one per file (%d)", migrations, len(files))
	}
}

func TestNotADatabase(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"text":         []byte("this is a config file, not a database\n"),
		"short":        []byte("SQLite"),
		"header-only":  append([]byte("SQLite format 3\x00"), make([]byte, 200)...),
		"header-noise": append([]byte("SQLite format 3\x00"), []byte(strings.Repeat("\xde\xad\xbe\xef", 2048))...),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := sqlite.Open(t.Context(), path, storage.Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded on a file that is not a database")
			}
			if !errors.Is(err, storage.ErrInvalidDatabase) {
				t.Errorf("error %v does not wrap ErrInvalidDatabase", err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a valid keyward database") {
				t.Errorf("error %q should name %s and say it is not a valid keyward database", err, path)
			}
			got, _ := os.ReadFile(path)
			if string(got) != string(content) {
				t.Error("Open modified the file it refused")
			}
		})
	}
}

func TestForeignSQLiteDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE users (name TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = sqlite.Open(t.Context(), path, storage.Options{})
	if !errors.Is(err, storage.ErrInvalidDatabase) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open on another application's database: %v", err)
	}
}

func TestUnwritableDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := sqlite.Open(t.Context(), filepath.Join(file, "sub", "keyward.db"), storage.Options{})
	if err == nil || !strings.Contains(err.Error(), "data directory") || !strings.Contains(err.Error(), file) {
		t.Errorf("Open under a regular file: %v; want an error naming the data directory", err)
	}

	if os.Geteuid() == 0 {
		t.Log("running as root: permission bits are not enforced, skipping the read-only directory case")
		return
	}
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(t.Context(), filepath.Join(ro, "keyward.db"), storage.Options{})
	if err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("Open in a read-only directory: %v", err)
	}
}

func TestPathWithURIMetacharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "we?ird#dir %41", "keyward.db")
	s := open(t, path)
	put(t, s, "k", "v")
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not created at the literal path: %v", err)
	}
}

// A database touched by a newer keyward (a migration this binary lacks) or
// holding an edited migration is refused with an error naming the file.
func TestRefusesForeignSchemaVersions(t *testing.T) {
	for name, tc := range map[string]struct {
		tamper string
		want   error
	}{
		"too-new": {`INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 'abc', 1)`, storage.ErrSchemaTooNew},
		"edited":  {`UPDATE schema_migrations SET sha256 = 'f00d' WHERE version = 1`, storage.ErrMigrationChanged},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keyward.db")
			s := open(t, path)
			s.Close()
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(tc.tamper); err != nil {
				t.Fatal(err)
			}
			db.Close()
			_, err = sqlite.Open(t.Context(), path, storage.Options{})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open: %v, want %v naming the file", err, tc.want)
			}
		})
	}
}

// Two stores (as two processes would) on one file serialise their writes
// through SQLite's lock and busy_timeout.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	a, b := open(t, path), open(t, path)
	put(t, a, "n", "0")
	var wg sync.WaitGroup
	for _, s := range []*sqlite.Store{a, b, a, b} {
		wg.Go(func() {
			for range 10 {
				err := s.Write(t.Context(), func(tx storage.Tx) error {
					v, err := storage.GetSys(t.Context(), tx, "n")
					if err != nil {
						return err
					}
					n, _ := strconv.Atoi(string(v))
					return storage.PutSys(t.Context(), tx, "n", []byte(strconv.Itoa(n+1)))
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	err := b.Read(t.Context(), func(tx storage.Tx) error {
		v, err := storage.GetSys(t.Context(), tx, "n")
		if err == nil && string(v) != "40" {
			t.Errorf("counter = %s, want 40", v)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestObserverAndClose(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	var failed []string
	obs := func(op, backend string, d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if backend != storage.SQLite || d < 0 {
			t.Errorf("observer got backend %q, duration %v", backend, d)
		}
		seen[op]++
		if err != nil {
			failed = append(failed, op)
		}
	}
	s := storagetest.OpenSQLite(t, storage.Options{Observer: obs})
	put(t, s, "k", "v")
	s.Read(t.Context(), func(tx storage.Tx) error { return nil })
	s.Write(t.Context(), func(tx storage.Tx) error { return errors.New("boom") })
	s.Ping(t.Context())
	mu.Lock()
	if seen["migrate"] != 1 || seen["write"] != 2 || seen["read"] != 1 || seen["ping"] != 1 {
		t.Errorf("observed %v", seen)
	}
	if len(failed) != 1 || failed[0] != "write" {
		t.Errorf("observed failures %v, want one write", failed)
	}
	mu.Unlock()

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := s.Write(context.Background(), func(tx storage.Tx) error { return nil })
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Write after Close: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Ping after Close: %v, want ErrUnavailable", err)
	}
}

func TestRawContains(t *testing.T) {
	s := storagetest.OpenSQLite(t, storage.Options{})
	known := []byte("raw-contains-positive-control-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	absent := []byte("raw-contains-never-written-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	if storagetest.RawContains(t, s, known) {
		t.Fatal("found the control before writing it")
	}
	if err := s.Write(t.Context(), func(tx storage.Tx) error { return storage.PutSys(t.Context(), tx, "control", known) }); err != nil {
		t.Fatal(err)
	}
	if !storagetest.RawContains(t, s, known) {
		t.Error("written value not found in the open store's files")
	}
	if storagetest.RawContains(t, s, absent) {
		t.Error("found a value never written")
	}
	s.Close() // checkpoints the WAL into the main file
	if !storagetest.RawContains(t, s, known) {
		t.Error("written value not found after Close")
	}
}

// A snapshot holds what was committed when it was made (including what is
// still in the WAL), not what came after; it is 0600, beside the database,
// and opens as a keyward database of its own.
func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "keyward.db"))
	put(t, s, "before", "in the snapshot")
	f, err := s.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	f.Close()
	put(t, s, "after", "not in it")
	if filepath.Dir(f.Name()) != dir {
		t.Errorf("snapshot at %s, want it in the data directory %s", f.Name(), dir)
	}
	fi, err := os.Stat(f.Name())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot mode: %v, %v; want 0600", fi.Mode(), err)
	}
	restored := filepath.Join(t.TempDir(), "keyward.db")
	if err := os.Rename(f.Name(), restored); err != nil {
		t.Fatal(err)
	}
	r := open(t, restored)
	get := func(k string) (string, error) {
		var v []byte
		err := r.Read(t.Context(), func(tx storage.Tx) error {
			var err error
			v, err = storage.GetSys(t.Context(), tx, k)
			return err
		})
		return string(v), err
	}
	if v, err := get("before"); err != nil || v != "in the snapshot" {
		t.Errorf("before = %q, %v", v, err)
	}
	if _, err := get("after"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a write after the snapshot is in it: %v", err)
	}
}
