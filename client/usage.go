package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// UsageRow is the number of requests of one subject in one minute with one
// response status. A sum over a period (the CLI's totals) has no Minute.
type UsageRow struct {
	Kind    string    `json:"kind"` // key, token, integration or secret
	Subject string    `json:"subject"`
	Minute  time.Time `json:"minute,omitzero"`
	Status  int       `json:"status"`
	Count   int64     `json:"count"`
}

// UsageFilter selects usage rows; zero fields match everything (Since: the
// last hour).
type UsageFilter struct {
	Kind, Subject string
	Since, Until  time.Time
	Limit         int
}

// Usage reads request counts per minute and status, oldest first. Counts
// reach storage every few seconds, so the last seconds may be missing.
func (c *Client) Usage(ctx context.Context, f UsageFilter) ([]UsageRow, error) {
	q := url.Values{}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.Subject != "" {
		q.Set("subject", f.Subject)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var r struct {
		Usage []UsageRow `json:"usage"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/usage", q, nil, &r); err != nil {
		return nil, err
	}
	return r.Usage, nil
}

// Alert is an anomaly credential monitoring detected.
type Alert struct {
	ID          int64     `json:"id"`
	Time        time.Time `json:"time"`
	Kind        string    `json:"kind"`         // spike, refusals or new_network
	SubjectKind string    `json:"subject_kind"` // key or token
	Subject     string    `json:"subject"`      // key id or token accessor
	Minute      time.Time `json:"minute"`
	Count       int64     `json:"count"`
	Baseline    float64   `json:"baseline"`
	Detail      string    `json:"detail,omitempty"` // new_network: the network
	Response    string    `json:"response"`         // alert, revoked, or why revoking failed
}

// Alerts lists the anomalies detected since since (zero: the last 24
// hours), newest first, at most limit (0: the server's maximum).
func (c *Client) Alerts(ctx context.Context, since time.Time, limit int) ([]Alert, error) {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var r struct {
		Alerts []Alert `json:"alerts"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/alerts", q, nil, &r); err != nil {
		return nil, err
	}
	return r.Alerts, nil
}
