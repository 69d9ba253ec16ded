package audit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// A Shipper delivers the stored log to a webhook (a SIEM's collector) at
// least once, in seq order, whatever happens to the node or the collector.
// It reads committed entries from the database, not from the appends, and
// keeps how far it got in the sys table (ShipCursorKey), moving it only
// after the collector has answered 2xx: a collector that is down for days
// gets everything once it is back, and a node that crashes mid-batch sends
// that batch again from the next start (receivers that must not see an
// entry twice keep the highest seq they took). Nothing is dropped for a
// full buffer; only entries deleted by retention before they were shipped
// are missed, and that gap is reported.
//
// On PostgreSQL the nodes share one log and one cursor: one node at a time
// ships every node's entries, holding a lease (ShipLeaseKey) that it renews
// while it lives and gives up at Close; another takes over within
// ShipLeaseFor of a crash.
//
// The first Shipper of a log starts at its head when Ship is called: older
// entries are left to `keyward audit list`. A cursor already stored (the
// webhook was on before) is resumed, whatever the URL.
type Shipper struct {
	l        *Log
	p        poster
	node     string
	every    time.Duration
	leaseFor time.Duration
	onError  func(error)

	until   time.Time // end of the lease this node holds (run goroutine only)
	cursor  int64     // last seq the collector took (run goroutine only)
	shipped atomic.Uint64
	failing atomic.Bool  // the last attempt failed
	pending atomic.Int64 // stored entries not yet shipped, as of the last look (0 on a standby node)

	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Shipping settings and the sys rows of the shipper's state.
const (
	// ShipLeaseFor is how long a node's hold on shipping lasts unrenewed.
	ShipLeaseFor = 15 * time.Second
	// ShipCursorKey holds the last seq the collector took, as decimal.
	ShipCursorKey = "audit/webhook/cursor"
	// ShipLeaseKey holds "node until-unix-nanos" of the shipping node.
	ShipLeaseKey = "audit/webhook/lease"
	// shipBackoffMax bounds the wait between failed attempts.
	shipBackoffMax = 30 * time.Second
	// shipDrainFor bounds Close's last deliveries.
	shipDrainFor = 5 * time.Second
)

// Ship starts shipping l's stored entries to url, signed under secret
// (see Webhook for the request's shape); hc nil uses a client of its own;
// onError, when set, hears of each failed attempt and of gaps. Close
// stops it.
func (l *Log) Ship(url string, secret []byte, hc *http.Client, onError func(error)) *Shipper {
	return l.ship(url, secret, hc, onError, WebhookEvery, ShipLeaseFor)
}

func (l *Log) ship(url string, secret []byte, hc *http.Client, onError func(error), every, leaseFor time.Duration) *Shipper {
	if hc == nil {
		hc = &http.Client{Timeout: webhookTimeout}
	}
	var id [8]byte
	rand.Read(id[:])
	s := &Shipper{l: l, p: poster{url: url, secret: secret, hc: hc}, node: hex.EncodeToString(id[:]),
		every: every, leaseFor: leaseFor, onError: onError, cursor: -1,
		quit: make(chan struct{}), done: make(chan struct{})}
	// The cursor exists before Ship returns, so that every entry stored
	// from then on is shipped. On failure the shipper tries again.
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	if _, err := s.loadCursor(ctx); err != nil && onError != nil {
		onError(err)
	}
	cancel()
	go s.run()
	return s
}

// Shipped counts the entries the collector has taken from this node.
func (s *Shipper) Shipped() uint64 { return s.shipped.Load() }

// Failing reports whether the last attempt to ship failed.
func (s *Shipper) Failing() bool { return s.failing.Load() }

// Pending is how many stored entries the collector had not taken at this
// node's last look, when this node ships; 0 on a standby node.
func (s *Shipper) Pending() int64 { return s.pending.Load() }

// Close stops shipping; while it holds the lease it first sends what is
// stored (for up to shipDrainFor: a node's last entries need not wait for
// its next start), then gives the lease up, so that another node takes
// over at once. Call it after the Log's Close, so that the last entries
// are stored. Calls after the first return its result.
func (s *Shipper) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Shipper) close() error {
	close(s.quit)
	<-s.done
	if s.until.IsZero() {
		return nil
	}
	drain, stop := context.WithTimeout(context.Background(), shipDrainFor)
	defer stop()
	for {
		more, err := s.step(drain)
		if err != nil {
			if s.onError != nil {
				s.onError(err)
			}
			break
		}
		if !more {
			break
		}
	}
	if s.until.IsZero() { // lost the lease meanwhile
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return s.l.st.Write(ctx, func(tx storage.Tx) error {
		l, err := readLease(ctx, tx, tx.LockForUpdate())
		if err != nil || l.holder != s.node {
			return err
		}
		return storage.PutSys(ctx, tx, ShipLeaseKey, nil)
	})
}

func (s *Shipper) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// A step under way when Close is called may finish (a batch
		// delivered then has its cursor stored, and is not sent again)
		// for up to shipDrainFor.
		select {
		case <-s.quit:
			select {
			case <-time.After(shipDrainFor):
				cancel()
			case <-s.done:
			}
		case <-s.done:
		}
	}()
	wait := time.Duration(0)
	for {
		select {
		case <-s.quit:
			return
		case <-time.After(wait):
		}
		more, err := s.step(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.failing.Store(true)
			if s.onError != nil {
				s.onError(err)
			}
			wait = min(max(2*wait, s.every), shipBackoffMax)
		case more:
			s.failing.Store(false)
			wait = 0
		default:
			s.failing.Store(false)
			wait = s.every
		}
	}
}

