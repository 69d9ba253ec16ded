// Package audit is keyward's tamper-evident audit log: every request of the
// server appends one Entry, stored in the database next to the data it
// describes.
//
// Chain. Entries carry a sequence number (seq, from 1, contiguous) and
// hash = SHA-256(prev_hash ‖ canonical bytes of the entry), where prev_hash is
// the previous entry's hash (32 zero bytes for entry 1, or the prune anchor's
// hash). The canonical bytes are one fixed, length-prefixed binary encoding of
// every field as stored (encoding.go); the detail map is stored as the exact
// JSON text that was hashed, so verification never re-marshals anything. A
// change anywhere in an entry, a gap, a reordering or an insertion breaks the
// chain at a seq that Verify names.
//
// Storage. Entries are stored in blocks: one row of audit_blocks holds up to
// 64 consecutive entries (those one transaction wrote together), as the
// seq of its last entry, its entry count, its latest time, the entries'
// texts (every field but seq and hash, as one compact JSON array an entry:
// entrytext.go; a string equal to the entry before's is written null) and
// their hashes side by side; audit_principals lists each
// block's principals, for List by principal. A batch costs one row insert
// per 64 entries instead of a row and an index entry per entry (less than
// half the write's CPU). prev_hash is not stored: it is the hash of the
// entry before (or the prune anchor's), which Verify carries along its
// walk and List reads with a join. The hash covers the field values the
// text decodes to, so the text's spelling is free (migrations 0018 and
// 0025 converted older rows with the databases' JSON functions) and a text
// that does not decode is tampering.
//
// Checkpoints. Every Options.CheckpointEvery entries, and at Close, the log
// signs (seq, hash, time) with the barrier's Ed25519 audit key (Signer). An
// attacker with write access to the database can recompute hashes but not
// signatures, so a rewritten chain contradicts a checkpoint; what they can
// still do undetected is cut or extend the tail after the last checkpoint
// (and before the next), which bounds the window to CheckpointEvery entries.
// Prune replaces a deleted prefix by a signed anchor (seq and hash of the last
// deleted entry) from which Verify starts; it deletes whole blocks, so an
// entry older than the cut stays while its block holds a newer one.
//
// Ordering. The chain head (seq, hash) lives in the single row of audit_head.
// Every append — a group-commit batch or AppendTx inside a caller's
// transaction — locks that row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
// single writer already serialises), extends the chain from it, inserts and
// updates it, in one transaction. So appenders on any number of nodes sharing
// one database get one total order, and an entry is in the log exactly when
// its transaction committed. Nothing about the head is cached in memory.
//
// Group commit. Append hands its entry to one batcher goroutine, which writes
// every entry pending at that moment (up to Options.MaxBatch) in one Write
// transaction, i.e. one fsync, then wakes each caller with the shared result.
// Before it writes, the batcher lingers (at most Options.Linger) while some
// caller that is inside Append has not queued its entry yet — typically the
// callers of the batch just committed, coming back with their next entry.
// Without this, 64 writers settle into two alternating batches of 32, each
// paying an fsync; with it they share one. One lone writer never waits.
// The server appends before it writes a response and fails the request when
// Append fails (fail closed); Healthy reports that state to the health check.
//
// Asynchronous appends. AppendAsync queues an entry for the batcher and
// returns at once; a callback learns the batch's result. It is for calls
// whose response must not wait for a commit (the gateway's proxied calls).
// While only such entries are pending, the batcher holds them until the
// oldest has waited Options.AsyncDelay (or a batch is full, or a
// synchronous Append arrives and takes them along), so a stream of calls
// makes few large transactions instead of many small ones. Entries enter
// the chain in the order they were queued.
//
// Sensitive values never reach this package in plaintext: callers pass the
// token accessor already HMAC'd and never put secrets in Detail.
//
// The optional Sink (a file, a pipe to a log shipper) is fed from the stored
// log by a tailer goroutine, so it only ever sees committed entries, in seq
// order, and never slows an append: when its buffer is full, entries are
// dropped for the sink (never for the database) and counted.
//
// Imported by internal/server and internal/httpapi (the middleware that
// appends) and by domain services that call AppendTx. It imports only
// internal/storage.
package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// Entry is one audited request or event. Seq, PrevHash and Hash are set by
// the log; Time is set to Options.Now() when zero. After a successful append
// the entry holds exactly what was stored (times in UTC at nanosecond
// precision, over-long or invalid UTF-8 fields cleaned).
//
// An entry to append carries its detail in Detail or, without building a
// map, in Details (not both): it is stored the same either way. The log
// returns it in Detail.
type Entry struct {
	Seq          int64             `json:"seq"`
	Time         time.Time         `json:"time"`
	RequestID    string            `json:"request_id"`
	Principal    string            `json:"principal,omitempty"`
	AuthMethod   string            `json:"auth_method,omitempty"`
	AccessorHMAC string            `json:"accessor_hmac,omitempty"`
	Action       string            `json:"action,omitempty"`
	Resource     string            `json:"resource,omitempty"`
	Environment  string            `json:"environment,omitempty"`
	SourceAddr   string            `json:"source_addr,omitempty"`
	UserAgent    string            `json:"user_agent,omitempty"`
	Outcome      string            `json:"outcome"` // OutcomeAllowed, OutcomeDenied or OutcomeError
	Status       int               `json:"status"`
	LatencyUS    int64             `json:"latency_us"`
	Detail       map[string]string `json:"detail,omitempty"`
	Details      Details           `json:"-"` // to append only: Detail as pairs
	PrevHash     []byte            `json:"prev_hash"`
	Hash         []byte            `json:"hash"`
}

