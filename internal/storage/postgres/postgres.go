// Package postgres is keyward's PostgreSQL storage backend, for running
// several keyward nodes on one shared database.
//
// It reaches PostgreSQL through a pgxpool.Pool wrapped as a *sql.DB
// (stdlib.OpenDBFromPool), so domain SQL runs unchanged on both backends.
//
// Invariants:
//   - Write transactions run under READ COMMITTED, concurrently across
//     connections and nodes; code that needs a total order selects a row with
//     Tx.LockForUpdate (" FOR UPDATE"). Read transactions run READ ONLY under
//     REPEATABLE READ, so they see one snapshot.
//   - Migrations run under a transaction-level advisory lock keyed by the
//     schema, so nodes starting together apply each one exactly once.
//   - No error this package returns contains the password from the URL.
//   - A failed statement aborts the PostgreSQL transaction: after an error
//     (ErrConflict included) fn must return, not go on using the Tx.
//
// Only internal/server (and tests) should import this package; everything
// else uses the storage.Store interface.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/keyward/keyward/internal/storage"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded PostgreSQL migrations (NNNN_name.sql at the root).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // unreachable: the directory is embedded
	}
	return sub
}

// defaultConnectTimeout applies when the URL sets no connect_timeout, so an
// unreachable server fails Open instead of hanging it.
const defaultConnectTimeout = 10 * time.Second

// schemaName is what Options.Schema may be: a plain lower-case identifier.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Store is a storage.Store on a PostgreSQL database.
type Store struct {
	*storage.DB
	pool   *pgxpool.Pool
	schema string
}

// Pool returns the underlying pool, for what database/sql cannot do
// (LISTEN/NOTIFY on a hijacked connection, session advisory locks).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Schema returns Options.Schema as given to Open ("" for the default search_path).
func (s *Store) Schema() string { return s.schema }

// Open connects to the PostgreSQL database at rawURL, applies pending
// migrations and returns the store. When the server cannot be reached the
// error wraps storage.ErrUnavailable and names host:port, never the password.
func Open(ctx context.Context, rawURL string, opts storage.Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		// pgx redacts passwords only on a best-effort basis; show nothing of
		// the URL.
		return nil, errors.New("postgres: the storage URL is not a valid PostgreSQL connection string (not shown: it may hold a password)")
	}
	password := cfg.ConnConfig.Password
	addr := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port)))
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		// Lets an operator tell keyward's sessions apart in pg_stat_activity.
		cfg.ConnConfig.RuntimeParams["application_name"] = "keyward"
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = int32(opts.MaxConns)
	}
	if opts.Schema != "" {
		if !schemaName.MatchString(opts.Schema) {
			return nil, fmt.Errorf("postgres: schema %q is not a plain lower-case identifier", opts.Schema)
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, &unreachableError{addr: addr, detail: scrub(err.Error(), password), err: err}
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, &unreachableError{addr: addr, detail: scrub(err.Error(), password), err: err}
	}
	if opts.Schema != "" {
		_, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{opts.Schema}.Sanitize())
		// Two nodes creating it at once: one gets a unique violation on
		// the catalog (23505) or "already exists" (42P06); both mean done.
		if err != nil && !hasCode(err, "23505", "42P06") {
			pool.Close()
			return nil, fmt.Errorf("postgres: create schema %s: %s", opts.Schema, scrub(err.Error(), password))
		}
	}
	db := stdlib.OpenDBFromPool(pool)
	start := time.Now()
	err = storage.Migrate(ctx, db, storage.Postgres, Migrations())
	if opts.Observer != nil {
		opts.Observer("migrate", storage.Postgres, time.Since(start), err)
	}
	if err != nil {
		db.Close()
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", scrubErr(err, password))
	}

	s := &Store{pool: pool, schema: opts.Schema}
	s.DB = storage.NewDB(storage.DBConfig{
		Backend:       storage.Postgres,
		Writer:        db,
		Reader:        db,
		ReadOptions:   &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
		WriteOptions:  &sql.TxOptions{Isolation: sql.LevelReadCommitted},
		LockForUpdate: " FOR UPDATE",
		Classify:      classify,
		Observer:      opts.Observer,
		Close: func() error {
			err := db.Close()
			pool.Close()
			return err
		},
	})
	return s, nil
}

// unreachableError is Open's error when the server does not answer.
type unreachableError struct {
	addr, detail string
	err          error // the driver's error, for errors.As; its message may hold the user name, never the password
}

func (e *unreachableError) Error() string {
	var pe *pgconn.PgError
	if errors.As(e.err, &pe) {
		// The server answered and said no (unknown role or database,
		// authentication failed): it was reached.
		return fmt.Sprintf("postgres: PostgreSQL at %s refused the connection: %s", e.addr, e.detail)
	}
	return fmt.Sprintf("postgres: cannot reach PostgreSQL at %s: %s", e.addr, e.detail)
}

func (e *unreachableError) Unwrap() []error { return []error{storage.ErrUnavailable, e.err} }

// scrub removes the password (raw and URL-escaped) from a message.
func scrub(msg, password string) string {
	if password == "" {
		return msg
	}
	for _, p := range []string{password, url.QueryEscape(password), url.PathEscape(password)} {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}

// scrubErr keeps err's chain for errors.Is but scrubs its message.
func scrubErr(err error, password string) error {
	msg := scrub(err.Error(), password)
	if msg == err.Error() {
		return err
	}
	return &scrubbed{msg: msg, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

func hasCode(err error, codes ...string) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	for _, c := range codes {
		if pe.Code == c {
			return true
		}
	}
	return false
}

// classify maps PostgreSQL errors to storage sentinels.
func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return storage.ErrConflict
		case strings.HasPrefix(pe.Code, "08"), // connection_exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // shutdown, cannot connect now
			return storage.ErrUnavailable
		}
		return nil
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) {
		return storage.ErrUnavailable
	}
	return nil
}
