package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
)

// rateSync makes the node's rate limits hold for the cluster on PostgreSQL:
// every rateSyncEvery it adds what its limiter admitted to its rows of
// rate_spend and charges its limiter for what the other nodes added to
// theirs since it last looked. Between two exchanges each node admits on its
// own, so N nodes together admit a limit plus at most what each admits in
// one interval (and, at the start of a burst, each node's burst). Rows are
// stamped with the database's clock, so the nodes' clocks do not matter.
type rateSync struct {
	st   storage.Store
	lim  *ratelimit.Limiter
	log  *slog.Logger
	node string // this process's id in rate_spend

	seen map[spendKey]seenSpend // the other nodes' rows, as last read
	// started is the database's clock when this node started: a row
	// created before is history, not spending to charge, when first read.
	started int64
	newest  int64 // the latest updated stamp read

	// unsent is spending a failed publish did not hand over, retried with
	// the next exchange until rateCarryFor after the first failure.
	unsent      []ratelimit.Spent
	unsentSince time.Time
}

type spendKey struct{ node, key string }

// spendRow is one row of rate_spend, read.
type spendRow struct {
	k                                 spendKey
	interval, total, created, updated int64
}

type seenSpend struct{ total, created, updated int64 }

const (
	// rateSyncEvery is how often spending is exchanged.
	rateSyncEvery = 250 * time.Millisecond
	// rateSyncSlack re-reads rows stamped this long before the newest one
	// read: a row is stamped before its transaction commits. Totals make
	// re-reading harmless.
	rateSyncSlack = 5 * time.Second
	// rateSpendIdle: rows (and remembered rows) not updated for this long
	// are dropped; their keys' limits have long been replenished.
	rateSpendIdle = 10 * time.Minute
	// rateCarryFor is how long spending a failed publish did not hand over
	// is retried: charged that late, the others' limits wait a little
	// longer than they should; beyond it the spending is dropped (the
	// others then undercount it, as without sharing).
	rateCarryFor = 2 * time.Second
)

// newRateSync reads the database's clock, which marks what is history.
func newRateSync(ctx context.Context, st storage.Store, lim *ratelimit.Limiter, log *slog.Logger) (*rateSync, error) {
	r := &rateSync{st: st, lim: lim, log: log, node: rand.Text()[:16], seen: map[spendKey]seenSpend{}}
	err := st.Read(ctx, func(tx storage.Tx) error { return tx.QueryRow(ctx, `SELECT `+dbNow).Scan(&r.started) })
	if err != nil {
		return nil, fmt.Errorf("reading the database's clock: %w", err)
	}
	r.newest = r.started
	return r, nil
}

// dbNow is the database's clock in unix nanoseconds (PostgreSQL).
const dbNow = `(extract(epoch from clock_timestamp()) * 1000000000)::bigint`

// publishSpend adds a batch of admissions to this node's rows.
const publishSpend = `INSERT INTO rate_spend (node, key, interval_ns, total, created, updated)
	SELECT $1, k, i, n, ` + dbNow + `, ` + dbNow + ` FROM unnest($2::bytea[], $3::bigint[], $4::bigint[]) AS u(k, i, n)
	ON CONFLICT (node, key) DO UPDATE SET total = rate_spend.total + excluded.total,
		interval_ns = excluded.interval_ns, updated = excluded.updated`

// step publishes this node's spending, then charges the others'.
func (r *rateSync) step(ctx context.Context) error {
	if spent := r.withUnsent(r.lim.Drain()); len(spent) > 0 {
		keys := make([][]byte, len(spent))
		intervals := make([]int64, len(spent))
		counts := make([]int64, len(spent))
		for i, s := range spent {
			keys[i], intervals[i], counts[i] = []byte(s.Key), int64(s.Interval), s.N
		}
		if _, err := r.st.Exec(ctx, publishSpend, r.node, keys, intervals, counts); err != nil {
			r.keepUnsent(spent, time.Now())
			return err
		}
		r.unsent, r.unsentSince = nil, time.Time{}
	}
	var rows []spendRow
	err := r.st.Read(ctx, func(tx storage.Tx) error {
		q, err := tx.Query(ctx, `SELECT node, key, interval_ns, total, created, updated FROM rate_spend WHERE updated >= $1 AND node <> $2`,
			r.newest-int64(rateSyncSlack), r.node)
		if err != nil {
			return err
		}
		defer q.Close()
		for q.Next() {
			var row spendRow
			var key []byte
			if err := q.Scan(&row.k.node, &key, &row.interval, &row.total, &row.created, &row.updated); err != nil {
				return err
			}
			row.k.key = string(key)
			rows = append(rows, row)
		}
		return q.Err()
	})
	if err != nil {
		return err
	}
	for _, row := range rows {
		r.newest = max(r.newest, row.updated)
		prev, known := r.seen[row.k]
		var n int64
		switch {
		case known && prev.created == row.created:
			n = row.total - prev.total // a re-read row gives 0
		case known || row.created >= r.started:
			n = row.total // a row created since this node started: all of it is new
		}
		r.seen[row.k] = seenSpend{total: row.total, created: row.created, updated: row.updated}
		if n > 0 {
			r.lim.Debit(row.k.key, time.Duration(row.interval), n)
		}
	}
	return nil
}

// withUnsent adds the spending a failed publish left to spent, one entry a
// key (its counts summed, the newest interval kept).
func (r *rateSync) withUnsent(spent []ratelimit.Spent) []ratelimit.Spent {
	if len(r.unsent) == 0 {
		return spent
	}
	at := make(map[string]int, len(r.unsent))
	out := append([]ratelimit.Spent(nil), r.unsent...)
	for i, s := range out {
		at[s.Key] = i
	}
	for _, s := range spent {
		if i, ok := at[s.Key]; ok {
			out[i].N += s.N
			out[i].Interval = s.Interval
			continue
		}
		at[s.Key] = len(out)
		out = append(out, s)
	}
	return out
}

// keepUnsent keeps spent for the next exchange, unless what it carries has
// waited rateCarryFor since the first failure: then it is dropped.
func (r *rateSync) keepUnsent(spent []ratelimit.Spent, now time.Time) {
	if r.unsentSince.IsZero() {
		r.unsentSince = now
	}
	if now.Sub(r.unsentSince) > rateCarryFor {
		r.unsent, r.unsentSince = nil, time.Time{}
		return
	}
	r.unsent = spent
}

// tidy deletes the rows idle for rateSpendIdle, then forgets them here
// (in that order: a row forgotten but left would be charged whole when
// next updated).
func (r *rateSync) tidy(ctx context.Context) error {
	if _, err := r.st.Exec(ctx, `DELETE FROM rate_spend WHERE updated < `+dbNow+` - $1`, int64(rateSpendIdle)); err != nil {
		return err
	}
	cut := r.newest - int64(rateSpendIdle)
	for k, s := range r.seen {
		if s.updated < cut {
			delete(r.seen, k)
		}
	}
	return nil
}

// run exchanges spending every rateSyncEvery until ctx ends, and tidies
// every minute. A failure is logged once until the exchange works again.
func (r *rateSync) run(ctx context.Context) {
	lastTidy := time.Now()
	failing := false
	every(ctx, rateSyncEvery, func() {
		err := r.step(ctx)
		if err == nil && time.Since(lastTidy) >= time.Minute {
			lastTidy = time.Now()
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
	})
}
