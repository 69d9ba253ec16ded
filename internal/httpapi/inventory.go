package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/inventory"
)

// InventoryAPI serves the inventory of long-lived credentials.
type InventoryAPI struct {
	Sources []inventory.Source
}

// MapInventoryErrors maps the inventory's errors.
func MapInventoryErrors(m *ErrorMapper) {
	m.Map(inventory.ErrInvalid, http.StatusBadRequest, CodeInvalidArgument, "")
}

// Routes returns the inventory route.
func (h *InventoryAPI) Routes() []Route {
	return []Route{{
		Pattern: "GET /v1/inventory", Action: "read", Resource: static("sys/inventory"),
		Summary: "Every token set to live longer than a day, client API key, service account, secret, integration and device, with owner, scope, age, last rotation, expiry and last use (names and dates, never values): kind (comma-separated), unused_for, not_rotated_for, expiring_within (durations: 90d, 36h), inactive=true to list disabled, revoked and expired ones too.",
		Handle: func(r *http.Request) (int, any, error) {
			q := r.URL.Query()
			var f inventory.Filter
			if k := q.Get("kind"); k != "" {
				f.Kinds = strings.Split(k, ",")
			}
			var err error
			for _, p := range []struct {
				name string
				d    *time.Duration
			}{{"unused_for", &f.UnusedFor}, {"not_rotated_for", &f.NotRotatedFor}, {"expiring_within", &f.ExpiringWithin}} {
				if *p.d, err = parseSpan(p.name, q.Get(p.name)); err != nil {
					return 0, nil, err
				}
			}
			switch q.Get("inactive") {
			case "", "false":
			case "true":
				f.Inactive = true
			default:
				return 0, nil, Invalid("inactive: want true or false")
			}
			items, err := inventory.Build(r.Context(), h.Sources, f, time.Now())
			if err != nil {
				return 0, nil, err
			}
			return http.StatusOK, map[string]any{"items": items}, nil
		},
	}}
}

// parseSpan reads a length of time: a Go duration (36h) or whole days (90d).
func parseSpan(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 && n <= 100*365 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	return 0, Invalid("%s: %q is not a length of time like 90d or 36h", field, s)
}
