package storage_test

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver
	_ "modernc.org/sqlite"             // "sqlite" driver

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// eachDB runs fn with an empty raw database of each backend.
func eachDB(t *testing.T, fn func(t *testing.T, backend string, open func() *sql.DB)) {
	t.Run(storage.SQLite, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "m.db")
		fn(t, storage.SQLite, func() *sql.DB {
			db, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate&_busy_timeout=5000")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
	t.Run(storage.Postgres, func(t *testing.T) {
		u, _ := storagetest.PostgresSchema(t)
		fn(t, storage.Postgres, func() *sql.DB {
			db, err := sql.Open("pgx", u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

var (
	m1 = file("CREATE TABLE a (id BIGINT PRIMARY KEY, v TEXT NOT NULL);")
	m2 = file("CREATE TABLE b (id BIGINT PRIMARY KEY);\nINSERT INTO a (id, v) VALUES (1, 'from 0002');")
	m3 = file("ALTER TABLE b ADD COLUMN note TEXT;")
)

type applied struct {
	version int64
	name    string
	sum     string
}

func appliedRows(t *testing.T, db *sql.DB) []applied {
	t.Helper()
	rows, err := db.Query(`SELECT version, name, sha256 FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []applied
	for rows.Next() {
		var a applied
		if err := rows.Scan(&a.version, &a.name, &a.sum); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestMigrateAppliesInOrderOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, backend string, open func() *sql.DB) {
		db := open()
		ctx := t.Context()
		// 0002 depends on 0001: order matters. Map order is random, so this
		// also checks sorting.
		if err := storage.Migrate(ctx, db, backend, fstest.MapFS{"0002_b.sql": m2, "0001_a.sql": m1}); err != nil {
			t.Fatal(err)
		}
		got := appliedRows(t, db)
		if len(got) != 2 || got[0].version != 1 || got[1].version != 2 || got[0].name != "0001_a.sql" {
			t.Fatalf("schema_migrations = %+v", got)
		}
		// sha256 of the exact file bytes, hex.
		for i, m := range []*fstest.MapFile{m1, m2} {
			if sum := sha256.Sum256(m.Data); got[i].sum != hex.EncodeToString(sum[:]) {
				t.Errorf("%s: sha256 = %q, want %x", got[i].name, got[i].sum, sum)
			}
		}
		// Again, plus one new file: only the new one runs (0002's INSERT
		// would fail on a second run).
		if err := storage.Migrate(ctx, db, backend, fstest.MapFS{"0001_a.sql": m1, "0002_b.sql": m2, "0003_c.sql": m3}); err != nil {
			t.Fatal(err)
		}
		if got := appliedRows(t, db); len(got) != 3 {
			t.Fatalf("after adding 0003: %+v", got)
		}
		if _, err := db.Exec(`INSERT INTO b (id, note) VALUES (1, 'x')`); err != nil {
			t.Errorf("0003 not applied: %v", err)
		}
	})
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	eachDB(t, func(t *testing.T, backend string, open func() *sql.DB) {
		db := open()
		if err := storage.Migrate(t.Context(), db, backend, fstest.MapFS{"0001_a.sql": m1, "0002_b.sql": m2}); err != nil {
			t.Fatal(err)
		}
		err := storage.Migrate(t.Context(), db, backend, fstest.MapFS{"0001_a.sql": m1})
		if !errors.Is(err, storage.ErrSchemaTooNew) {
			t.Fatalf("older binary: %v, want ErrSchemaTooNew", err)
		}
		if !strings.Contains(err.Error(), "0002") || !strings.Contains(err.Error(), "0001") {
			t.Errorf("error %q should name both versions", err)
		}
		// Even with a new file of its own, the older binary applies nothing.
		err = storage.Migrate(t.Context(), db, backend, fstest.MapFS{"0001_a.sql": m1, "0003_c.sql": m3})
		if !errors.Is(err, storage.ErrSchemaTooNew) {
			t.Errorf("binary lacking 0002: %v, want ErrSchemaTooNew", err)
		}
		if got := appliedRows(t, db); len(got) != 2 {
			t.Errorf("schema_migrations changed: %+v", got)
		}
	})
}

func TestMigrateRefusesEditedMigration(t *testing.T) {
	eachDB(t, func(t *testing.T, backend string, open func() *sql.DB) {
		db := open()
		if err := storage.Migrate(t.Context(), db, backend, fstest.MapFS{"0001_a.sql": m1}); err != nil {
			t.Fatal(err)
		}
		edited := file(string(m1.Data) + "\n-- a harmless-looking edit\n")
		err := storage.Migrate(t.Context(), db, backend, fstest.MapFS{"0001_a.sql": edited, "0002_b.sql": m2})
		if !errors.Is(err, storage.ErrMigrationChanged) || !strings.Contains(err.Error(), "0001_a.sql") {
			t.Fatalf("edited migration: %v, want ErrMigrationChanged naming the file", err)
		}
		if got := appliedRows(t, db); len(got) != 1 {
			t.Errorf("a pending migration ran despite the refusal: %+v", got)
		}
	})
}

// A failing migration leaves nothing behind: not its earlier statements, not
// its schema_migrations row; earlier migrations stay applied.
func TestMigrateFailureRollsBack(t *testing.T) {
	eachDB(t, func(t *testing.T, backend string, open func() *sql.DB) {
		db := open()
		bad := file("CREATE TABLE half (id BIGINT);\nTHIS IS NOT SQL;")
		err := storage.Migrate(t.Context(), db, backend, fstest.MapFS{"0001_a.sql": m1, "0002_bad.sql": bad})
		if err == nil || !strings.Contains(err.Error(), "0002_bad.sql") {
			t.Fatalf("bad migration: %v, want an error naming it", err)
		}
		if got := appliedRows(t, db); len(got) != 1 || got[0].version != 1 {
			t.Errorf("schema_migrations = %+v, want only 0001", got)
		}
		if _, err := db.Exec(`SELECT * FROM half`); err == nil {
			t.Error("the failed migration's first statement persisted")
		}
		// Fixed forward, it applies.
		if err := storage.Migrate(t.Context(), db, backend, fstest.MapFS{"0001_a.sql": m1, "0002_b.sql": m2}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMigrateConcurrentNodes(t *testing.T) {
	eachDB(t, func(t *testing.T, backend string, open func() *sql.DB) {
		const nodes = 6
		dbs := make([]*sql.DB, nodes)
		for i := range dbs {
			dbs[i] = open()
		}
		fsys := fstest.MapFS{"0001_a.sql": m1, "0002_b.sql": m2, "0003_c.sql": m3}
		var wg sync.WaitGroup
		errs := make([]error, nodes)
		for i, db := range dbs {
			wg.Go(func() { errs[i] = storage.Migrate(t.Context(), db, backend, fsys) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Errorf("concurrent Migrate: %v", err)
			}
		}
		if got := appliedRows(t, dbs[0]); len(got) != 3 {
			t.Errorf("schema_migrations = %+v", got)
		}
		var n int
		if err := dbs[0].QueryRow(`SELECT count(*) FROM a`).Scan(&n); err != nil || n != 1 {
			t.Errorf("0002's insert ran %d times (%v), want once", n, err)
		}
	})
}

func TestMigrateBadFiles(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db")+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, fsys := range map[string]fstest.MapFS{
		"no number":       {"init.sql": m1},
		"short number":    {"01_init.sql": m1},
		"upper case":      {"0001_Init.sql": m1},
		"version zero":    {"0000_init.sql": m1},
		"duplicate":       {"0001_a.sql": m1, "0001_b.sql": m2},
		"no sql suffix":   {"0001_a.sql": m1, "0002_b.txt": m2},
		"unknown backend": {"0001_a.sql": m1},
	} {
		backend := storage.SQLite
		if name == "unknown backend" {
			backend = "oracle"
		}
		if err := storage.Migrate(t.Context(), db, backend, fsys); err == nil {
			t.Errorf("%s: Migrate accepted it", name)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil || n != 0 {
		t.Errorf("refused migrations changed the database: %d objects, %v", n, err)
	}
}
