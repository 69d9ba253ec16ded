package server

import (
	"context"
	"crypto/rand"
	"log/slog"
	"time"

	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
)

// rateSync makes the node's rate limits hold for the cluster on PostgreSQL:
// every SyncEvery it adds what its limiter admitted to its rows of
// rate_spend and charges its limiter for what the other nodes added to
// theirs since it last looked. Between two exchanges each node admits on its
// own, so N nodes together admit a limit plus at most what each admits in
// one interval (and, at the start of a burst, each node's burst).
type rateSync struct {
	st      storage.Store
	lim     *ratelimit.Limiter
	log     *slog.Logger
	now     func() time.Time
	node    string    // this process's id in rate_spend
	started time.Time // rows created before this are history, not spending

	seen     map[spendKey]seenSpend // the other nodes' rows, as last read
	lastRead time.Time
}

type spendKey struct{ node, key string }

// spendRow is one row of rate_spend, read.
type spendRow struct {
	k                        spendKey
	interval, total, created int64
}

type seenSpend struct {
	total, created int64
	at             time.Time // when last read changed: entries idle 10 min are forgotten
}

const (
	// rateSyncEvery is how often spending is exchanged.
	rateSyncEvery = 250 * time.Millisecond
	// rateSyncSlack re-reads rows updated this long before the last read:
	// the writers' clocks and commits lag. Totals make re-reading harmless.
	rateSyncSlack = 5 * time.Second
	// rateSpendIdle: rows (and remembered rows) not updated for this long
	// are dropped; their keys' limits have long been replenished.
	rateSpendIdle = 10 * time.Minute
)

func newRateSync(st storage.Store, lim *ratelimit.Limiter, log *slog.Logger) *rateSync {
	now := time.Now()
	return &rateSync{st: st, lim: lim, log: log, now: time.Now, node: rand.Text()[:16], started: now,
		seen: map[spendKey]seenSpend{}, lastRead: now.Add(-rateSyncSlack)}
}

// publishSpend adds a batch of admissions to this node's rows.
const publishSpend = `INSERT INTO rate_spend (node, key, interval_ns, total, created, updated)
	SELECT $1, k, i, n, $2, $2 FROM unnest($3::bytea[], $4::bigint[], $5::bigint[]) AS u(k, i, n)
	ON CONFLICT (node, key) DO UPDATE SET total = rate_spend.total + excluded.total,
		interval_ns = excluded.interval_ns, updated = excluded.updated`

// step publishes this node's spending, then charges the others'.
func (r *rateSync) step(ctx context.Context) error {
	if spent := r.lim.Drain(); len(spent) > 0 {
		keys := make([][]byte, len(spent))
		intervals := make([]int64, len(spent))
		counts := make([]int64, len(spent))
		for i, s := range spent {
			keys[i], intervals[i], counts[i] = []byte(s.Key), int64(s.Interval), s.N
		}
		if _, err := r.st.Exec(ctx, publishSpend, r.node, r.now().UnixNano(), keys, intervals, counts); err != nil {
			// Not handed over: the others undercount this interval, as
			// they would have without sharing. Not retried (it would
			// charge late).
			return err
		}
	}
	readAt := r.now()
	var changed []spendRow
	err := r.st.Read(ctx, func(tx storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT node, key, interval_ns, total, created FROM rate_spend WHERE updated >= $1 AND node <> $2`,
			r.lastRead.Add(-rateSyncSlack).UnixNano(), r.node)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var node string
			var key []byte
			var interval, total, created int64
			if err := rows.Scan(&node, &key, &interval, &total, &created); err != nil {
				return err
			}
			changed = append(changed, spendRow{spendKey{node, string(key)}, interval, total, created})
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	r.lastRead = readAt
	for _, c := range changed {
		prev, known := r.seen[c.k]
		var n int64
		switch {
		case known && prev.created == c.created:
			n = c.total - prev.total // re-read rows give 0
		case c.created >= r.started.UnixNano():
			n = c.total // a row new since this node started: all of it is new spending
		}
		if !known || n != 0 || prev.created != c.created {
			r.seen[c.k] = seenSpend{total: c.total, created: c.created, at: readAt}
		}
		if n > 0 {
			r.lim.Debit(c.k.key, time.Duration(c.interval), n)
		}
	}
	return nil
}

// tidy forgets rows idle for rateSpendIdle, here and in storage.
func (r *rateSync) tidy(ctx context.Context) error {
	cut := r.now().Add(-rateSpendIdle)
	for k, s := range r.seen {
		if s.at.Before(cut) {
			delete(r.seen, k)
		}
	}
	_, err := r.st.Exec(ctx, `DELETE FROM rate_spend WHERE updated < $1`, cut.UnixNano())
	return err
}

// run exchanges spending every rateSyncEvery until ctx ends, and tidies
// every minute. A failure is logged once until the exchange works again.
func (r *rateSync) run(ctx context.Context) {
	t := time.NewTicker(rateSyncEvery)
	defer t.Stop()
	lastTidy := r.now()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := r.step(ctx)
		if err == nil && r.now().Sub(lastTidy) >= time.Minute {
			lastTidy = r.now()
			err = r.tidy(ctx)
		}
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			r.log.Warn("sharing rate-limit spending with the other nodes failed; limits hold per node until it works", "err", err)
		case err == nil && failing:
			failing = false
			r.log.Info("sharing rate-limit spending with the other nodes works again")
		}
	}
}
