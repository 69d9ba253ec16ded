package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/postgres"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Conformance(t, storagetest.OpenPostgres(t, storage.Options{}))
}

// These need no server: they must fail fast and clearly.

func TestUnreachable(t *testing.T) {
	password := "pw-" + rand.Text()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	s, err := postgres.Open(ctx, "postgres://keyward:"+password+"@127.0.0.1:1/keyward?sslmode=disable", storage.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded against 127.0.0.1:1")
	}
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("error %v does not wrap ErrUnavailable", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "cannot reach PostgreSQL at 127.0.0.1:1") {
		t.Errorf("error %q does not say which server it could not reach", msg)
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("error shows the password: %q", err)
	}
	// Not a timing assertion on speed, only that the refused connection did
	// not wait for the connect timeout.
	if d := time.Since(start); d >= 10*time.Second {
		t.Errorf("Open took %v on a refused connection", d)
	}
}

func TestBadURLHidesPassword(t *testing.T) {
	password := "pw-" + rand.Text()
	for _, u := range []string{
		"postgres://keyward:" + password + "@127.0.0.1:5432/keyward?sslmode=bogus",
		"postgres://keyward:" + password + "@127.0.0.1:notaport/keyward",
		"host=127.0.0.1 password=" + password + " port=x",
	} {
		_, err := postgres.Open(t.Context(), u, storage.Options{})
		if err == nil {
			t.Fatalf("Open accepted a malformed URL")
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("error shows the password: %q", err)
		}
	}
}

func TestBadSchemaName(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://127.0.0.1:1/x", storage.Options{Schema: `a"; DROP TABLE x; --`})
	if err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("Open with a bad schema name: %v", err)
	}
}

// These need KEYWARD_TEST_POSTGRES.

func TestWrongPasswordHidden(t *testing.T) {
	u := storagetest.PostgresURL(t)
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	password := "pw-" + rand.Text()
	// A user that does not exist: with trust auth the server still refuses.
	bad := "postgres://no_such_user_" + strings.ToLower(rand.Text()[:8]) + ":" + password + "@" + cfg.Host + ":" + strconv.Itoa(int(cfg.Port)) + "/" + cfg.Database + "?sslmode=disable"
	_, err = postgres.Open(t.Context(), bad, storage.Options{})
	if err == nil {
		t.Fatal("Open succeeded as a user that does not exist")
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("error shows the password: %q", err)
	}
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "refused the connection") {
		t.Errorf("error %q should say the server refused the connection", err)
	}
}

