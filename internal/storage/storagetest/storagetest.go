// Package storagetest runs code against every keyward storage backend: Each
// hands a fresh store of each backend to a test, Conformance is the battery
// every storage.Store must pass, and RawContains searches the bytes a store
// keeps at rest (for "no plaintext on disk" tests), and Bench is the shared
// benchmark both backends run.
//
// SQLite always runs (a fresh file in t.TempDir()). PostgreSQL runs when the
// environment variable KEYWARD_TEST_POSTGRES holds a connection URL; each
// store then lives in its own freshly created schema, dropped at cleanup, so
// tests may run in parallel against one database.
//
// Test code only: nothing outside _test.go files may import this package.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/postgres"
	"github.com/keyward/keyward/internal/storage/sqlite"
)

// EnvPostgres names the environment variable holding the PostgreSQL URL for tests.
const EnvPostgres = "KEYWARD_TEST_POSTGRES"

// Each runs fn as the subtests "sqlite" and "postgres", each with a fresh,
// migrated, empty store that is closed when the subtest ends. The postgres
// subtest is skipped when KEYWARD_TEST_POSTGRES is not set.
func Each(t *testing.T, fn func(t *testing.T, s storage.Store)) {
	t.Helper()
	t.Run(storage.SQLite, func(t *testing.T) {
		fn(t, OpenSQLite(t, storage.Options{}))
	})
	t.Run(storage.Postgres, func(t *testing.T) {
		fn(t, OpenPostgres(t, storage.Options{}))
	})
}

