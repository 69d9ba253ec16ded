package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AuditEntry is one record of the audit log. It names the token only by an
// HMAC of its accessor and never holds a secret.
type AuditEntry struct {
	Seq          int64          `json:"seq"`
	Time         time.Time      `json:"time"`
	RequestID    string         `json:"request_id,omitempty"`
	Principal    string         `json:"principal,omitempty"`
	AuthMethod   string         `json:"auth_method,omitempty"`
	AccessorHMAC string         `json:"accessor_hmac,omitempty"`
	Action       string         `json:"action,omitempty"`
	Resource     string         `json:"resource,omitempty"`
	Environment  string         `json:"environment,omitempty"`
	SourceAddr   string         `json:"source_addr,omitempty"`
	UserAgent    string         `json:"user_agent,omitempty"`
	Outcome      string         `json:"outcome"`
	Status       int            `json:"status"`
	LatencyUS    int64          `json:"latency_us"`
	Detail       map[string]any `json:"detail,omitempty"`
}

// AuditFilter selects audit entries. Zero fields select everything.
type AuditFilter struct {
	Since, Until   time.Time
	Principal      string
	ResourcePrefix string
	// Outcome is "allowed", "denied" or "error".
	Outcome string
	// After continues a listing: entries with a sequence number above it.
	After int64
	// Before keeps entries with a sequence number below it (0: no bound).
	Before int64
	// Newest asks for the newest Limit entries instead of the oldest (the
	// page is still oldest first); ListAudit's next is then the Before of
	// the page of older entries.
	Newest bool
	// Limit caps one page (0: the server's default).
	Limit int
}

func (f AuditFilter) query() url.Values {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if f.Principal != "" {
		q.Set("principal", f.Principal)
	}
	if f.ResourcePrefix != "" {
		q.Set("resource_prefix", f.ResourcePrefix)
	}
	if f.Outcome != "" {
		q.Set("outcome", f.Outcome)
	}
	if f.After > 0 {
		q.Set("after", strconv.FormatInt(f.After, 10))
	}
	if f.Before > 0 {
		q.Set("before", strconv.FormatInt(f.Before, 10))
	}
	if f.Newest {
		q.Set("newest", "true")
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// ListAudit reads one page of audit entries, oldest first. next is the
// After of the following page (with f.Newest, the Before of the page of
// older entries), 0 when there is none.
func (c *Client) ListAudit(ctx context.Context, f AuditFilter) (entries []AuditEntry, next int64, err error) {
	var r struct {
		Entries []AuditEntry `json:"entries"`
		Next    int64        `json:"next"`
		Older   int64        `json:"older"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/audit", f.query(), nil, &r); err != nil {
		return nil, 0, err
	}
	if f.Newest {
		return r.Entries, r.Older, nil
	}
	return r.Entries, r.Next, nil
}

// AuditVerification is the result of checking the audit log's hash chain
// and signed checkpoints.
type AuditVerification struct {
	OK          bool  `json:"ok"`
	Entries     int64 `json:"entries"`
	Checkpoints int64 `json:"checkpoints"`
	// FirstBad and Problem describe the first entry that fails (when !OK).
	FirstBad int64  `json:"first_bad,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// VerifyAudit asks the server to verify the whole audit log. A tampered log
// is reported in the result (OK false), not as an error.
func (c *Client) VerifyAudit(ctx context.Context) (*AuditVerification, error) {
	var v AuditVerification
	if _, err := c.do(ctx, http.MethodPost, "/v1/audit/verify", nil, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
