// Package events carries cache invalidations between keyward nodes.
//
// A change that other nodes must see at once (a token revoked, a policy
// edited) appends a row to the events table inside the change's own
// transaction. Every node polls the table a few times a second with one cheap
// indexed query and hands new rows to its handlers. Polling, not PostgreSQL
// NOTIFY, is the mechanism: notifications are lost across reconnects and
// through connection poolers, a row in a table is not.
//
// On PostgreSQL, sequence numbers are handed out before commit, so a later
// number can become visible before an earlier one. The poller therefore keeps
// a watermark below which it has seen every number, re-reads from there, and
// gives up on a hole (a rolled-back transaction) after GapTimeout. Handlers
// must be idempotent: a row can be delivered more than once.
package events

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// Event is one row of the log.
type Event struct {
	Seq  int64
	Kind string // e.g. "token.revoke", "policy.change"
	Key  string // what changed: an accessor, a policy name
	Time time.Time
}

// Append records an event in tx; it becomes visible when tx commits.
func Append(ctx context.Context, tx storage.Tx, kind, key string) error {
	_, err := tx.Exec(ctx, `INSERT INTO events (kind, key, time) VALUES ($1, $2, $3)`, kind, key, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("events: append %s: %w", kind, err)
	}
	return nil
}

// Prune deletes events older than before (they have been seen by every live
// node long ago) and returns how many were deleted.
func Prune(ctx context.Context, st storage.Store, before time.Time) (int64, error) {
	var n int64
	err := st.Write(ctx, func(tx storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM events WHERE time < $1`, before.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// Handler receives events in sequence order (with the caveat above).
type Handler func(Event)

// Poller reads new events and hands them to its handler.
type Poller struct {
	store      storage.Store
	handle     Handler
	interval   time.Duration
	gapTimeout time.Duration
	log        *slog.Logger

	mu        sync.Mutex
	watermark int64               // every seq <= watermark has been handled
	seen      map[int64]bool      // handled seqs above the watermark
	holes     map[int64]time.Time // missing seqs above the watermark, first noticed
	started   bool
}

// Options tune a Poller.
type Options struct {
	Interval   time.Duration // between polls; default 200ms
	GapTimeout time.Duration // how long a hole in seq is waited for; default 10s
	Log        *slog.Logger
}

// NewPoller returns a poller that will start from the current end of the log.
func NewPoller(st storage.Store, h Handler, opts Options) *Poller {
	if opts.Interval <= 0 {
		opts.Interval = 200 * time.Millisecond
	}
	if opts.GapTimeout <= 0 {
		opts.GapTimeout = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Poller{
		store: st, handle: h, interval: opts.Interval, gapTimeout: opts.GapTimeout, log: opts.Log,
		seen: map[int64]bool{}, holes: map[int64]time.Time{},
	}
}

// Init positions the poller at the current end of the log: events already
// there are reflected in whatever the node loads from storage next.
func (p *Poller) Init(ctx context.Context) error {
	var last int64
	err := p.store.Read(ctx, func(tx storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&last)
	})
	if err != nil {
		return fmt.Errorf("events: reading the end of the log: %w", err)
	}
	p.mu.Lock()
	p.watermark, p.started = last, true
	p.mu.Unlock()
	return nil
}

// Run polls until ctx is done. Call Init first.
func (p *Poller) Run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("polling the events log failed", "err", err)
		}
	}
}

// Poll reads and handles the events after the watermark once.
func (p *Poller) Poll(ctx context.Context) error {
	p.mu.Lock()
	from := p.watermark
	p.mu.Unlock()
	var batch []Event
	err := p.store.Read(ctx, func(tx storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT seq, kind, key, time FROM events WHERE seq > $1 ORDER BY seq LIMIT 10000`, from)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e Event
			var ns int64
			if err := rows.Scan(&e.Seq, &e.Kind, &e.Key, &ns); err != nil {
				return err
			}
			e.Time = time.Unix(0, ns).UTC()
			batch = append(batch, e)
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	p.apply(batch, time.Now())
	return nil
}

// apply hands unseen events to the handler and advances the watermark over
// every contiguous seq, and over holes older than the gap timeout.
func (p *Poller) apply(batch []Event, now time.Time) {
	p.mu.Lock()
	var todo []Event
	for _, e := range batch {
		if e.Seq <= p.watermark || p.seen[e.Seq] {
			continue
		}
		p.seen[e.Seq] = true
		delete(p.holes, e.Seq)
		todo = append(todo, e)
	}
	// Record holes below the highest seq seen.
	var top int64 = p.watermark
	for s := range p.seen {
		top = max(top, s)
	}
	for s := p.watermark + 1; s < top && s-p.watermark < 100000; s++ {
		if !p.seen[s] {
			if _, ok := p.holes[s]; !ok {
				p.holes[s] = now
			}
		}
	}
	for {
		next := p.watermark + 1
		if p.seen[next] {
			delete(p.seen, next)
			p.watermark = next
			continue
		}
		if at, ok := p.holes[next]; ok && now.Sub(at) >= p.gapTimeout {
			delete(p.holes, next)
			p.watermark = next
			continue
		}
		break
	}
	p.mu.Unlock()
	for _, e := range todo {
		p.handle(e)
	}
}
