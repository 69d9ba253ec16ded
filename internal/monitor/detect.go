package monitor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// Detection kinds.
const (
	// AlertSpike: a credential made far more requests in a minute than it
	// usually does (a leaked key put to work, a runaway client).
	AlertSpike = "spike"
	// AlertRefusals: a credential was refused (403) many times in a
	// minute, most of its requests (probing what else it may reach).
	AlertRefusals = "refusals"
	// AlertNewNetwork: an API key was used from a source network it was
	// not used from in the last 30 days, when it had been used from
	// another (reported by internal/apikey as it records last uses).
	AlertNewNetwork = "new_network"
	// AlertExpiring: a long-lived token or an API key expires soon
	// (config expiry_warning); Minute is its expiry, Count the days left.
	// Never revoked: it is a reminder to renew or rotate.
	AlertExpiring = "expiring"
)

// Responses recorded with an alert.
const (
	ResponseAlert   = "alert"   // recorded, nothing else
	ResponseRevoked = "revoked" // the credential was revoked
)

// Alert is one detection about one credential and one minute.
type Alert struct {
	ID          int64     `json:"id"`
	Time        time.Time `json:"time"` // when it was detected
	Kind        string    `json:"kind"`
	SubjectKind string    `json:"subject_kind"` // KindKey or KindToken
	Subject     string    `json:"subject"`      // the key id or token accessor
	Minute      time.Time `json:"minute"`       // the minute of the counts
	Count       int64     `json:"count"`        // the minute's requests (spike) or refusals
	// Baseline is, for a spike, the credential's average requests a
	// minute over the hour before.
	Baseline float64 `json:"baseline"`
	// Detail is what else the anomaly names (new_network: the network).
	Detail   string `json:"detail,omitempty"`
	Response string `json:"response"` // ResponseAlert, ResponseRevoked, or why revoking failed
}

// Rules are the thresholds of detection. Zero fields take the defaults.
type Rules struct {
	// A spike is a minute of at least SpikeMin requests and at least
	// SpikeFactor times the average minute of the hour before.
	SpikeMin    int64
	SpikeFactor float64
	// Refusals are at least RefusalsMin 403 answers in a minute, making at
	// least RefusalShare of the credential's requests in it.
	RefusalsMin  int64
	RefusalShare float64
}

// Defaults of Rules.
const (
	DefaultSpikeMin     = 600 // ten a second
	DefaultSpikeFactor  = 10
	DefaultRefusalsMin  = 30
	DefaultRefusalShare = 0.5
)

func (r Rules) withDefaults() Rules {
	if r.SpikeMin <= 0 {
		r.SpikeMin = DefaultSpikeMin
	}
	if r.SpikeFactor <= 0 {
		r.SpikeFactor = DefaultSpikeFactor
	}
	if r.RefusalsMin <= 0 {
		r.RefusalsMin = DefaultRefusalsMin
	}
	if r.RefusalShare <= 0 {
		r.RefusalShare = DefaultRefusalShare
	}
	return r
}

// Detector looks for anomalies in the stored usage counts, a minute at a
// time, once every node has written its counts of that minute: the counts
// are the cluster's, and every node may run a Detector, since a detection
// is recorded (and responded to) once.
type Detector struct {
	st    storage.Store
	rules Rules
	now   func() time.Time
	// Respond, when set, is called once for each new alert, by the node
	// that recorded it, and returns the response to record.
	Respond func(ctx context.Context, a *Alert) string
	last    int64 // the last minute evaluated (unix minutes)
}

// NewDetector returns a Detector over st's usage table; now may be nil.
func NewDetector(st storage.Store, rules Rules, now func() time.Time) *Detector {
	if now == nil {
		now = time.Now
	}
	return &Detector{st: st, rules: rules.withDefaults(), now: now}
}

// settle is how long after a minute ends its counts are taken as complete:
// each node writes its counts every DefaultFlushEvery.
const settle = 2 * DefaultFlushEvery

type tally struct{ total, refused int64 }

type subjectKey struct{ kind, subject string }

