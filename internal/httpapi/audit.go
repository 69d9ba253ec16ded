package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// AuditDetails are a request's audit details (AuditEvent.Detail): pairs
// of a non-secret key and its value, each key once (Set replaces).
type AuditDetails = audit.Details

// auditDetail is one of AuditDetails.
type auditDetail = audit.Detail

// AuditAPI serves the audit log.
type AuditAPI struct {
	Log *audit.Log
}

// parseSince reads a time: RFC 3339, or a duration back from now ("1h").
func parseSince(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, Invalid("%s: %q is neither an RFC 3339 time nor a duration like 1h", field, s)
}

// Routes returns the audit routes.
func (h *AuditAPI) Routes() []Route {
	return []Route{
		{
			Pattern: "GET /v1/audit", Action: "read", Resource: static("sys/audit"),
			Summary: "List audit entries, oldest first: since, until, principal, resource_prefix, outcome, after (seq), before (seq), limit; next is the after of the following page. newest=true: the newest limit entries (still oldest first in the page); older is then the before of the page of older ones.",
			Handle: func(r *http.Request) (int, any, error) {
				q := r.URL.Query()
				var f audit.Filter
				var err error
				if f.Since, err = parseSince("since", q.Get("since")); err != nil {
					return 0, nil, err
				}
				if f.Until, err = parseSince("until", q.Get("until")); err != nil {
					return 0, nil, err
				}
				f.Principal, f.ResourcePrefix, f.Outcome = q.Get("principal"), q.Get("resource_prefix"), q.Get("outcome")
				switch f.Outcome {
				case "", "allowed", "denied", "error":
				default:
					return 0, nil, Invalid("outcome: want allowed, denied or error")
				}
				if s := q.Get("after"); s != "" {
					if f.AfterSeq, err = strconv.ParseInt(s, 10, 64); err != nil || f.AfterSeq < 0 {
						return 0, nil, Invalid("after: want a sequence number")
					}
				}
				if s := q.Get("before"); s != "" {
					if f.BeforeSeq, err = strconv.ParseInt(s, 10, 64); err != nil || f.BeforeSeq < 1 {
						return 0, nil, Invalid("before: want a sequence number above 0")
					}
				}
				switch q.Get("newest") {
				case "", "false":
				case "true":
					f.Newest = true
				default:
					return 0, nil, Invalid("newest: want true or false")
				}
				if s := q.Get("limit"); s != "" {
					if f.Limit, err = strconv.Atoi(s); err != nil || f.Limit < 1 || f.Limit > audit.MaxListLimit {
						return 0, nil, Invalid("limit: want 1 to %d", audit.MaxListLimit)
					}
				}
				es, err := h.Log.List(r.Context(), f)
				if err != nil {
					return 0, nil, err
				}
				limit := f.Limit
				if limit == 0 {
					limit = audit.DefaultListLimit
				}
				var next, older int64
				if len(es) == limit {
					if f.Newest {
						older = es[0].Seq
					} else {
						next = es[len(es)-1].Seq
					}
				}
				if es == nil {
					es = []audit.Entry{}
				}
				out := map[string]any{"entries": es, "next": next}
				if f.Newest {
					out["older"] = older
				}
				return http.StatusOK, out, nil
			},
		},
		{
			Pattern: "POST /v1/audit/verify", Action: "read", Resource: static("sys/audit"),
			Summary: "Verify the audit log's hash chain and signed checkpoints; names the first bad entry.",
			Handle: func(r *http.Request) (int, any, error) {
				res, err := h.Log.Verify(r.Context())
				if err != nil && !errors.Is(err, audit.ErrTampered) {
					return 0, nil, err
				}
				if res == nil {
					res = &audit.VerifyResult{Problem: "the log's bookkeeping rows are missing or malformed"}
				}
				return http.StatusOK, map[string]any{"ok": res.Problem == "", "entries": res.Entries, "checkpoints": res.Checkpoints,
					"first_bad": res.FirstBad, "problem": res.Problem}, nil
			},
		},
	}
}
