package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Migrations are forward-only. A backend embeds its dialect's files, named
// NNNN_name.sql (NNNN from 0001, strictly increasing, never reused), and
// Migrate applies the ones the database lacks, in order, each in its own
// transaction together with its row in schema_migrations:
//
//	schema_migrations(version, name, sha256, applied_at)
//
// sha256 is over the file's bytes as embedded; applied_at is unix nanoseconds.
// Migrate refuses to touch a database that holds a version this binary does
// not know (ErrSchemaTooNew: a newer keyward migrated it) or whose applied
// migration differs from the embedded file (ErrMigrationChanged: a released
// migration was edited; fix forward with a new file instead).
//
// Every statement in a migration must be allowed inside a transaction
// (no CREATE INDEX CONCURRENTLY, no VACUUM).

// migrationFile is the name every migration file must have.
var migrationFile = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

type migration struct {
	version int64
	name    string // file name
	sql     string
	sum     string // hex sha256 of the file
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("storage: read migrations: %w", err)
	}
	var ms []migration
	seen := map[int64]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := migrationFile.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("storage: migration file %q is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.ParseInt(m[1], 10, 64)
		if v == 0 {
			return nil, fmt.Errorf("storage: migration file %q: versions start at 0001", e.Name())
		}
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("storage: migrations %q and %q share version %04d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("storage: read migration %q: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b), sum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Migrate brings db's schema up to date with migrations (a directory of
// NNNN_name.sql files at its root). backend is SQLite or Postgres.
//
// On PostgreSQL every migration transaction first takes a transaction-level
// advisory lock keyed by the current schema, so nodes starting together
// apply each migration exactly once. On SQLite db must open transactions
// with BEGIN IMMEDIATE (_txlock=immediate), which serialises the same way.
func Migrate(ctx context.Context, db *sql.DB, backend string, migrations fs.FS) error {
	ms, err := loadMigrations(migrations)
	if err != nil {
		return err
	}
	if backend != SQLite && backend != Postgres {
		return fmt.Errorf("storage: migrate: unknown backend %q", backend)
	}
	// Each round applies at most one migration; the last round finds none
	// pending and only validates.
	for {
		applied, err := migrateOne(ctx, db, backend, ms)
		if err != nil {
			return err
		}
		if !applied {
			return nil
		}
	}
}

func migrateOne(ctx context.Context, db *sql.DB, backend string, ms []migration) (applied bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("storage: migrate: begin: %w", err)
	}
	defer func() {
		if err != nil || !applied {
			tx.Rollback()
		}
	}()
	if backend == Postgres {
		// coalesce: current_schema() is NULL when no schema on the
		// search_path exists; CREATE TABLE below then fails with PostgreSQL's
		// own clear message.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('keyward.migrate.' || coalesce(current_schema(), ''), 0))`); err != nil {
			return false, fmt.Errorf("storage: migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version BIGINT PRIMARY KEY,
		name TEXT NOT NULL,
		sha256 TEXT NOT NULL,
		applied_at BIGINT NOT NULL)`); err != nil {
		return false, fmt.Errorf("storage: migrate: create schema_migrations: %w", err)
	}
	done, err := appliedMigrations(ctx, tx)
	if err != nil {
		return false, err
	}
	if err := checkApplied(ms, done); err != nil {
		return false, err
	}
	for _, m := range ms {
		if _, ok := done[m.version]; ok {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return false, fmt.Errorf("storage: migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, sha256, applied_at) VALUES ($1, $2, $3, $4)`,
			m.version, m.name, m.sum, time.Now().UnixNano()); err != nil {
			return false, fmt.Errorf("storage: migration %s: record: %w", m.name, err)
		}
		if err := tx.Commit(); err != nil {
			return false, fmt.Errorf("storage: migration %s: commit: %w", m.name, err)
		}
		return true, nil
	}
	return false, nil
}

type appliedMigration struct{ name, sum string }

func appliedMigrations(ctx context.Context, tx *sql.Tx) (map[int64]appliedMigration, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version, name, sha256 FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("storage: migrate: read schema_migrations: %w", err)
	}
	defer rows.Close()
	done := map[int64]appliedMigration{}
	for rows.Next() {
		var v int64
		var a appliedMigration
		if err := rows.Scan(&v, &a.name, &a.sum); err != nil {
			return nil, fmt.Errorf("storage: migrate: read schema_migrations: %w", err)
		}
		done[v] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: migrate: read schema_migrations: %w", err)
	}
	return done, nil
}

// checkApplied refuses a database this binary must not write to.
func checkApplied(ms []migration, done map[int64]appliedMigration) error {
	known := make(map[int64]migration, len(ms))
	var newest int64
	for _, m := range ms {
		known[m.version] = m
		newest = max(newest, m.version)
	}
	var unknown []int64
	for v := range done {
		if _, ok := known[v]; !ok {
			unknown = append(unknown, v)
		}
	}
	if len(unknown) > 0 {
		sort.Slice(unknown, func(i, j int) bool { return unknown[i] < unknown[j] })
		v := unknown[len(unknown)-1]
		return fmt.Errorf("%w (the database has migration %04d %q; this keyward knows migrations up to %04d)",
			ErrSchemaTooNew, v, done[v].name, newest)
	}
	for _, m := range ms {
		a, ok := done[m.version]
		if ok && a.sum != m.sum {
			return fmt.Errorf("%w: %s was applied with sha256 %.12s but this keyward embeds sha256 %.12s; add a new migration instead of editing one",
				ErrMigrationChanged, m.name, a.sum, m.sum)
		}
	}
	return nil
}
