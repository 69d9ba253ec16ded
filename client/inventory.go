package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// InventoryItem is one long-lived credential: a client API key, a service
// account, a secret, an integration or a device (GET /v1/inventory).
type InventoryItem struct {
	Kind         string    `json:"kind"`
	ID           string    `json:"id"`
	Name         string    `json:"name,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	Owner        string    `json:"owner,omitempty"`
	Secret       string    `json:"secret,omitempty"` // an integration's secret
	CreatedAt    time.Time `json:"created_at,omitzero"`
	RotatedAt    time.Time `json:"rotated_at,omitzero"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	LastUsedAt   time.Time `json:"last_used_at,omitzero"`
	LastUsedFrom string    `json:"last_used_from,omitempty"`
	UseTracked   bool      `json:"use_tracked"`
	State        string    `json:"state"`
}

// InventoryFilter selects inventory items; zero fields do not filter.
type InventoryFilter struct {
	Kinds          []string // key, service, secret, integration, device
	UnusedFor      time.Duration
	NotRotatedFor  time.Duration
	ExpiringWithin time.Duration
	Inactive       bool // also disabled, revoked and expired ones
}

// Inventory lists the credentials f selects, by kind and id.
func (c *Client) Inventory(ctx context.Context, f InventoryFilter) ([]InventoryItem, error) {
	q := url.Values{}
	if len(f.Kinds) > 0 {
		q.Set("kind", strings.Join(f.Kinds, ","))
	}
	for name, d := range map[string]time.Duration{"unused_for": f.UnusedFor, "not_rotated_for": f.NotRotatedFor, "expiring_within": f.ExpiringWithin} {
		if d != 0 {
			q.Set(name, d.String())
		}
	}
	if f.Inactive {
		q.Set("inactive", "true")
	}
	var r struct {
		Items []InventoryItem `json:"items"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/inventory", q, nil, &r); err != nil {
		return nil, err
	}
	return r.Items, nil
}
