// Package sqlite is keyward's default storage backend: one SQLite file in the
// data directory, reached through modernc.org/sqlite (pure Go, no cgo).
//
// Invariants:
//   - Exactly one writer connection (BEGIN IMMEDIATE), so Write transactions
//     are serialised in this process and take SQLite's write lock up front
//     (no lock-upgrade deadlocks between processes); a separate pool of
//     query_only connections serves Read, which in WAL mode never blocks on
//     the writer and sees the snapshot taken at its first statement.
//   - journal_mode=WAL, synchronous=FULL, foreign_keys=ON, secure_delete=ON,
//     busy_timeout=5s on every connection.
//   - The database file and its -wal/-shm companions are mode 0600; the data
//     directory is created 0700.
//   - A file that is not a keyward database is refused with an error naming
//     it (wrapping storage.ErrInvalidDatabase), never modified.
//
// Why synchronous=FULL rather than NORMAL: under WAL, NORMAL can lose the last
// committed transactions on power loss (never corrupting the file). keyward
// acknowledges writes such as a rotated credential whose old value the
// provider has already revoked; losing that acknowledgement loses access. The
// cost is one fsync of the WAL per commit, on writes that are small and rare
// next to reads.
//
// Only internal/server (and tests) should import this package; everything
// else uses the storage.Store interface.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keyward/keyward/internal/storage"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded SQLite migrations (NNNN_name.sql at the root).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // unreachable: the directory is embedded
	}
	return sub
}

// busyTimeoutMS is how long a connection waits for another process's lock.
const busyTimeoutMS = 5000

// Store is a storage.Store on one SQLite file.
type Store struct {
	*storage.DB
	path string
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Open opens (creating if needed) the keyward database at path, applies
// pending migrations and returns the store. The directory is created when
// missing.
func Open(ctx context.Context, path string, opts storage.Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: database path %q: %w", path, err)
	}
	if err := prepareDir(filepath.Dir(abs)); err != nil {
		return nil, err
	}
	if err := prepareFile(abs); err != nil {
		return nil, err
	}

	writer, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_busy_timeout": {strconv.Itoa(busyTimeoutMS)},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		"_foreign_keys": {"1"},
		"_pragma":       {"secure_delete(1)", "trusted_schema(0)"},
		"_txlock":       {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	if err := check(ctx, writer, abs); err != nil {
		writer.Close()
		return nil, err
	}
	start := time.Now()
	err = storage.Migrate(ctx, writer, storage.SQLite, Migrations())
	if opts.Observer != nil {
		opts.Observer("migrate", storage.SQLite, time.Since(start), err)
	}
	if err != nil {
		writer.Close()
		return nil, openError(abs, err)
	}
	// Files SQLite created (-wal, -shm) inherit the database file's mode;
	// tighten any left by an older run anyway.
	if err := restrictModes(abs); err != nil {
		writer.Close()
		return nil, err
	}

	readers := opts.MaxConns
	if readers <= 0 {
		readers = max(4, runtime.GOMAXPROCS(0))
	}
	reader, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_busy_timeout": {strconv.Itoa(busyTimeoutMS)},
		"_foreign_keys": {"1"},
		"_pragma":       {"trusted_schema(0)"},
		"_query_only":   {"1"},
	}))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)
	reader.SetConnMaxLifetime(0)
	reader.SetConnMaxIdleTime(0)
	if err := reader.PingContext(ctx); err != nil {
		reader.Close()
		writer.Close()
		return nil, openError(abs, err)
	}

	s := &Store{path: abs}
	s.DB = storage.NewDB(storage.DBConfig{
		Backend:       storage.SQLite,
		Writer:        writer,
		Reader:        reader,
		ReadOptions:   &sql.TxOptions{ReadOnly: true},
		LockForUpdate: "",
		Classify:      classify,
		Observer:      opts.Observer,
		// modernc.org/sqlite parses every statement it is given afresh.
		CacheStatements: true,
		Close: func() error {
			rerr := reader.Close()
			// Waits for an in-flight Write (the only connection), then
			// lets SQLite refresh its planner statistics.
			writer.ExecContext(context.Background(), "PRAGMA optimize")
			werr := writer.Close()
			return errors.Join(rerr, werr)
		},
	})
	return s, nil
}

