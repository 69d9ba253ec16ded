// Package monitor counts how credentials and integrations are used.
//
// Usage counts requests per subject (an API key, a token accessor, an
// integration), per minute and per response status. Record is the hot path:
// it adds to an in-memory counter under one of a few sharded locks and does
// no I/O. Flush (run every FlushEvery by Run, and by Close) adds the counts
// to the usage table with an upsert, so several nodes sharing one database
// sum up correctly and a crash loses at most one flush interval of counts.
// Query reads the table back; Prune drops old minutes.
//
// Imported by internal/server (wiring) and internal/httpapi (the usage
// route). It imports only internal/storage.
package monitor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// Subject kinds.
const (
	KindKey         = "key"         // a client API key, by key id
	KindToken       = "token"       // an access token, by accessor
	KindIntegration = "integration" // a gateway integration, by name
	KindSecret      = "secret"      // a secret's value read, by project/env/path
)

// DefaultFlushEvery is how often Run writes counts to storage.
const DefaultFlushEvery = 10 * time.Second

// ErrInvalid: a query that cannot be answered as given.
var ErrInvalid = errors.New("monitor: invalid usage query")

// Row is the number of requests of one subject in one minute with one status.
type Row struct {
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Minute  time.Time `json:"minute"`
	Status  int       `json:"status"`
	Count   int64     `json:"count"`
}

type counterKey struct {
	kind, subject string
	minute        int64 // Unix minutes
	status        int
}

const shards = 16

type shard struct {
	mu     sync.Mutex
	counts map[counterKey]int64
}

// Usage aggregates counts in memory and writes them to storage.
type Usage struct {
	st     storage.Store
	now    func() time.Time
	seed   maphash.Seed
	shards [shards]shard

	// OnRecord, when set, is called by Record (metrics export); it must be fast.
	OnRecord func(kind, subject string, status int)
}

// New returns a Usage writing to st; now may be nil (time.Now).
func New(st storage.Store, now func() time.Time) *Usage {
	if now == nil {
		now = time.Now
	}
	u := &Usage{st: st, now: now, seed: maphash.MakeSeed()}
	for i := range u.shards {
		u.shards[i].counts = map[counterKey]int64{}
	}
	return u
}

// Record counts one request of subject with status.
func (u *Usage) Record(kind, subject string, status int) {
	u.RecordPair(kind, subject, "", "", status)
}

// RecordPair counts one request of each of two subjects with status, as
// Record(kind1, subject1, status) and Record(kind2, subject2, status)
// would, with one clock reading and one lock (the first subject's shard;
// Flush adds up a key's counts of every shard): a gateway call counts its
// integration and its caller's credential. An empty kind or subject skips
// its count only.
func (u *Usage) RecordPair(kind1, subject1, kind2, subject2 string, status int) {
	if u == nil {
		return
	}
	if kind1 == "" || subject1 == "" {
		kind1, subject1, kind2, subject2 = kind2, subject2, "", ""
		if kind1 == "" || subject1 == "" {
			return
		}
	}
	second := kind2 != "" && subject2 != ""
	minute := u.now().Unix() / 60
	s := &u.shards[maphash.String(u.seed, subject1)%shards]
	s.mu.Lock()
	s.counts[counterKey{kind: kind1, subject: subject1, minute: minute, status: status}]++
	if second {
		s.counts[counterKey{kind: kind2, subject: subject2, minute: minute, status: status}]++
	}
	s.mu.Unlock()
	if u.OnRecord != nil {
		u.OnRecord(kind1, subject1, status)
		if second {
			u.OnRecord(kind2, subject2, status)
		}
	}
}

