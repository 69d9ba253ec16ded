// Package storage defines the contract every keyward storage backend meets:
// a relational store reached through transactions, one schema applied by
// embedded migrations, and one error vocabulary.
//
// Domain packages (secret, token, audit, ...) own their SQL; they write one SQL
// text for both backends (PostgreSQL-style $1..$n placeholders, which
// modernc.org/sqlite binds by number too) and reach the database only through
// Store.Read and Store.Write. Values that must stay secret are sealed by the
// barrier before they reach this package: storage never sees plaintext secrets.
//
// Rules for code inside Read and Write:
//   - Return every error. On PostgreSQL a failed statement aborts the
//     transaction, so carrying on after one works on SQLite only.
//   - Errors from Exec and Query are translated (ErrConflict, ...) at once;
//     an error met by QueryRow surfaces at Scan untranslated and is
//     translated when fn returns it from Write or Read. fn's own errors come
//     back unchanged (same value) unless the backend recognises them.
//   - Never call Write inside Write: SQLite has one writer connection, so the
//     inner call waits forever. Read inside Write does not see the outer
//     transaction's uncommitted rows.
//   - Times are BIGINT unix nanoseconds; binary values BLOB/BYTEA.
//
// Migrate (migrate.go) applies each backend's embedded NNNN_name.sql files;
// DB (sqldb.go) is the database/sql Store both backends are built on; the sys
// helpers (sys.go) read and write the node's own key/value table.
//
// Implementations live in storage/sqlite and storage/postgres; the conformance
// suite in storage/storagetest runs against both. This package imports no
// other keyward package; any package may import it.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"time"
)

// Backend names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Errors shared by all backends. Implementations wrap driver errors so that
// errors.Is works with these.
var (
	// ErrNotFound: a row that was asked for does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrConflict: a uniqueness constraint was violated.
	ErrConflict = errors.New("storage: conflict")
	// ErrSchemaTooNew: the database was migrated by a newer keyward.
	ErrSchemaTooNew = errors.New("storage: database schema is newer than this keyward knows; upgrade keyward")
	// ErrUnavailable: the database cannot be reached.
	ErrUnavailable = errors.New("storage: unavailable")
	// ErrMigrationChanged: a migration already applied to the database differs
	// from the file of the same version in this binary (edited after release).
	ErrMigrationChanged = errors.New("storage: an applied migration was changed")
	// ErrInvalidDatabase: the file or schema is not a keyward database.
	ErrInvalidDatabase = errors.New("storage: not a valid keyward database")
)

// Observer is told about every storage operation, for metrics: op is one of
// "read", "write", "ping" or "migrate"; d is the wall time the operation took,
// including waiting for a connection; err is what the caller got. It must be
// fast and safe for concurrent use. It never sees query text or values.
type Observer func(op, backend string, d time.Duration, err error)

// Options tune a backend's Open. The zero value is a sensible default.
type Options struct {
	// Observer, when set, is called after every operation.
	Observer Observer
	// Schema (PostgreSQL only) is the schema keyward's tables live in; it is
	// created when missing and becomes the connections' search_path. Empty
	// means the server's default search_path. Must match [a-z_][a-z0-9_]*.
	Schema string
	// MaxConns caps connections: the read pool on SQLite (the writer is always
	// one connection) or the whole pool on PostgreSQL. 0 picks a default.
	MaxConns int
}

// Store is a transactional relational store.
type Store interface {
	// Backend returns SQLite or Postgres.
	Backend() string
	// Read runs fn in a read-only transaction that sees one consistent snapshot.
	Read(ctx context.Context, fn func(Tx) error) error
	// Write runs fn in a read-write transaction and commits it when fn returns
	// nil; otherwise it rolls back and returns fn's error. On SQLite writes are
	// serialised (one writer connection); on PostgreSQL they run concurrently
	// under READ COMMITTED, so code that needs a total order locks a row
	// (see Tx.LockForUpdate).
	Write(ctx context.Context, fn func(Tx) error) error
	// Exec runs one statement as a write of its own (autocommit): for a
	// single statement, what Write does in one round trip to PostgreSQL
	// instead of three (BEGIN, the statement, COMMIT). Errors are
	// translated as in Tx.
	Exec(ctx context.Context, query string, args ...any) (sql.Result, error)
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// Close releases connections; in-flight transactions finish first.
	Close() error
}

// Snapshotter is a Store that can copy its whole database to a file: the
// SQLite backend. A PostgreSQL database is backed up with PostgreSQL's tools.
type Snapshotter interface {
	// Snapshot writes a consistent copy of the database, as it was at one
	// moment, to a new temporary file beside it (mode 0600, in the data
	// directory) and returns it open for reading, at its start. The caller
	// closes it and removes it (os.Remove(f.Name())). Writes go on while it
	// is made.
	Snapshot(ctx context.Context) (*os.File, error)
}

// Tx is one transaction. Query texts use $1..$n placeholders on both backends.
// Errors are translated: a uniqueness violation wraps ErrConflict and
// QueryRow(...).Scan on no rows returns sql.ErrNoRows (use errors.Is).
type Tx interface {
	Exec(ctx context.Context, query string, args ...any) (sql.Result, error)
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) *sql.Row
	// Backend returns SQLite or Postgres, for the rare statement that differs.
	Backend() string
	// LockForUpdate is the suffix that takes a row lock in a SELECT:
	// " FOR UPDATE" on PostgreSQL and "" on SQLite, whose writer is already exclusive.
	LockForUpdate() string
}
