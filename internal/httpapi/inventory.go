package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/apikey"
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
				if *p.d, err = apikey.ParseDuration(p.name, q.Get(p.name)); err != nil {
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