// step ships one batch if this node holds the lease; more reports that a
// full batch went, so another may follow at once.
func (s *Shipper) step(ctx context.Context) (more bool, err error) {
	held, err := s.hold(ctx)
	if err != nil || !held {
		s.pending.Store(0)
		return false, err
	}
	if s.cursor < 0 {
		cur, err := s.loadCursor(ctx)
		if err != nil {
			return false, err
		}
		s.cursor = cur
	}
	var h head
	if err := s.l.st.Read(ctx, func(tx storage.Tx) (err error) {
		h, err = readHead(ctx, tx, "")
		return err
	}); err != nil {
		return false, fmt.Errorf("audit webhook: %w", err)
	}
	s.pending.Store(max(h.seq-s.cursor, 0))
	if h.seq <= s.cursor {
		return false, nil
	}
	batch, first, last, err := s.read(ctx)
	if err != nil || len(batch) == 0 {
		return false, err
	}
	if first > s.cursor+1 && s.onError != nil {
		s.onError(fmt.Errorf("audit webhook: entries %d to %d were deleted (retention) before they were shipped", s.cursor+1, first-1))
	}
	pctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	err = s.p.post(pctx, batch)
	cancel()
	if err != nil {
		return false, fmt.Errorf("audit webhook: entries %d to %d not delivered (kept; retried): %w", first, last, err)
	}
	if err := s.storeCursor(ctx, last); err != nil {
		// Delivered, but a restart would send them again: at least once.
		return false, err
	}
	s.cursor = last
	s.shipped.Add(uint64(len(batch)))
	s.pending.Store(max(h.seq-last, 0))
	return len(batch) == WebhookBatch, nil
}

// Tampered is the line shipped for an entry that does not decode (edited
// in the database): its seq and what is wrong, so that the collector hears
// of it and shipping goes on past it.
type Tampered struct {
	Seq      int64  `json:"seq"`
	Tampered string `json:"tampered"`
}

// read returns up to WebhookBatch entries after the cursor as JSON lines
// (as List gives them), with the seqs of the first and the last.
func (s *Shipper) read(ctx context.Context) (lines [][]byte, first, last int64, err error) {
	var blocks []storedBlock
	err = s.l.st.Read(ctx, func(tx storage.Tx) (err error) {
		blocks, err = blocksAfter(ctx, tx, s.cursor, WebhookBatch/blockMax+2, true)
		return err
	})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("audit webhook: reading entries after %d: %w", s.cursor, err)
	}
	add := func(seq int64, line []byte) {
		if len(lines) == 0 {
			first = seq
		}
		lines, last = append(lines, line), seq
	}
	tampered := func(seq int64, err error) {
		line, _ := json.Marshal(Tampered{Seq: seq, Tampered: fmt.Sprintf("%v: %v", ErrTampered, err)})
		add(seq, line)
	}
	var es []row
	for i := range blocks {
		b := &blocks[i]
		if es, err = b.entries(es); err != nil {
			for seq := max(b.first(), s.cursor+1); seq <= b.seq && len(lines) < WebhookBatch; seq++ {
				tampered(seq, err)
			}
			continue
		}
		for j := range es {
			r := &es[j]
			if r.seq <= s.cursor {
				continue
			}
			if len(lines) == WebhookBatch {
				return lines, first, last, nil
			}
			d, err := decodeDetail(r.detail)
			if err != nil {
				tampered(r.seq, err)
				continue
			}
			e := r.entry(d)
			line, _ := json.Marshal(&e) // strings, a string map and byte slices: it cannot fail
			add(r.seq, line)
		}
	}
	return lines, first, last, nil
}

