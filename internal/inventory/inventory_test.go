package inventory

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// items: a key used yesterday, a key never used since 200 days ago, a
// revoked key, a service whose secret is 400 days old, a secret changed
// 10 days ago, an integration last used 100 days ago, a disabled device.
func items() []Source {
	src := func(kind string, its ...Item) Source {
		return Source{Kind: kind, List: func(context.Context) ([]Item, error) { return its, nil }}
	}
	return []Source{
		src(KindKey,
			Item{Kind: KindKey, ID: "key_b", CreatedAt: now.Add(-days(300)), LastUsedAt: now.Add(-days(1)), UseTracked: true, State: StateActive},
			Item{Kind: KindKey, ID: "key_a", CreatedAt: now.Add(-days(200)), ExpiresAt: now.Add(days(5)), UseTracked: true, State: StateActive},
			Item{Kind: KindKey, ID: "key_c", CreatedAt: now.Add(-days(500)), UseTracked: true, State: StateRevoked}),
		src(KindService, Item{Kind: KindService, ID: "ci", CreatedAt: now.Add(-days(900)), RotatedAt: now.Add(-days(400)), State: StateActive}),
		src(KindSecret, Item{Kind: KindSecret, ID: "shop/prod/db", RotatedAt: now.Add(-days(10)), State: StateActive}),
		src(KindIntegration, Item{Kind: KindIntegration, ID: "maps", CreatedAt: now.Add(-days(365)), LastUsedAt: now.Add(-days(100)), UseTracked: true, State: StateActive}),
		src(KindDevice, Item{Kind: KindDevice, ID: "dev_1", CreatedAt: now.Add(-days(30)), State: StateDisabled}),
	}
}

func ids(its []Item) []string {
	out := make([]string, len(its))
	for i, it := range its {
		out[i] = it.ID
	}
	return out
}

func TestBuildFilters(t *testing.T) {
	for _, c := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"everything active, by kind then id", Filter{}, []string{"key_a", "key_b", "ci", "shop/prod/db", "maps"}},
		{"inactive too", Filter{Inactive: true}, []string{"key_a", "key_b", "key_c", "ci", "shop/prod/db", "maps", "dev_1"}},
		{"kinds", Filter{Kinds: []string{KindIntegration, KindKey}}, []string{"key_a", "key_b", "maps"}},
		// Never used counts from creation; kinds whose use is not
		// recorded are left out, not reported as unused.
		{"unused for 90 days", Filter{UnusedFor: days(90)}, []string{"key_a", "maps"}},
		{"unused for 150 days", Filter{UnusedFor: days(150)}, []string{"key_a"}},
		{"not rotated for a year", Filter{NotRotatedFor: days(365), Inactive: true}, []string{"key_c", "ci"}},
		{"not rotated for a week", Filter{NotRotatedFor: days(7)}, []string{"key_a", "key_b", "ci", "shop/prod/db", "maps"}},
		{"expiring within a week", Filter{ExpiringWithin: days(7)}, []string{"key_a"}},
		{"expiring within a day", Filter{ExpiringWithin: days(1)}, nil},
		{"combined", Filter{Kinds: []string{KindKey}, UnusedFor: days(30), ExpiringWithin: days(30)}, []string{"key_a"}},
	} {
		got, err := Build(t.Context(), items(), c.f, now)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(ids(got), c.want) && !(len(got) == 0 && c.want == nil) {
			t.Errorf("%s: %v, want %v", c.name, ids(got), c.want)
		}
	}
}

func TestBuildRefusesBadFilters(t *testing.T) {
	for _, f := range []Filter{{Kinds: []string{"user"}}, {UnusedFor: -time.Hour}, {ExpiringWithin: -1}} {
		if _, err := Build(t.Context(), items(), f, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("Build(%+v) = %v, want ErrInvalid", f, err)
		}
	}
}

// A source of a kind left out is not read; a source's failure names it.
func TestBuildSources(t *testing.T) {
	boom := errors.New("disk on fire")
	read := false
	srcs := []Source{
		{Kind: KindKey, List: func(context.Context) ([]Item, error) { read = true; return nil, boom }},
		{Kind: KindSecret, List: func(context.Context) ([]Item, error) {
			return []Item{{Kind: KindSecret, ID: "a/b/c", State: StateActive}}, nil
		}},
	}
	got, err := Build(t.Context(), srcs, Filter{Kinds: []string{KindSecret}}, now)
	if err != nil || read || len(got) != 1 {
		t.Fatalf("Build(secrets) = %v, %v (key source read: %v)", got, err, read)
	}
	if _, err := Build(t.Context(), srcs, Filter{}, now); !errors.Is(err, boom) || err.Error() != "inventory: keys: disk on fire" {
		t.Errorf("Build with a failing source = %v", err)
	}
	if got, err := Build(t.Context(), nil, Filter{}, now); err != nil || got == nil || len(got) != 0 {
		t.Errorf("Build of nothing = %#v, %v; want an empty list", got, err)
	}
}