// Detail is one detail of an entry: a key and its value, never a secret.
type Detail struct{ Key, Value string }

// Details is an entry's detail as pairs, in any order: what a request
// gathers as it goes (a gateway call's four to six), without a map's
// allocation and hashing. Set keeps keys distinct; a key listed twice
// anyway stands for its last value, as in the map the pairs make.
type Details []Detail

// Set sets key's value, replacing the value it has.
func (d *Details) Set(key, value string) {
	for i := range *d {
		if (*d)[i].Key == key {
			(*d)[i].Value = value
			return
		}
	}
	*d = append(*d, Detail{key, value})
}

// Get returns key's value ("" when it has none).
func (d Details) Get(key string) string {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i].Key == key {
			return d[i].Value
		}
	}
	return ""
}

// Signer signs checkpoints and prune anchors. The barrier implements it; it
// returns an error while sealed.
type Signer interface {
	SignAudit(msg []byte) ([]byte, error)
	AuditPublicKey() (ed25519.PublicKey, error)
}

// Defaults for Options.
const (
	DefaultCheckpointEvery = 1000
	DefaultMaxBatch        = 512
	DefaultSinkBuffer      = 4096
	DefaultLinger          = 500 * time.Microsecond
	DefaultAsyncDelay      = 25 * time.Millisecond
	DefaultMaxQueued       = 4096
)

// Options tune a Log. The zero value gives the defaults.
type Options struct {
	// CheckpointEvery is how many entries separate signed checkpoints
	// (DefaultCheckpointEvery when 0).
	CheckpointEvery int
	// MaxBatch caps the entries written by one group-commit transaction
	// (DefaultMaxBatch when 0).
	MaxBatch int
	// Linger bounds how long the batcher waits for callers already inside
	// Append to queue their entries before it writes a batch
	// (DefaultLinger when 0; negative: never wait).
	Linger time.Duration
	// AsyncDelay bounds how long entries of AppendAsync wait for others
	// before the batcher writes them when no synchronous Append is
	// pending (DefaultAsyncDelay when 0; negative: no wait).
	AsyncDelay time.Duration
	// MaxQueued bounds the entries of AppendAsync not yet written; past it
	// AppendAsync refuses with ErrQueueFull (DefaultMaxQueued when 0).
	MaxQueued int
	// Sink, when set, receives every committed entry appended through this
	// Log as one JSON line, asynchronously.
	Sink io.Writer
	// SinkBuffer is how many lines wait for a slow Sink before further ones
	// are dropped (DefaultSinkBuffer when 0).
	SinkBuffer int
	// OnSinkError is told about Sink write errors and tailer read errors,
	// from the log's goroutines (possibly two at once).
	OnSinkError func(error)
	// Now returns the current time (time.Now when nil).
	Now func() time.Time
}