// hold takes or renews the lease when a third of it is left; held reports
// whether this node may ship now.
func (s *Shipper) hold(ctx context.Context) (held bool, err error) {
	now := time.Now()
	if s.until.Sub(now) > s.leaseFor*2/3 {
		return true, nil
	}
	if s.until.IsZero() {
		// A standby node looks before it writes: while another holds the
		// lease, a read a step instead of a write.
		var l lease
		err := s.l.st.Read(ctx, func(tx storage.Tx) (err error) {
			l, err = readLease(ctx, tx, "")
			return err
		})
		if err != nil {
			return false, fmt.Errorf("audit webhook: lease: %w", err)
		}
		if l.heldByOther(s.node, now) {
			s.cursor = -1
			return false, nil
		}
	}
	until := now.Add(s.leaseFor)
	err = s.l.st.Write(ctx, func(tx storage.Tx) error {
		held = false
		// The row exists before it is locked, so that two nodes starting
		// together cannot both take it.
		if err := storage.InsertSys(ctx, tx, ShipLeaseKey, nil); err != nil && !errors.Is(err, storage.ErrConflict) {
			return err
		}
		l, err := readLease(ctx, tx, tx.LockForUpdate())
		if err != nil || l.heldByOther(s.node, now) {
			return err
		}
		held = true
		return storage.PutSys(ctx, tx, ShipLeaseKey, []byte(s.node+" "+strconv.FormatInt(until.UnixNano(), 10)))
	})
	if err != nil {
		return false, fmt.Errorf("audit webhook: lease: %w", err)
	}
	if !held {
		s.until, s.cursor = time.Time{}, -1 // another node ships; read the cursor again when it is ours
		return false, nil
	}
	s.until = until
	return true, nil
}

// lease is the shipping lease: its holder ("" when none) and the end of
// its hold.
type lease struct {
	holder string
	until  time.Time
}

// heldByOther reports whether a node other than node holds l at now.
func (l lease) heldByOther(node string, now time.Time) bool {
	return l.holder != "" && l.holder != node && l.until.After(now)
}

// readLease reads the lease row, under a row lock when lock is
// tx.LockForUpdate(). A row that is empty (given up) or unreadable is a
// free lease.
func readLease(ctx context.Context, tx storage.Tx, lock string) (lease, error) {
	var v []byte
	err := tx.QueryRow(ctx, `SELECT value FROM sys WHERE key = $1`+lock, ShipLeaseKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return lease{}, nil
	}
	if err != nil {
		return lease{}, err
	}
	node, at, ok := strings.Cut(string(v), " ")
	n, perr := strconv.ParseInt(at, 10, 64)
	if !ok || perr != nil {
		return lease{}, nil
	}
	return lease{holder: node, until: time.Unix(0, n)}, nil
}

// loadCursor reads the stored cursor; without one it starts at the log's
// head, and stores that.
func (s *Shipper) loadCursor(ctx context.Context) (int64, error) {
	var cur int64
	err := s.l.st.Write(ctx, func(tx storage.Tx) error {
		v, err := storage.GetSys(ctx, tx, ShipCursorKey)
		if err == nil {
			cur, err = parseCursor(v)
			return err
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		h, err := readHead(ctx, tx, "")
		if err != nil {
			return err
		}
		cur = h.seq // the chain's head, even when retention deleted every block
		// Two nodes starting together: the first one's cursor stands.
		err = storage.InsertSys(ctx, tx, ShipCursorKey, strconv.AppendInt(nil, cur, 10))
		if errors.Is(err, storage.ErrConflict) {
			v, err := storage.GetSys(ctx, tx, ShipCursorKey)
			if err != nil {
				return err
			}
			cur, err = parseCursor(v)
			return err
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("audit webhook: cursor: %w", err)
	}
	return cur, nil
}

// storeCursor moves the stored cursor to seq, never back (a node whose
// lease ran out mid-batch may finish after the next holder moved on).
func (s *Shipper) storeCursor(ctx context.Context, seq int64) error {
	err := s.l.st.Write(ctx, func(tx storage.Tx) error {
		var v []byte
		err := tx.QueryRow(ctx, `SELECT value FROM sys WHERE key = $1`+tx.LockForUpdate(), ShipCursorKey).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err == nil {
			if cur, err := parseCursor(v); err == nil && cur >= seq {
				return nil
			}
		}
		return storage.PutSys(ctx, tx, ShipCursorKey, strconv.AppendInt(nil, seq, 10))
	})
	if err != nil {
		return fmt.Errorf("audit webhook: storing the cursor at %d: %w", seq, err)
	}
	return nil
}

func parseCursor(v []byte) (int64, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("stored cursor %q is not a seq", v)
	}
	return n, nil
}