// Flush adds every pending count to storage in one transaction. On failure
// the counts are kept for the next flush.
func (u *Usage) Flush(ctx context.Context) error {
	pending := map[counterKey]int64{}
	for i := range u.shards {
		s := &u.shards[i]
		s.mu.Lock()
		if len(s.counts) > 0 {
			for k, v := range s.counts {
				pending[k] += v
			}
			s.counts = map[counterKey]int64{}
		}
		s.mu.Unlock()
	}
	if len(pending) == 0 {
		return nil
	}
	err := u.st.Write(ctx, func(tx storage.Tx) error {
		for k, v := range pending {
			if _, err := tx.Exec(ctx, `INSERT INTO usage (kind, subject, minute, status, count) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (kind, subject, minute, status) DO UPDATE SET count = usage.count + excluded.count`,
				k.kind, k.subject, k.minute, k.status, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Put the counts back: nothing is lost but the time it took.
		for k, v := range pending {
			s := &u.shards[maphash.String(u.seed, k.subject)%shards]
			s.mu.Lock()
			s.counts[k] += v
			s.mu.Unlock()
		}
		return fmt.Errorf("monitor: flush usage: %w", err)
	}
	return nil
}

// Run flushes every interval until ctx ends, then flushes once more.
func (u *Usage) Run(ctx context.Context, every time.Duration, onErr func(error)) {
	if every <= 0 {
		every = DefaultFlushEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := u.Flush(fctx); err != nil && onErr != nil {
				onErr(err)
			}
			cancel()
			return
		case <-t.C:
			if err := u.Flush(ctx); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// Filter selects usage rows. Zero fields match everything; Since defaults
// to one hour ago.
type Filter struct {
	Kind, Subject string
	Since, Until  time.Time
	Limit         int // at most MaxRows; 0 means MaxRows
}

// MaxRows caps one query.
const MaxRows = 10000

// Query returns stored usage rows, oldest minute first. Counts still in
// memory (at most one flush interval) are not included.
func (u *Usage) Query(ctx context.Context, f Filter) ([]Row, error) {
	switch f.Kind {
	case "", KindKey, KindToken, KindIntegration, KindSecret:
	default:
		return nil, fmt.Errorf("%w: unknown kind %q (want key, token, integration or secret)", ErrInvalid, f.Kind)
	}
	if f.Subject != "" && f.Kind == "" {
		return nil, fmt.Errorf("%w: a subject needs a kind", ErrInvalid)
	}
	if f.Since.IsZero() {
		f.Since = u.now().Add(-time.Hour)
	}
	if f.Until.IsZero() {
		f.Until = u.now().Add(time.Minute)
	}
	if !f.Until.After(f.Since) {
		return nil, fmt.Errorf("%w: until must be after since", ErrInvalid)
	}
	if f.Limit <= 0 || f.Limit > MaxRows {
		f.Limit = MaxRows
	}
	q := `SELECT kind, subject, minute, status, count FROM usage WHERE minute >= $1 AND minute < $2`
	args := []any{f.Since.Unix() / 60, (f.Until.Unix() + 59) / 60}
	if f.Kind != "" {
		args = append(args, f.Kind)
		q += fmt.Sprintf(" AND kind = $%d", len(args))
	}
	if f.Subject != "" {
		args = append(args, f.Subject)
		q += fmt.Sprintf(" AND subject = $%d", len(args))
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(" ORDER BY minute, kind, subject, status LIMIT $%d", len(args))
	var out []Row
	err := u.st.Read(ctx, func(tx storage.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r Row
			var minute int64
			if err := rows.Scan(&r.Kind, &r.Subject, &minute, &r.Status, &r.Count); err != nil {
				return err
			}
			r.Minute = time.Unix(minute*60, 0).UTC()
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("monitor: query usage: %w", err)
	}
	return out, nil
}

// Prune deletes the rows of minutes before cutoff and returns how many.
func (u *Usage) Prune(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := u.st.Write(ctx, func(tx storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM usage WHERE minute < $1`, before.Unix()/60)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// LastSeen returns, for each of subjects (of kind) with stored counts,
// the start of the last minute it was used in (as far back as storage
// keeps usage: Prune drops older minutes). Each is one indexed read of
// its newest minute, in one read transaction. Counts still in memory are
// not included.
func (u *Usage) LastSeen(ctx context.Context, kind string, subjects []string) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(subjects))
	err := u.st.Read(ctx, func(tx storage.Tx) error {
		for _, subject := range subjects {
			var minute int64
			err := tx.QueryRow(ctx, `SELECT minute FROM usage WHERE kind = $1 AND subject = $2 ORDER BY minute DESC LIMIT 1`,
				kind, subject).Scan(&minute)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			default:
				out[subject] = time.Unix(minute*60, 0).UTC()
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("monitor: last use of %ss: %w", kind, err)
	}
	return out, nil
}
