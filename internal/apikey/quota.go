package apikey

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// Quota uses are counted in storage, one conditional UPDATE per use, and
// committed in groups: concurrent uses queue up, and whichever caller finds
// no commit in progress becomes the committer, runs every queued UPDATE in
// one transaction (one fsync on SQLite), answers the others, and hands the
// role to the first caller that queued meanwhile. Each UPDATE still tests
// remaining > 0 on its own, in order, so a group never overshoots; nobody
// is answered before the commit.

// maxUseBatch bounds the uses committed together.
const maxUseBatch = 256

type useReq struct {
	k    *Key
	now  time.Time
	done chan useRes
}

type useRes struct {
	rem  int64
	ok   bool
	err  error
	lead bool // the receiver commits the next group
}

// uses is the queue of uses waiting for a commit.
type uses struct {
	queue      []*useReq
	committing bool
}

// decrement counts one use of k's quota, refilling first when a new period
// began. ok is false when nothing was left (or the key was revoked).
func (s *Service) decrement(ctx context.Context, k *Key, now time.Time) (rem int64, ok bool, err error) {
	r := &useReq{k: k, now: now, done: make(chan useRes, 1)}
	s.usesMu.Lock()
	s.uses.queue = append(s.uses.queue, r)
	lead := !s.uses.committing
	s.uses.committing = true
	s.usesMu.Unlock()
	if !lead {
		// Wait even if ctx ends: the use may be committing, and the lead
		// may be handed to this caller.
		res := <-r.done
		if !res.lead {
			return res.rem, res.ok, res.err
		}
	}
	s.usesMu.Lock()
	n := min(len(s.uses.queue), maxUseBatch)
	batch := s.uses.queue[:n:n]
	s.uses.queue = s.uses.queue[n:]
	s.usesMu.Unlock()

	results := make([]useRes, len(batch))
	err = s.store.Write(context.WithoutCancel(ctx), func(tx storage.Tx) error {
		for i, b := range batch {
			rem, ok, err := decrementTx(ctx, tx, b.k, b.now)
			if err != nil {
				return err
			}
			results[i] = useRes{rem: rem, ok: ok}
		}
		return nil
	})

	s.usesMu.Lock()
	var next *useReq
	if len(s.uses.queue) > 0 {
		next = s.uses.queue[0]
	} else {
		s.uses.committing = false
		s.uses.queue = nil
	}
	s.usesMu.Unlock()
	var mine useRes
	for i, b := range batch {
		res := results[i]
		if err != nil {
			res = useRes{err: err}
		}
		if b == r {
			mine = res
		} else {
			b.done <- res
		}
	}
	if next != nil {
		next.done <- useRes{lead: true}
	}
	return mine.rem, mine.ok, mine.err
}

// decrementTx is one use inside a transaction.
func decrementTx(ctx context.Context, tx storage.Tx, k *Key, now time.Time) (rem int64, ok bool, err error) {
	// The presented key ($2) must still be unrevoked in storage: a quota
	// key is revoked everywhere at once, not after the next poll.
	const live = ` AND EXISTS (SELECT 1 FROM api_keys s WHERE s.id = $2 AND (s.revoked_at = 0 OR s.revoked_at > $3)) RETURNING remaining`
	ctx = context.WithoutCancel(ctx)
	if k.Refill.Period != "" {
		start := periodStart(k.Refill.Period, now).UnixNano()
		err := tx.QueryRow(ctx, `UPDATE api_keys SET remaining = refill_amount - 1, refilled_at = $4
			WHERE id = $1 AND refilled_at < $4 AND refill_amount > 0`+live, k.CounterID, k.ID, now.UnixNano(), start).Scan(&rem)
		if err == nil {
			return rem, true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, false, err
		}
	}
	err = tx.QueryRow(ctx, `UPDATE api_keys SET remaining = remaining - 1 WHERE id = $1 AND remaining > 0`+live,
		k.CounterID, k.ID, now.UnixNano()).Scan(&rem)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return rem, err == nil, err
}