// OpenSQLite opens a fresh SQLite store in t.TempDir(), closed at cleanup.
func OpenSQLite(t testing.TB, opts storage.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), t.TempDir()+"/keyward.db", opts)
	if err != nil {
		t.Fatalf("storagetest: open sqlite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// PostgresURL returns KEYWARD_TEST_POSTGRES, or skips t when it is not set.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvPostgres)
	if u == "" {
		t.Skip(EnvPostgres + " not set: set it to a PostgreSQL URL to run the postgres tests")
	}
	return u
}

// OpenPostgres opens a PostgreSQL store in a fresh schema (opts.Schema is
// replaced), closed and dropped at cleanup. It skips t when
// KEYWARD_TEST_POSTGRES is not set and fails it when the server is unreachable.
func OpenPostgres(t testing.TB, opts storage.Options) *postgres.Store {
	t.Helper()
	u, schema := PostgresSchema(t)
	opts.Schema = schema
	s, err := postgres.Open(t.Context(), u, opts)
	if err != nil {
		t.Fatalf("storagetest: open postgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// PostgresSchema creates a fresh, empty schema with a random name, dropped
// (with everything in it) at cleanup. It returns the test URL with the
// schema as its search_path, for code that opens its own connections, and
// the schema's name. It skips t when KEYWARD_TEST_POSTGRES is not set.
func PostgresSchema(t testing.TB) (schemaURL, schema string) {
	t.Helper()
	base := PostgresURL(t)
	schema = "kwtest_" + rand.Text()[:16]
	schema = strings.ToLower(schema)
	ident := pgx.Identifier{schema}.Sanitize()
	if err := pgExec(t.Context(), base, "CREATE SCHEMA "+ident); err != nil {
		t.Fatalf("storagetest: create schema on %s: %v", EnvPostgres, err)
	}
	t.Cleanup(func() {
		// t.Context() is already done when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pgExec(ctx, base, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			t.Errorf("storagetest: drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(base, schema), schema
}

// adminPools holds one small pool per test URL for creating and dropping
// schemas, shared by the whole test binary (a connection costs more than the
// statements). They are never closed; the process exit does it.
var adminPools struct {
	sync.Mutex
	m map[string]*pgxpool.Pool
}

func pgExec(ctx context.Context, connURL, stmt string) error {
	adminPools.Lock()
	pool := adminPools.m[connURL]
	if pool == nil {
		cfg, err := pgxpool.ParseConfig(connURL)
		if err != nil {
			adminPools.Unlock()
			return errors.New("cannot parse the URL (not shown: it may hold a password)")
		}
		cfg.MaxConns = 2
		cfg.MaxConnIdleTime = 5 * time.Second
		if pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
			adminPools.Unlock()
			return err
		}
		if adminPools.m == nil {
			adminPools.m = map[string]*pgxpool.Pool{}
		}
		adminPools.m[connURL] = pool
	}
	adminPools.Unlock()
	_, err := pool.Exec(ctx, stmt)
	return err
}

// withSearchPath adds search_path to a URL or key=value connection string.
func withSearchPath(connString, schema string) string {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return connString + " search_path=" + schema
}

// RawContains reports whether needle occurs anywhere in what s keeps at
// rest: on SQLite the bytes of the database file and its -wal (the store may
// be open or closed); on PostgreSQL every column of every table in the
// store's schema, bytea raw and everything else as text (where needle is
// also looked for hex-encoded). Use it with a positive control: a value that
// must be found, next to the one that must not.
//
// SQLite stores a value larger than about a page in a chain of pages, so a
// needle of more than a few hundred bytes may straddle a page boundary and
// go unseen: keep needles short (16-64 bytes of random data is ideal).
func RawContains(t testing.TB, s storage.Store, needle []byte) bool {
	t.Helper()
	if len(needle) == 0 {
		t.Fatal("storagetest: RawContains with an empty needle")
	}
	switch s.Backend() {
	case storage.SQLite:
		p, ok := s.(interface{ Path() string })
		if !ok {
			t.Fatalf("storagetest: RawContains: SQLite store %T has no Path method", s)
		}
		for _, f := range []string{p.Path(), p.Path() + "-wal"} {
			b, err := os.ReadFile(f)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatalf("storagetest: RawContains: %v", err)
			}
			if bytes.Contains(b, needle) {
				return true
			}
		}
		return false
	case storage.Postgres:
		found, err := pgContains(t.Context(), s, needle)
		if err != nil {
			t.Fatalf("storagetest: RawContains: %v", err)
		}
		return found
	default:
		t.Fatalf("storagetest: RawContains: unknown backend %q", s.Backend())
		return false
	}
}

func pgContains(ctx context.Context, s storage.Store, needle []byte) (bool, error) {
	hexNeedle := []byte(hex.EncodeToString(needle))
	found := false
	err := s.Read(ctx, func(tx storage.Tx) error {
		type column struct{ table, name, typ string }
		rows, err := tx.Query(ctx, `SELECT c.table_name, c.column_name, c.data_type
			FROM information_schema.columns c
			JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
			WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
			ORDER BY c.table_name, c.ordinal_position`)
		if err != nil {
			return err
		}
		var cols []column
		for rows.Next() {
			var c column
			if err := rows.Scan(&c.table, &c.name, &c.typ); err != nil {
				rows.Close()
				return err
			}
			cols = append(cols, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(cols) == 0 {
			return errors.New("no tables in the store's schema")
		}
		for _, c := range cols {
			expr := pgx.Identifier{c.name}.Sanitize()
			if c.typ != "bytea" {
				expr += "::text"
			}
			q := fmt.Sprintf("SELECT %s FROM %s WHERE %s IS NOT NULL", expr, pgx.Identifier{c.table}.Sanitize(), pgx.Identifier{c.name}.Sanitize())
			rows, err := tx.Query(ctx, q)
			if err != nil {
				return fmt.Errorf("%s.%s: %w", c.table, c.name, err)
			}
			for rows.Next() {
				var v []byte
				if err := rows.Scan(&v); err != nil {
					rows.Close()
					return err
				}
				if bytes.Contains(v, needle) || (c.typ != "bytea" && bytes.Contains(bytes.ToLower(v), hexNeedle)) {
					found = true
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if found {
				return nil
			}
		}
		return nil
	})
	return found, err
}