// Evaluate checks minute m (unix minutes) and returns the alerts it
// recorded; alerts another node recorded first are not returned.
func (d *Detector) Evaluate(ctx context.Context, m int64) ([]*Alert, error) {
	minute := map[subjectKey]tally{}
	hour := map[subjectKey]int64{}
	err := d.st.Read(ctx, func(tx storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT kind, subject, minute, status, count FROM usage
			WHERE minute >= $1 AND minute <= $2 AND kind IN ($3, $4)`, m-60, m, KindKey, KindToken)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k subjectKey
			var at, status, count int64
			if err := rows.Scan(&k.kind, &k.subject, &at, &status, &count); err != nil {
				return err
			}
			if at < m {
				hour[k] += count
				continue
			}
			t := minute[k]
			t.total += count
			if status == 403 {
				t.refused += count
			}
			minute[k] = t
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("monitor: reading usage of minute %d: %w", m, err)
	}
	var found []*Alert
	for k, t := range minute {
		base := float64(hour[k]) / 60
		if t.total >= d.rules.SpikeMin && float64(t.total) >= d.rules.SpikeFactor*base {
			found = append(found, &Alert{Kind: AlertSpike, SubjectKind: k.kind, Subject: k.subject, Count: t.total, Baseline: base})
		}
		if t.refused >= d.rules.RefusalsMin && float64(t.refused) >= d.rules.RefusalShare*float64(t.total) {
			found = append(found, &Alert{Kind: AlertRefusals, SubjectKind: k.kind, Subject: k.subject, Count: t.refused})
		}
	}
	var out []*Alert
	for _, a := range found {
		a.Minute = time.Unix(m*60, 0).UTC()
		fresh, err := d.Report(ctx, a)
		if err != nil {
			return out, err
		}
		if fresh {
			out = append(out, a)
		}
	}
	return out, nil
}

// Report records a (its Minute set; Time and Response are filled in) and,
// unless it was recorded before (by another node), responds to it. It
// reports whether it was new. Evaluate reports what it finds through it;
// so do other detectors (internal/apikey's new networks).
func (d *Detector) Report(ctx context.Context, a *Alert) (bool, error) {
	a.Minute = a.Minute.Truncate(time.Minute).UTC()
	a.Time = d.now().UTC()
	a.Response = ResponseAlert
	fresh, err := d.record(ctx, a)
	if err != nil || !fresh {
		return false, err
	}
	if d.Respond != nil {
		if r := d.Respond(ctx, a); r != a.Response {
			a.Response = r
			if _, err := d.st.Exec(ctx, `UPDATE alerts SET response = $1 WHERE id = $2`, r, a.ID); err != nil {
				return true, fmt.Errorf("monitor: recording the response to alert %d: %w", a.ID, err)
			}
		}
	}
	return true, nil
}

// record inserts a unless its detection is recorded already.
func (d *Detector) record(ctx context.Context, a *Alert) (bool, error) {
	err := d.st.Write(ctx, func(tx storage.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO alerts (time, kind, subject_kind, subject, minute, count, baseline, response, detail)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (kind, subject_kind, subject, minute) DO NOTHING RETURNING id`,
			a.Time.UnixNano(), a.Kind, a.SubjectKind, a.Subject, a.Minute.Unix()/60, a.Count, a.Baseline, a.Response, a.Detail).Scan(&a.ID)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("monitor: recording an alert: %w", err)
	}
	return true, nil
}

// due returns the minutes to evaluate now: those settled since the last
// one evaluated, at most an hour's worth (only the latest on the first
// call).
func (d *Detector) due() (from, to int64) {
	to = d.now().Add(-settle).Unix()/60 - 1
	if d.last == 0 {
		return to, to
	}
	return max(d.last+1, to-59), to
}

// Run evaluates each minute once it has settled, until ctx ends.
func (d *Detector) Run(ctx context.Context, onErr func(error)) {
	t := time.NewTicker(DefaultFlushEvery)
	defer t.Stop()
	for {
		from, to := d.due()
		for m := from; m <= to; m++ {
			if _, err := d.Evaluate(ctx, m); err != nil {
				if onErr != nil && ctx.Err() == nil {
					onErr(err)
				}
				break // retried next tick
			}
			d.last = m
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// AlertFilter selects alerts: those detected at or after Since, newest
// first, at most Limit (MaxAlerts when 0).
type AlertFilter struct {
	Since time.Time
	Limit int
}

// MaxAlerts caps one listing.
const MaxAlerts = 1000

// Alerts lists recorded alerts.
func (d *Detector) Alerts(ctx context.Context, f AlertFilter) ([]Alert, error) {
	if f.Limit <= 0 || f.Limit > MaxAlerts {
		f.Limit = MaxAlerts
	}
	out := []Alert{}
	err := d.st.Read(ctx, func(tx storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, time, kind, subject_kind, subject, minute, count, baseline, response, detail
			FROM alerts WHERE time >= $1 ORDER BY time DESC, id DESC LIMIT $2`, f.Since.UnixNano(), f.Limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a Alert
			var at, minute int64
			if err := rows.Scan(&a.ID, &at, &a.Kind, &a.SubjectKind, &a.Subject, &minute, &a.Count, &a.Baseline, &a.Response, &a.Detail); err != nil {
				return err
			}
			a.Time, a.Minute = time.Unix(0, at).UTC(), time.Unix(minute*60, 0).UTC()
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("monitor: listing alerts: %w", err)
	}
	return out, nil
}
