// Package inventory lists the long-lived credentials keyward holds or has
// issued — client API keys, service accounts' secrets, stored secrets,
// gateway integrations and enrolled devices — each with its owner, scope,
// age, last rotation, expiry and last use, so that a review can ask what
// exists, what nobody used for 90 days, what was never rotated and what
// expires soon (keyward inventory, GET /v1/inventory).
//
// Access tokens are listed only when they are set to live longer than a
// day (the exceptions: root tokens, tokens issued or renewed for days): the others
// live minutes to hours, and `keyward policy who-can` answers who holds
// them. The package owns the model and the filters; the server turns each
// domain's records into Items (Source).
package inventory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kinds of credential.
const (
	KindKey         = "key"         // a client API key (kwk_), by key id
	KindService     = "service"     // a service account's secret, by account name
	KindSecret      = "secret"      // a stored secret, by project/env/path
	KindIntegration = "integration" // a gateway integration (it holds a third-party key), by name
	KindDevice      = "device"      // an enrolled device's key, by device id
	KindToken       = "token"       // an access token set to live longer than LongLived, by accessor
)

// LongLived is how long a token must be able to live to be inventoried.
const LongLived = 24 * time.Hour

// Kinds lists every kind, in the order items are listed.
var Kinds = []string{KindToken, KindKey, KindService, KindSecret, KindIntegration, KindDevice}

// States.
const (
	StateActive   = "active"
	StateDisabled = "disabled"
	StateRevoked  = "revoked"
	StateExpired  = "expired"
)

// ErrInvalid is a filter that makes no sense.
var ErrInvalid = errors.New("inventory: invalid filter")

// Item is one credential.
type Item struct {
	Kind string `json:"kind"`
	// ID names it within its kind: a token's accessor, a key id, a
	// service account's or integration's name, a secret's
	// project/env/path, a device id.
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Scope is where it applies: project/env for keys and secrets, the
	// policies of tokens, service accounts and devices, the upstream of an
	// integration.
	Scope string `json:"scope,omitempty"`
	// Owner is who it was issued to or created by.
	Owner string `json:"owner,omitempty"`
	// Secret is, for an integration, the PROJECT/ENV/PATH of the secret
	// it injects (listed as a secret too).
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	// RotatedAt is when its current value was set: a secret's last
	// version, a service account's current secret (zero: CreatedAt).
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// LastUsedAt is its last use when keyward records uses of its kind
	// (UseTracked): zero then means never (or, for integrations, not
	// within the usage retention).
	LastUsedAt   time.Time `json:"last_used_at,omitzero"`
	LastUsedFrom string    `json:"last_used_from,omitempty"`
	UseTracked   bool      `json:"use_tracked"`
	State        string    `json:"state"`
}

// rotated is when the item's current value was set.
func (it *Item) rotated() time.Time {
	if it.RotatedAt.IsZero() {
		return it.CreatedAt
	}
	return it.RotatedAt
}

// Filter selects items. Zero fields do not filter.
type Filter struct {
	// Kinds keeps items of these kinds.
	Kinds []string
	// UnusedFor keeps items whose use is tracked and that were not used
	// in this long: last used before it, or never and created before it.
	UnusedFor time.Duration
	// NotRotatedFor keeps items whose current value is older than this.
	NotRotatedFor time.Duration
	// ExpiringWithin keeps active items that expire within this long.
	ExpiringWithin time.Duration
	// Inactive keeps disabled, revoked and expired items too (by default
	// only active ones are listed).
	Inactive bool
}

// Check reports what is wrong with f.
func (f *Filter) Check() error {
	for _, k := range f.Kinds {
		if !slices.Contains(Kinds, k) {
			return fmt.Errorf("%w: kind %q (want %s)", ErrInvalid, k, strings.Join(Kinds, ", "))
		}
	}
	for name, d := range map[string]time.Duration{"unused_for": f.UnusedFor, "not_rotated_for": f.NotRotatedFor, "expiring_within": f.ExpiringWithin} {
		if d < 0 {
			return fmt.Errorf("%w: %s must not be negative", ErrInvalid, name)
		}
	}
	return nil
}

// Matches reports whether it passes f at now.
func (f *Filter) Matches(it *Item, now time.Time) bool {
	switch {
	case len(f.Kinds) > 0 && !slices.Contains(f.Kinds, it.Kind):
		return false
	case !f.Inactive && it.State != StateActive:
		return false
	case f.UnusedFor > 0 && (!it.UseTracked || !lastTouch(it).Before(now.Add(-f.UnusedFor))):
		return false
	case f.NotRotatedFor > 0 && !it.rotated().Before(now.Add(-f.NotRotatedFor)):
		return false
	case f.ExpiringWithin > 0 && (it.ExpiresAt.IsZero() || it.State != StateActive || it.ExpiresAt.After(now.Add(f.ExpiringWithin))):
		return false
	}
	return true
}

// lastTouch is the last use, or the creation of an item never used.
func lastTouch(it *Item) time.Time {
	if it.LastUsedAt.IsZero() {
		return it.CreatedAt
	}
	return it.LastUsedAt
}

// Source lists the items of one kind.
type Source struct {
	Kind string
	List func(ctx context.Context) ([]Item, error)
}

// Build lists the items of sources that pass f at now, by kind (in Kinds'
// order) and id. Sources of kinds f leaves out are not read.
func Build(ctx context.Context, sources []Source, f Filter, now time.Time) ([]Item, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	out := []Item{}
	for _, s := range sources {
		if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, s.Kind) {
			continue
		}
		items, err := s.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("inventory: %ss: %w", s.Kind, err)
		}
		for i := range items {
			if f.Matches(&items[i], now) {
				out = append(out, items[i])
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Item) int {
		return cmp.Or(cmp.Compare(slices.Index(Kinds, a.Kind), slices.Index(Kinds, b.Kind)), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}
