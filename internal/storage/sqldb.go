package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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
	// CacheStatements keeps every statement text a transaction runs
	// prepared, per handle (up to MaxCachedStatements texts), so it is
	// parsed once per connection rather than on every call. SQLite sets
	// it (its driver prepares each call afresh); pgx caches by itself.
	CacheStatements bool
}

// MaxCachedStatements bounds the statement cache of a handle; texts past
// it are prepared per call as usual.
const MaxCachedStatements = 512

// DB implements Store over database/sql handles. The backends build one with
// NewDB and embed it, so transaction handling, error translation and
// observation are the same code on both.
type DB struct {
	cfg       DBConfig
	writer    *stmtCache // nil unless cfg.CacheStatements
	reader    *stmtCache
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// NewDB returns a Store over cfg's handles.
func NewDB(cfg DBConfig) *DB {
	if cfg.Reader == nil {
		cfg.Reader = cfg.Writer
	}
	d := &DB{cfg: cfg}
	if cfg.CacheStatements {
		d.writer = &stmtCache{db: cfg.Writer}
		d.reader = d.writer
		if cfg.Reader != cfg.Writer {
			d.reader = &stmtCache{db: cfg.Reader}
		}
	}
	return d
}

// Backend implements Store.
func (d *DB) Backend() string { return d.cfg.Backend }

// Read implements Store.
func (d *DB) Read(ctx context.Context, fn func(Tx) error) error {
	return d.run(ctx, "read", d.cfg.Reader, d.reader, d.cfg.ReadOptions, fn)
}

// Write implements Store.
func (d *DB) Write(ctx context.Context, fn func(Tx) error) error {
	return d.run(ctx, "write", d.cfg.Writer, d.writer, d.cfg.WriteOptions, fn)
}

// Exec implements Store.
func (d *DB) Exec(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	defer d.observe("write", time.Now(), &err)
	if d.closed.Load() {
		return nil, errClosed
	}
	if s := d.writer.get(query); s != nil {
		res, err = s.ExecContext(ctx, args...)
	} else {
		res, err = d.cfg.Writer.ExecContext(ctx, query, args...)
		d.writer.prepareWanted(ctx)
	}
	if err != nil {
		return nil, d.translate(err)
	}
	return res, nil
}

// CachedStatements is how many statement texts are kept prepared (0 when
// the backend does not cache).
func (d *DB) CachedStatements() int {
	caches := []*stmtCache{d.writer}
	if d.reader != d.writer {
		caches = append(caches, d.reader)
	}
	n := 0
	for _, c := range caches {
		if c == nil {
			continue
		}
		c.mu.RLock()
		for _, s := range c.m {
			if s != nil {
				n++
			}
		}
		c.mu.RUnlock()
	}
	return n
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
		d.writer.close()
		d.reader.close()
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
func (d *DB) run(ctx context.Context, op string, db *sql.DB, stmts *stmtCache, opts *sql.TxOptions, fn func(Tx) error) (err error) {
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
	defer stmts.prepareWanted(ctx)
	defer func() {
		if !done {
			// fn failed or panicked: the transaction must not outlive the
			// call, or SQLite's only writer connection would be lost.
			stx.Rollback()
		}
	}()
	if err := fn(&sqlTx{tx: stx, d: d, stmts: stmts}); err != nil {
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
	tx    *sql.Tx
	d     *DB
	stmts *stmtCache // nil: no caching
}

func (t *sqlTx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := t.stmts.get(query); s != nil {
		r, err := t.tx.StmtContext(ctx, s).ExecContext(ctx, args...)
		return r, t.d.translate(err)
	}
	r, err := t.tx.ExecContext(ctx, query, args...)
	return r, t.d.translate(err)
}

func (t *sqlTx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := t.stmts.get(query); s != nil {
		r, err := t.tx.StmtContext(ctx, s).QueryContext(ctx, args...)
		return r, t.d.translate(err)
	}
	r, err := t.tx.QueryContext(ctx, query, args...)
	return r, t.d.translate(err)
}

func (t *sqlTx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if s := t.stmts.get(query); s != nil {
		return t.tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t *sqlTx) Backend() string       { return t.d.cfg.Backend }
func (t *sqlTx) LockForUpdate() string { return t.d.cfg.LockForUpdate }

// stmtCache holds the prepared statements of one handle by text.
// database/sql prepares a cached statement again on each connection the
// first time a transaction there uses it, and again after a connection is
// replaced, so a cached statement never outlives its connection.
//
// A text seen for the first time inside a transaction runs unprepared and
// is prepared on the handle after that transaction ends: preparing on the
// handle needs a free connection, and SQLite's writer has one, held by the
// transaction.
type stmtCache struct {
	db     *sql.DB
	mu     sync.RWMutex
	m      map[string]*sql.Stmt
	wanted map[string]bool
	closed bool
}

// get returns the prepared statement for query, or nil (cache off, not
// prepared yet, or full): the caller then runs the text unprepared.
func (c *stmtCache) get(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	s, ok := c.m[query]
	c.mu.RUnlock()
	if ok {
		return s
	}
	if !cacheable(query) {
		return nil
	}
	c.mu.Lock()
	if !c.closed && len(c.m)+len(c.wanted) < MaxCachedStatements {
		if c.wanted == nil {
			c.wanted = make(map[string]bool)
		}
		c.wanted[query] = true
	}
	c.mu.Unlock()
	return nil
}

// cacheable reports whether query is one plain DML statement: a text with
// several statements would prepare as its first one only, and schema
// statements run once.
func cacheable(query string) bool {
	if strings.IndexByte(query, ';') >= 0 {
		return false
	}
	q := strings.TrimLeft(query, " \t\r\n")
	for _, kw := range [...]string{"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"} {
		if len(q) > len(kw) && strings.EqualFold(q[:len(kw)], kw) {
			return true
		}
	}
	return false
}

// prepareWanted prepares the texts get has been asked for, outside any
// transaction. A text that does not prepare is not asked for again.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	if c == nil {
		return
	}
	c.mu.RLock()
	n := len(c.wanted)
	c.mu.RUnlock()
	if n == 0 {
		return
	}
	c.mu.Lock()
	wanted := c.wanted
	c.wanted = nil
	c.mu.Unlock()
	for q := range wanted {
		s, err := c.db.PrepareContext(ctx, q)
		c.mu.Lock()
		switch {
		case err != nil && ctx.Err() != nil:
			// Not the text's fault: ask again next time.
			if !c.closed {
				if c.wanted == nil {
					c.wanted = make(map[string]bool)
				}
				c.wanted[q] = true
			}
		case err != nil:
			if c.m == nil {
				c.m = make(map[string]*sql.Stmt)
			}
			c.m[q] = nil // never asked for again: runs unprepared
		case c.closed || c.m[q] != nil:
			s.Close()
		default:
			if c.m == nil {
				c.m = make(map[string]*sql.Stmt)
			}
			c.m[q] = s
		}
		c.mu.Unlock()
	}
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, s := range c.m {
		if s != nil {
			s.Close()
		}
	}
	c.m, c.wanted = nil, nil
}