// Errors.
var (
	// ErrTampered: the stored log does not verify (Verify) or its
	// bookkeeping rows are missing or malformed.
	ErrTampered = errors.New("audit: log has been tampered with")
	// ErrClosed: the Log was closed.
	ErrClosed = errors.New("audit: log is closed")
	// ErrQueueFull: Options.MaxQueued asynchronous entries are unwritten;
	// the caller appends synchronously instead (and so waits for the log).
	ErrQueueFull = errors.New("audit: too many queued entries")
	// ErrInvalid: the entry cannot be logged as given (e.g. unknown outcome).
	ErrInvalid = errors.New("audit: invalid entry")
	// ErrWrite: the entry could not be written; the request it records
	// must fail. The storage error is wrapped too.
	ErrWrite = errors.New("audit: entry could not be written")
)

// writeTimeout bounds one group-commit transaction; the callers' own
// contexts do not apply because one batch serves many callers.
const writeTimeout = 30 * time.Second

// Log is the audit log. It is safe for concurrent use.
type Log struct {
	st     storage.Store
	signer Signer
	opts   Options

	mu          sync.Mutex
	pending     []*request
	syncPending int // requests in pending that a caller waits for
	queued      int // AppendAsync entries not yet written (pending or in a batch)
	closed      bool

	wake chan struct{} // cap 1: pending is non-empty
	quit chan struct{} // closed by Close
	done chan struct{} // closed when the batcher has exited

	health       atomic.Pointer[error]
	signFailures atomic.Uint64
	batches      atomic.Uint64 // group-commit transactions committed
	batched      atomic.Uint64 // entries they held
	inflight     atomic.Int64  // Append calls between entry and return
	lingering    atomic.Bool   // the batcher waits for inflight callers

	sink *sinkFeed // nil without Options.Sink

	// batch and batchRows are commitPending's, reused batch after batch
	// (the batcher's goroutine only).
	batch     []*request
	batchRows []*row

	closeOnce sync.Once
	closeErr  error
}

// request is one Append (done, detail) or AppendAsync (cb, queued)
// waiting for its batch.
type request struct {
	r      row
	detail map[string]string
	err    error
	done   chan struct{}
	cb     func(error)
	queued time.Time
}

// asyncRequests recycles AppendAsync's requests (*request), which the
// batcher puts back once their callback returned: a queued entry costs
// no allocation of its own.
var asyncRequests sync.Pool