// Snapshot implements storage.Snapshotter with VACUUM INTO, through a
// connection of its own (the readers are query_only, which VACUUM INTO
// refuses; the writer must stay free): it reads one snapshot of the
// database (WAL included) while writes go on, and writes it compacted,
// without free pages, so deleted rows' leftovers are not copied. The copy
// is an ordinary SQLite database (rollback journal); opened as a keyward
// data file it is switched to WAL like any other.
func (s *Store) Snapshot(ctx context.Context) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(s.path), ".keyward-snapshot-*.db")
	if err != nil {
		return nil, fmt.Errorf("sqlite: snapshot: %w", unwrapPath(err))
	}
	name := f.Name()
	f.Close() // empty and 0600: VACUUM INTO fills it and keeps its mode
	fail := func(err error) (*os.File, error) {
		os.Remove(name)
		return nil, fmt.Errorf("sqlite: snapshot: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(s.path, url.Values{
		"_busy_timeout": {strconv.Itoa(busyTimeoutMS)},
		"_pragma":       {"trusted_schema(0)"},
	}))
	if err != nil {
		return fail(err)
	}
	db.SetMaxOpenConns(1)
	_, err = db.ExecContext(ctx, "VACUUM INTO ?", name)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	if f, err = os.Open(name); err != nil {
		return fail(unwrapPath(err))
	}
	return f, nil
}

// dsn builds a modernc DSN as a file: URI, so that any path (even one with
// '?' or '#') is passed to SQLite intact.
func dsn(path string, q url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	// url.URL renders file:///abs; SQLite accepts "file:/abs" and "file:///abs".
	return u.String()
}

// prepareDir creates the data directory (0700) and checks that SQLite will be
// able to create its -wal and -shm files there.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sqlite: cannot create data directory %s: %w", dir, unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, ".keyward-write-check-*")
	if err != nil {
		return fmt.Errorf("sqlite: data directory %s is not writable: %w", dir, unwrapPath(err))
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}

// unwrapPath drops the *PathError layer (whose message repeats a path).
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// sqliteHeader is the first 16 bytes of every SQLite 3 database file.
const sqliteHeader = "SQLite format 3\x00"

// prepareFile creates the database file 0600, or checks that an existing one
// looks like an SQLite database before SQLite is let near it.
func prepareFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("sqlite: cannot create database file %s: %w", path, unwrapPath(err))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("sqlite: database file %s: %w", path, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return invalid(path, "it is not a regular file", nil)
	}
	if fi.Size() > 0 {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("sqlite: cannot read database file %s: %w", path, unwrapPath(err))
		}
		var head [len(sqliteHeader)]byte
		_, err = io.ReadFull(f, head[:])
		f.Close()
		if err != nil || string(head[:]) != sqliteHeader {
			return invalid(path, "it is not an SQLite database", nil)
		}
	}
	return restrictModes(path)
}

// restrictModes makes the database file and its companions 0600.
func restrictModes(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sqlite: %s: %w", p, unwrapPath(err))
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("sqlite: cannot restrict %s to mode 0600: %w", p, unwrapPath(err))
			}
		}
	}
	return nil
}

// check connects and refuses an SQLite database that is not keyward's: one
// that holds tables but no schema_migrations.
func check(ctx context.Context, db *sql.DB, path string) error {
	var tables, ours int
	err := db.QueryRowContext(ctx, `SELECT
		count(*),
		count(*) FILTER (WHERE name = 'schema_migrations')
		FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`).Scan(&tables, &ours)
	if err != nil {
		return openError(path, err)
	}
	if tables > 0 && ours == 0 {
		return invalid(path, "it holds tables but no keyward schema", nil)
	}
	return nil
}

// openError names the file in errors met while opening it.
func openError(path string, err error) error {
	if classify(err) == storage.ErrInvalidDatabase {
		return invalid(path, "SQLite reports it damaged or not a database", err)
	}
	if errors.Is(err, storage.ErrSchemaTooNew) || errors.Is(err, storage.ErrMigrationChanged) {
		return fmt.Errorf("sqlite: %s: %w", path, err)
	}
	return fmt.Errorf("sqlite: open %s: %w", path, err)
}

// invalidError says a file is not a keyward database. It matches
// storage.ErrInvalidDatabase with errors.Is.
type invalidError struct {
	path, reason string
	err          error
}

func invalid(path, reason string, err error) error {
	return &invalidError{path: path, reason: reason, err: err}
}

func (e *invalidError) Error() string {
	msg := fmt.Sprintf("sqlite: %s is not a valid keyward database: %s", e.path, e.reason)
	if e.err != nil {
		msg += " (" + e.err.Error() + ")"
	}
	return msg
}

func (e *invalidError) Unwrap() []error {
	if e.err == nil {
		return []error{storage.ErrInvalidDatabase}
	}
	return []error{storage.ErrInvalidDatabase, e.err}
}

// classify maps SQLite result codes to storage sentinels.
func classify(err error) error {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return nil
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return storage.ErrConflict
	}
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return storage.ErrInvalidDatabase
	}
	return nil
}
