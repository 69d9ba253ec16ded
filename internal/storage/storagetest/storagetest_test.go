package storagetest_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// Each hands every subtest a fresh, empty store and closes it afterwards.
func TestEach(t *testing.T) {
	var stores []storage.Store
	for range 2 {
		storagetest.Each(t, func(t *testing.T, s storage.Store) {
			if !strings.Contains(t.Name(), "/"+s.Backend()) {
				t.Errorf("subtest %s got a %s store", t.Name(), s.Backend())
			}
			var n int
			err := s.Read(t.Context(), func(tx storage.Tx) error {
				return tx.QueryRow(t.Context(), `SELECT count(*) FROM sys`).Scan(&n)
			})
			if err != nil || n != 0 {
				t.Errorf("fresh store: %d sys rows, %v", n, err)
			}
			if err := s.Write(t.Context(), func(tx storage.Tx) error {
				return storage.PutSys(t.Context(), tx, "each", []byte("x"))
			}); err != nil {
				t.Fatal(err)
			}
			stores = append(stores, s)
		})
	}
	if os.Getenv(storagetest.EnvPostgres) == "" && len(stores) != 2 {
		t.Errorf("%d stores without postgres, want 2 (sqlite twice)", len(stores))
	}
	if os.Getenv(storagetest.EnvPostgres) != "" && len(stores) != 4 {
		t.Errorf("%d stores with postgres, want 4", len(stores))
	}
	for _, s := range stores {
		if err := s.Ping(context.Background()); !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s store still open after its subtest: Ping = %v", s.Backend(), err)
		}
	}
}

func TestEachSkipsPostgresWithoutURL(t *testing.T) {
	t.Setenv(storagetest.EnvPostgres, "")
	var ran []string
	storagetest.Each(t, func(t *testing.T, s storage.Store) { ran = append(ran, s.Backend()) })
	if len(ran) != 1 || ran[0] != storage.SQLite {
		t.Errorf("ran %v, want only sqlite", ran)
	}
}

// The schema PostgresSchema makes is gone after the test.
func TestPostgresSchemaDropped(t *testing.T) {
	u := storagetest.PostgresURL(t)
	var schema string
	t.Run("use", func(t *testing.T) {
		var su string
		su, schema = storagetest.PostgresSchema(t)
		conn, err := pgx.Connect(t.Context(), su)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var cur string
		if err := conn.QueryRow(t.Context(), `SELECT current_schema()`).Scan(&cur); err != nil || cur != schema {
			t.Errorf("search_path URL: current_schema() = %q, %v; want %q", cur, err, schema)
		}
	})
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("schema %s still exists after cleanup (%d, %v)", schema, n, err)
	}
}

func TestRawContains(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		control := []byte("positive-control-" + t.Name())
		absent := []byte("never-written-" + t.Name())
		if err := s.Write(t.Context(), func(tx storage.Tx) error {
			return storage.PutSys(t.Context(), tx, "control", control)
		}); err != nil {
			t.Fatal(err)
		}
		if !storagetest.RawContains(t, s, control) {
			t.Error("positive control not found")
		}
		if storagetest.RawContains(t, s, absent) {
			t.Error("found bytes that were never written")
		}
	})
}
