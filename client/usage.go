package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// UsageRow is the number of requests of one subject in one minute with one
// response status.
type UsageRow struct {
	Kind    string    `json:"kind"` // key, token or integration
	Subject string    `json:"subject"`
	Minute  time.Time `json:"minute"`
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