// Open returns the log stored in st, after checking that its tables and
// chain head exist, and starts the batcher (and the sink tailer when
// opts.Sink is set). Close stops them.
func Open(ctx context.Context, st storage.Store, signer Signer, opts Options) (*Log, error) {
	if st == nil || signer == nil {
		return nil, errors.New("audit: open: a store and a signer are required")
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.Linger == 0 {
		opts.Linger = DefaultLinger
	}
	if opts.AsyncDelay == 0 {
		opts.AsyncDelay = DefaultAsyncDelay
	}
	if opts.MaxQueued <= 0 {
		opts.MaxQueued = DefaultMaxQueued
	}
	if opts.SinkBuffer <= 0 {
		opts.SinkBuffer = DefaultSinkBuffer
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var h head
	err := st.Read(ctx, func(tx storage.Tx) error {
		var err error
		h, err = readHead(ctx, tx, "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	l := &Log{
		st:     st,
		signer: signer,
		opts:   opts,
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if opts.Sink != nil {
		l.sink = newSinkFeed(l, h.seq)
	}
	go l.run()
	return l, nil
}

// Append writes e durably through group commit and returns after the batch
// holding it committed (or failed: then every entry of the batch failed and
// the error wraps ErrWrite). On success e holds its Seq, PrevHash, Hash and
// stored values. If ctx ends first Append returns ctx's error, and the entry
// may still be written.
//
// Never call Append inside Store.Write (on SQLite it would wait for the
// writer connection the caller holds): use AppendTx there.
func (l *Log) Append(ctx context.Context, e *Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	l.inflight.Add(1)
	defer l.leave()
	r, detail, err := l.prepare(e, true)
	if err != nil {
		return err
	}
	req := &request{r: r, detail: detail, done: make(chan struct{})}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.pending = append(l.pending, req)
	l.syncPending++
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		return fmt.Errorf("audit: append: %w", ctx.Err())
	}
	if req.err != nil {
		return req.err
	}
	fill(e, &req.r, req.detail)
	return nil
}

// AppendAsync queues e for a coming group commit and returns without
// waiting for it. done, when not nil, is called once with the batch's
// result (nil, or an error wrapping ErrWrite), from the log's goroutine:
// it must not block. e is not updated. Errors returned directly (invalid
// entry, closed log, ErrQueueFull) mean e was not queued and done is not
// called.
// Entries still queued at Close are written before it returns.
func (l *Log) AppendAsync(e *Entry, done func(error)) error {
	r, _, err := l.prepare(e, false)
	if err != nil {
		return err
	}
	req, _ := asyncRequests.Get().(*request)
	if req == nil {
		req = new(request)
	}
	*req = request{r: r, cb: done, queued: time.Now()}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		asyncRequests.Put(req)
		return ErrClosed
	}
	if l.queued >= l.opts.MaxQueued {
		l.mu.Unlock()
		asyncRequests.Put(req)
		return ErrQueueFull
	}
	l.queued++
	l.pending = append(l.pending, req)
	// Wake the batcher only when it has something new to decide: the
	// first entry (it arms its timer) or a full batch.
	n := len(l.pending)
	l.mu.Unlock()
	if n == 1 || n >= l.opts.MaxBatch {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// AppendTx appends e inside the caller's write transaction, so a change and
// its entry commit (or roll back) together. It locks the chain head row
// until tx ends, which serialises every appender: call it last, just before
// the transaction commits. e's Seq, PrevHash and Hash are set on return and
// are final once tx commits. Errors wrap ErrWrite (or ErrInvalid); tx must
// then be rolled back.
func (l *Log) AppendTx(ctx context.Context, tx storage.Tx, e *Entry) error {
	if l.isClosed() {
		return ErrClosed
	}
	r, detail, err := l.prepare(e, true)
	if err != nil {
		return err
	}
	if err := l.writeRows(ctx, tx, []*row{&r}); err != nil {
		err = fmt.Errorf("%w: %w", ErrWrite, err)
		if ctx.Err() == nil {
			l.health.Store(&err)
		}
		return err
	}
	l.health.Store(nil)
	fill(e, &r, detail)
	if l.sink != nil {
		l.sink.expect([]*row{&r}, true)
	}
	return nil
}

// Healthy returns nil unless the last append failed; then it returns that
// error until a later append succeeds.
func (l *Log) Healthy() error {
	if p := l.health.Load(); p != nil {
		return *p
	}
	return nil
}

// SignFailures counts checkpoints skipped because the signer failed (for
// instance while sealed); the next append retries.
func (l *Log) SignFailures() uint64 { return l.signFailures.Load() }

// SinkDropped counts entries the sink never received because its buffer
// was full.
func (l *Log) SinkDropped() uint64 {
	if l.sink == nil {
		return 0
	}
	return l.sink.dropped.Load()
}

// Close stops accepting appends, lets pending ones finish, writes a final
// signed checkpoint at the chain head, and flushes the sink (waiting at most
// 10 s for a stuck one). It is safe to call more than once. It
// does not close the store.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.quit)
		<-l.done
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		defer cancel()
		err := l.finalCheckpoint(ctx)
		if l.sink != nil {
			err = errors.Join(err, l.sink.close())
		}
		l.closeErr = err
	})
	return l.closeErr
}

// leave ends an Append: one fewer caller may still queue an entry. A
// lingering batcher is woken to re-check.
func (l *Log) leave() {
	l.inflight.Add(-1)
	if l.lingering.Load() {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// linger waits, at most opts.Linger, until every caller inside Append has
// queued its entry (or a full batch is pending), so that they share the
// next transaction instead of each round of callers paying its own.
func (l *Log) linger(t *time.Timer) {
	if l.opts.Linger < 0 {
		return
	}
	l.lingering.Store(true)
	defer l.lingering.Store(false)
	deadline := time.Now().Add(l.opts.Linger)
	l.waitWhile(t, func() time.Duration {
		l.mu.Lock()
		n := len(l.pending)
		l.mu.Unlock()
		if n == 0 || n >= l.opts.MaxBatch || int64(n) >= l.inflight.Load() {
			return 0
		}
		return time.Until(deadline)
	})
}

// hold waits while only asynchronous entries are pending, fewer than a
// batch, until the oldest has waited opts.AsyncDelay: a synchronous
// Append, a full batch or Close ends the wait at once.
func (l *Log) hold(t *time.Timer) {
	if l.opts.AsyncDelay < 0 {
		return
	}
	l.waitWhile(t, func() time.Duration {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.pending) == 0 || l.syncPending > 0 || len(l.pending) >= l.opts.MaxBatch {
			return 0
		}
		return time.Until(l.pending[0].queued.Add(l.opts.AsyncDelay))
	})
}

// waitWhile is the batcher's wait: it asks wait how much longer to wait
// (0 or less: stop), and waits that long for a wake-up, again after each
// one, until wait says stop, the timer fires or the log closes.
func (l *Log) waitWhile(t *time.Timer, wait func() time.Duration) {
	for {
		d := wait()
		if d <= 0 {
			return
		}
		t.Reset(d)
		select {
		case <-l.wake:
			t.Stop()
		case <-t.C:
			return
		case <-l.quit:
			t.Stop()
			return
		}
	}
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// run is the batcher: it writes whatever is pending, batch after batch,
// until Close; then it drains what is left and exits.
func (l *Log) run() {
	defer close(l.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-l.wake:
		case <-l.quit:
			for l.commitPending() {
			}
			return
		}
		for {
			l.linger(t)
			l.hold(t)
			if !l.commitPending() {
				break
			}
		}
	}
}

// commitPending writes up to MaxBatch pending entries in one transaction
// and reports whether there were any.
func (l *Log) commitPending() bool {
	l.mu.Lock()
	n := min(len(l.pending), l.opts.MaxBatch)
	batch := slices.Grow(l.batch[:0], n)[:n]
	copy(batch, l.pending)
	rest := copy(l.pending, l.pending[n:])
	clear(l.pending[rest:])
	l.pending = l.pending[:rest]
	for _, req := range batch {
		if req.done != nil {
			l.syncPending--
		}
	}
	l.mu.Unlock()
	if n == 0 {
		return false
	}
	rows := slices.Grow(l.batchRows[:0], n)[:n]
	for i, req := range batch {
		rows[i] = &req.r
	}
	defer func() {
		// Kept for the next batch, without what they pointed to.
		clear(batch)
		clear(rows)
		l.batch, l.batchRows = batch[:0], rows[:0]
	}()
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	registered := false
	err := l.st.Write(ctx, func(tx storage.Tx) error {
		if err := l.writeRows(ctx, tx, rows); err != nil {
			return err
		}
		if l.sink != nil {
			// Before the commit, so the tailer cannot read the rows first.
			l.sink.expect(rows, false)
			registered = true
		}
		return nil
	})
	cancel()
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrWrite, err)
		l.health.Store(&err)
		if registered {
			l.sink.forget(rows)
		}
	} else {
		l.health.Store(nil)
		l.batches.Add(1)
		l.batched.Add(uint64(n))
	}
	l.mu.Lock()
	for _, req := range batch {
		if req.done == nil {
			l.queued--
		}
	}
	l.mu.Unlock()
	for _, req := range batch {
		if req.done != nil {
			req.err = err
			close(req.done)
			continue
		}
		if req.cb != nil {
			req.cb(err)
		}
		*req = request{} // nothing refers to it any more
		asyncRequests.Put(req)
	}
	if err == nil && l.sink != nil {
		l.sink.poke()
	}
	return true
}

// prepare validates e and returns the row to store (seq and hashes unset)
// and, with wantMap, the cleaned detail map (for fill).
func (l *Log) prepare(e *Entry, wantMap bool) (row, map[string]string, error) {
	if e == nil {
		return row{}, nil, fmt.Errorf("%w: nil entry", ErrInvalid)
	}
	switch e.Outcome {
	case OutcomeAllowed, OutcomeDenied, OutcomeError:
	default:
		return row{}, nil, fmt.Errorf("%w: outcome %q is not %q, %q or %q",
			ErrInvalid, clean(e.Outcome, 64), OutcomeAllowed, OutcomeDenied, OutcomeError)
	}
	t := e.Time
	if t.IsZero() {
		t = l.opts.Now()
	}
	if u := t.Unix(); (u < storableFrom || u >= storableUntil) && (t.Year() < 1678 || t.Year() > 2261) {
		return row{}, nil, fmt.Errorf("%w: time %s cannot be stored as unix nanoseconds", ErrInvalid, t.UTC().Format(time.RFC3339))
	}
	detailText, detail, err := encodeDetail(e.Detail, e.Details, wantMap)
	if err != nil {
		return row{}, nil, err
	}
	return row{
		time:        t.UnixNano(),
		requestID:   clean(e.RequestID, MaxFieldBytes),
		principal:   clean(e.Principal, MaxFieldBytes),
		authMethod:  clean(e.AuthMethod, MaxFieldBytes),
		accessor:    clean(e.AccessorHMAC, MaxFieldBytes),
		action:      clean(e.Action, MaxFieldBytes),
		resource:    clean(e.Resource, MaxFieldBytes),
		environment: clean(e.Environment, MaxFieldBytes),
		sourceAddr:  clean(e.SourceAddr, MaxFieldBytes),
		userAgent:   clean(e.UserAgent, MaxFieldBytes),
		outcome:     e.Outcome,
		status:      int64(e.Status),
		latencyUS:   e.LatencyUS,
		detail:      detailText,
	}, detail, nil
}

// Every instant from storableFrom to storableUntil (unix seconds) falls
// in a year from 1678 to 2261 in any zone, as prepare requires: it asks
// the year (8 ns) only of times outside them.
var (
	storableFrom  = time.Date(1679, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	storableUntil = time.Date(2261, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

// fill copies what was stored back into the caller's entry.
func fill(e *Entry, r *row, detail map[string]string) {
	*e = r.entry(detail)
}

// entry converts a stored row to an Entry (detail already decoded).
func (r *row) entry(detail map[string]string) Entry {
	return Entry{
		Seq:          r.seq,
		Time:         time.Unix(0, r.time).UTC(),
		RequestID:    r.requestID,
		Principal:    r.principal,
		AuthMethod:   r.authMethod,
		AccessorHMAC: r.accessor,
		Action:       r.action,
		Resource:     r.resource,
		Environment:  r.environment,
		SourceAddr:   r.sourceAddr,
		UserAgent:    r.userAgent,
		Outcome:      r.outcome,
		Status:       int(r.status),
		LatencyUS:    r.latencyUS,
		Detail:       detail,
		PrevHash:     r.prevHash,
		Hash:         r.hash,
	}
}
