package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Classifier maps a driver error to the sentinel it means (ErrConflict,
// ErrUnavailable, ErrInvalidDatabase) or returns nil when it means none of them.
// Each backend supplies one.
type Classifier func(error) error

// DBConfig describes a backend's database/sql handles to NewDB.
type DBConfig struct {
	Backend string
	// Writer runs Write transactions. On SQLite it has exactly one connection.
	Writer *sql.DB
	// Reader runs Read transactions and Ping; it may be the same as Writer.
	Reader *sql.DB
	// WriteOptions and ReadOptions are passed to BeginTx.
	WriteOptions, ReadOptions *sql.TxOptions
	// LockForUpdate is what Tx.LockForUpdate returns.
	LockForUpdate string
	// Classify translates driver errors; nil translates nothing.
	Classify Classifier
	// Observer, when set, is told about every operation.
	Observer Observer
	// Close releases the handles; NewDB's Close calls it once.
	Close func() error
}

// DB implements Store over database/sql handles. The backends build one with
// NewDB and embed it, so transaction handling, error translation and
// observation are the same code on both.
type DB struct {
	cfg       DBConfig
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// NewDB returns a Store over cfg's handles.
func NewDB(cfg DBConfig) *DB {
	if cfg.Reader == nil {
		cfg.Reader = cfg.Writer
	}
	return &DB{cfg: cfg}
}

// Backend implements Store.
func (d *DB) Backend() string { return d.cfg.Backend }

// Read implements Store.
func (d *DB) Read(ctx context.Context, fn func(Tx) error) error {
	return d.run(ctx, "read", d.cfg.Reader, d.cfg.ReadOptions, fn)
}

// Write implements Store.
func (d *DB) Write(ctx context.Context, fn func(Tx) error) error {
	return d.run(ctx, "write", d.cfg.Writer, d.cfg.WriteOptions, fn)
}

// Ping implements Store.
func (d *DB) Ping(ctx context.Context) (err error) {
	defer d.observe("ping", time.Now(), &err)
	if d.closed.Load() {
		return errClosed
	}
	if err := d.cfg.Reader.PingContext(ctx); err != nil {
		return d.fail(ctx, "ping", err)
	}
	return nil
}

// Close implements Store. It is safe to call more than once.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		if d.cfg.Close != nil {
			d.closeErr = d.cfg.Close()
		}
	})
	return d.closeErr
}

var errClosed = fmt.Errorf("%w: store is closed", ErrUnavailable)

func (d *DB) observe(op string, start time.Time, err *error) {
	if d.cfg.Observer != nil {
		d.cfg.Observer(op, d.cfg.Backend, time.Since(start), *err)
	}
}

// run is one transaction: begin, fn, commit; rollback on error or panic.
func (d *DB) run(ctx context.Context, op string, db *sql.DB, opts *sql.TxOptions, fn func(Tx) error) (err error) {
	defer d.observe(op, time.Now(), &err)
	if d.closed.Load() {
		return errClosed
	}
	stx, err := db.BeginTx(ctx, opts)
	if err != nil && ctx.Err() == nil && errors.Is(d.translate(err), ErrUnavailable) {
		// A pooled connection the server has dropped (restart, failover)
		// fails at BEGIN, before any of fn's statements ran: one retry on
		// a fresh connection is safe.
		stx, err = db.BeginTx(ctx, opts)
	}
	if err != nil {
		return d.fail(ctx, op+": begin", err)
	}
	done := false
	defer func() {
		if !done {
			// fn failed or panicked: the transaction must not outlive the
			// call, or SQLite's only writer connection would be lost.
			stx.Rollback()
		}
	}()
	if err := fn(&sqlTx{tx: stx, d: d}); err != nil {
		return d.translate(err)
	}
	done = true
	if err := stx.Commit(); err != nil {
		return d.fail(ctx, op+": commit", err)
	}
	return nil
}

// fail wraps an error of the store's own making (not fn's) with what was being
// done, keeping context errors visible to errors.Is.
func (d *DB) fail(ctx context.Context, what string, err error) error {
	err = d.translate(err)
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("storage: %s %s: %w: %w", d.cfg.Backend, what, cerr, err)
	}
	if errors.Is(err, sql.ErrConnDone) && !errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("storage: %s %s: %w: %w", d.cfg.Backend, what, ErrUnavailable, err)
	}
	return fmt.Errorf("storage: %s %s: %w", d.cfg.Backend, what, err)
}

// translate wraps err with the sentinel the backend's classifier names. It
// returns err itself when there is nothing to add, so fn's own errors keep
// their identity.
func (d *DB) translate(err error) error {
	if err == nil || d.cfg.Classify == nil {
		return err
	}
	for _, known := range []error{sql.ErrNoRows, ErrConflict, ErrUnavailable, ErrNotFound, ErrInvalidDatabase, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, known) {
			return err
		}
	}
	if kind := d.cfg.Classify(err); kind != nil {
		return fmt.Errorf("%w: %w", kind, err)
	}
	return err
}

// sqlTx is the Tx both backends hand to fn.
type sqlTx struct {
	tx *sql.Tx
	d  *DB
}

func (t *sqlTx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r, err := t.tx.ExecContext(ctx, query, args...)
	return r, t.d.translate(err)
}

func (t *sqlTx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	r, err := t.tx.QueryContext(ctx, query, args...)
	return r, t.d.translate(err)
}

func (t *sqlTx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t *sqlTx) Backend() string       { return t.d.cfg.Backend }
func (t *sqlTx) LockForUpdate() string { return t.d.cfg.LockForUpdate }