func TestReopenAndRefusals(t *testing.T) {
	u, schema := storagetest.PostgresSchema(t)
	open := func() (*postgres.Store, error) {
		return postgres.Open(t.Context(), u, storage.Options{Schema: schema})
	}
	s, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if s.Schema() != schema {
		t.Errorf("Schema() = %q", s.Schema())
	}
	if err := s.Write(t.Context(), func(tx storage.Tx) error { return storage.PutSys(t.Context(), tx, "k", []byte("kept")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = open()
	if err != nil {
		t.Fatal(err)
	}
	files, err := fs.ReadDir(postgres.Migrations(), ".")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var v []byte
	err = s.Read(t.Context(), func(tx storage.Tx) error {
		if err := tx.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
			return err
		}
		v, err = storage.GetSys(t.Context(), tx, "k")
		return err
	})
	if err != nil || n != len(files) || string(v) != "kept" {
		t.Errorf("after reopen: %d migrations (want %d), value %q, err %v", n, len(files), v, err)
	}

	exec := func(q string) {
		t.Helper()
		if _, err := s.Pool().Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 'abc', 1)`)
	if _, err := open(); !errors.Is(err, storage.ErrSchemaTooNew) || !strings.Contains(err.Error(), "9999") {
		t.Errorf("Open on a newer schema: %v, want ErrSchemaTooNew naming 9999", err)
	}
	exec(`DELETE FROM schema_migrations WHERE version = 9999`)
	exec(`UPDATE schema_migrations SET sha256 = 'f00d' WHERE version = 1`)
	if _, err := open(); !errors.Is(err, storage.ErrMigrationChanged) || !strings.Contains(err.Error(), "0001_init.sql") {
		t.Errorf("Open with an edited migration: %v, want ErrMigrationChanged naming the file", err)
	}
	s.Close()
}

// Nodes starting together on an empty schema all succeed, and each migration
// is applied once.
func TestConcurrentOpen(t *testing.T) {
	u, schema := storagetest.PostgresSchema(t)
	const nodes = 6
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), u, storage.Options{Schema: schema, MaxConns: 2})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
	s, err := postgres.Open(t.Context(), u, storage.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	files, err := fs.ReadDir(postgres.Migrations(), ".")
	if err != nil {
		t.Fatal(err)
	}
	var rows, versions int
	err = s.Read(t.Context(), func(tx storage.Tx) error {
		return tx.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&rows, &versions)
	})
	if err != nil || rows != len(files) || versions != len(files) {
		t.Errorf("schema_migrations: %d rows, %d versions, err %v; want %d", rows, versions, err, len(files))
	}
}

func TestObserver(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	s := storagetest.OpenPostgres(t, storage.Options{Observer: func(op, backend string, d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if backend != storage.Postgres {
			t.Errorf("backend %q", backend)
		}
		seen[op]++
	}})
	s.Write(t.Context(), func(tx storage.Tx) error { return nil })
	s.Read(t.Context(), func(tx storage.Tx) error { return nil })
	s.Ping(t.Context())
	mu.Lock()
	defer mu.Unlock()
	if seen["migrate"] != 1 || seen["write"] != 1 || seen["read"] != 1 || seen["ping"] != 1 {
		t.Errorf("observed %v", seen)
	}
}

func TestClose(t *testing.T) {
	s := storagetest.OpenPostgres(t, storage.Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Ping after Close: %v", err)
	}
}

func TestRawContains(t *testing.T) {
	s := storagetest.OpenPostgres(t, storage.Options{})
	known := []byte("raw-contains-positive-control-" + rand.Text())
	absent := []byte("raw-contains-never-written-" + rand.Text())
	if storagetest.RawContains(t, s, known) {
		t.Fatal("found the control before writing it")
	}
	err := s.Write(t.Context(), func(tx storage.Tx) error {
		if err := storage.PutSys(t.Context(), tx, "control", known); err != nil {
			return err
		}
		// Also as text, where RawContains looks for it as written.
		return storage.PutSys(t.Context(), tx, string(known[:20])+"-key", []byte("x"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if !storagetest.RawContains(t, s, known) {
		t.Error("value written to a bytea column not found")
	}
	if !storagetest.RawContains(t, s, known[:20]) {
		t.Error("value written to a text column not found")
	}
	if storagetest.RawContains(t, s, absent) {
		t.Error("found a value never written")
	}
}

// After the server drops every connection (a restart, a failover), the store
// reports ErrUnavailable at worst and recovers by itself.
func TestRecoversFromDroppedConnections(t *testing.T) {
	s := storagetest.OpenPostgres(t, storage.Options{MaxConns: 3})
	ctx := t.Context()
	write := func() error {
		return s.Write(ctx, func(tx storage.Tx) error { return storage.PutSys(ctx, tx, "k", []byte("v")) })
	}
	if err := write(); err != nil {
		t.Fatal(err)
	}
	var pids []uint32
	for _, c := range s.Pool().AcquireAllIdle(ctx) {
		pids = append(pids, c.Conn().PgConn().PID())
		c.Release()
	}
	if len(pids) == 0 {
		t.Fatal("no idle connections to drop")
	}
	u := storagetest.PostgresURL(t)
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	for _, pid := range pids {
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, int64(pid)); err != nil {
			t.Fatal(err)
		}
	}
	var errs []error
	for range 4 {
		err := write()
		if err == nil {
			break
		}
		errs = append(errs, err)
	}
	for _, err := range errs {
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("error while the connections were gone: %v, want ErrUnavailable", err)
		}
	}
	t.Logf("%d failed writes before recovery: %v", len(errs), errs)
	if len(errs) == 4 {
		t.Fatal("the store did not recover")
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping after recovery: %v", err)
	}
}
