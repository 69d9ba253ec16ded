package identity

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// Paging through users and service accounts returns every row exactly once,
// in byte order of the names (the same on both backends, whatever the
// database's collation), and refuses a bad limit or cursor naming it.
func TestListPages(t *testing.T) {
	// Created out of order; '-' < '.' < digits < '_' < letters in byte order.
	names := []string{"b", "a-1", "a.1", "a_1", "a1", "z9", "0x", "a"}
	want := slices.Sorted(slices.Values(names))
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		for _, n := range names {
			if _, err := e.m.CreateUser(ctx, n, pw, UserOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.m.CreateService(ctx, n, ServiceOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		lists := map[string]func(ctx context.Context, limit int, cursor string) ([]string, error){
			"users": func(ctx context.Context, limit int, cursor string) ([]string, error) {
				us, err := e.m.ListUsers(ctx, limit, cursor)
				var out []string
				for _, u := range us {
					out = append(out, u.Name)
				}
				return out, err
			},
			"services": func(ctx context.Context, limit int, cursor string) ([]string, error) {
				ss, err := e.m.ListServices(ctx, limit, cursor)
				var out []string
				for _, s := range ss {
					out = append(out, s.Name)
				}
				return out, err
			},
		}
		for kind, list := range lists {
			for _, limit := range []int{1, 3, len(names), MaxListLimit} {
				var got []string
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > len(names) {
						t.Fatalf("%s limit %d: no last page after %d pages: %v", kind, limit, pages, got)
					}
					page, err := list(ctx, limit, cursor)
					if err != nil {
						t.Fatalf("%s limit %d cursor %q: %v", kind, limit, cursor, err)
					}
					if len(page) > limit {
						t.Fatalf("%s limit %d: a page of %d", kind, limit, len(page))
					}
					got = append(got, page...)
					if len(page) < limit {
						break
					}
					cursor = page[len(page)-1]
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s limit %d: paged %v, want %v", kind, limit, got, want)
				}
			}
			// A cursor need not name a row: the page starts after where it would sort.
			if got, err := list(ctx, 2, "a0"); err != nil || !slices.Equal(got, []string{"a1", "a_1"}) {
				t.Errorf("%s after a0: %v %v", kind, got, err)
			}
			if got, err := list(ctx, 2, "z9"); err != nil || len(got) != 0 {
				t.Errorf("%s after the last name: %v %v", kind, got, err)
			}

			for _, limit := range []int{0, -1, MaxListLimit + 1} {
				if _, err := list(ctx, limit, ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "limit") {
					t.Errorf("%s limit %d: %v, want ErrInvalid naming limit", kind, limit, err)
				}
			}
			for _, cursor := range []string{"A", "a/b", " a", "-a", "a'--", strings.Repeat("a", 65)} {
				if _, err := list(ctx, 10, cursor); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cursor") {
					t.Errorf("%s cursor %q: %v, want ErrInvalid naming cursor", kind, cursor, err)
				}
			}
		}
	})
}
