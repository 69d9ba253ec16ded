package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/keyward/keyward/internal/monitor"
)

// UsageAPI serves request counts per credential and integration, and the
// anomalies detected in them.
type UsageAPI struct {
	Usage *monitor.Usage
	// Alerts, when set, serves GET /v1/alerts.
	Alerts *monitor.Detector
}

// MapUsageErrors maps the monitor's errors.
func MapUsageErrors(m *ErrorMapper) {
	m.Map(monitor.ErrInvalid, http.StatusBadRequest, CodeInvalidArgument, "")
}

// Routes returns the usage route (and the alerts route with Alerts).
func (h *UsageAPI) Routes() []Route {
	routes := []Route{{
		Pattern: "GET /v1/usage", Action: "read", Resource: static("sys/usage"),
		Summary: "Request counts per minute and status: kind (key, token, integration), subject, since, until (RFC 3339 or a duration back from now), limit.",
		Handle: func(r *http.Request) (int, any, error) {
			q := r.URL.Query()
			f := monitor.Filter{Kind: q.Get("kind"), Subject: q.Get("subject")}
			var err error
			if f.Since, err = parseSince("since", q.Get("since")); err != nil {
				return 0, nil, err
			}
			if f.Until, err = parseSince("until", q.Get("until")); err != nil {
				return 0, nil, err
			}
			if s := q.Get("limit"); s != "" {
				if f.Limit, err = strconv.Atoi(s); err != nil || f.Limit < 1 || f.Limit > monitor.MaxRows {
					return 0, nil, Invalid("limit: want 1 to %d", monitor.MaxRows)
				}
			}
			rows, err := h.Usage.Query(r.Context(), f)
			if err != nil {
				return 0, nil, err
			}
			if rows == nil {
				rows = []monitor.Row{}
			}
			return http.StatusOK, map[string]any{"usage": rows}, nil
		},
	}}
	if h.Alerts != nil {
		routes = append(routes, Route{
			Pattern: "GET /v1/alerts", Action: "read", Resource: static("sys/alerts"),
			Summary: "Anomalies detected in credentials' use (spike, refusals), newest first: since (RFC 3339 or a duration back from now; default 24h), limit.",
			Handle: func(r *http.Request) (int, any, error) {
				q := r.URL.Query()
				f := monitor.AlertFilter{}
				var err error
				if f.Since, err = parseSince("since", q.Get("since")); err != nil {
					return 0, nil, err
				}
				if f.Since.IsZero() {
					f.Since = time.Now().Add(-24 * time.Hour)
				}
				if s := q.Get("limit"); s != "" {
					if f.Limit, err = strconv.Atoi(s); err != nil || f.Limit < 1 || f.Limit > monitor.MaxAlerts {
						return 0, nil, Invalid("limit: want 1 to %d", monitor.MaxAlerts)
					}
				}
				alerts, err := h.Alerts.Alerts(r.Context(), f)
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, map[string]any{"alerts": alerts}, nil
			},
		})
	}
	return routes
}
