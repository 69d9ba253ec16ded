package gateway

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/events"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

func TestNormalize(t *testing.T) {
	in := Integration{
		Name: "maps", Upstream: "https://API.Example.com:8443/v2/", Secret: "pay/prod/maps-key",
		Inject: "header:x-api-key={{secret}}", Methods: []string{"post", "GET", "get"},
		StripResponseHeaders: []string{"x-debug", "X-Debug"}, Timeout: Duration(1500 * time.Microsecond),
	}
	c, err := in.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if in.Upstream != "https://api.example.com:8443/v2" || c.host != "api.example.com:8443" || c.addr != "api.example.com:8443" || c.baseRaw != "/v2" {
		t.Errorf("upstream = %q (host %q, addr %q, base %q)", in.Upstream, c.host, c.addr, c.baseRaw)
	}
	// The Host header leaves out the default port; the dialled address has it.
	for u, want := range map[string][3]string{
		"https://api.example.com":         {"https://api.example.com", "api.example.com", "api.example.com:443"},
		"https://api.example.com:443/x":   {"https://api.example.com/x", "api.example.com", "api.example.com:443"},
		"http://localhost":                {"http://localhost", "localhost", "localhost:80"},
		"http://localhost:80":             {"http://localhost", "localhost", "localhost:80"},
		"http://localhost:443":            {"http://localhost:443", "localhost:443", "localhost:443"},
		"https://[2001:db8::1]":           {"https://[2001:db8::1]", "[2001:db8::1]", "[2001:db8::1]:443"},
		"https://[2001:db8::1]:8443/a/b/": {"https://[2001:db8::1]:8443/a/b", "[2001:db8::1]:8443", "[2001:db8::1]:8443"},
	} {
		in := Integration{Name: "x", Upstream: u, Secret: "p/e/k", Inject: "query:k", AllowPrivate: true}
		c, err := in.Normalize()
		if err != nil || [3]string{in.Upstream, c.host, c.addr} != want {
			t.Errorf("%s: %q %q %q, %v; want %q", u, in.Upstream, c.host, c.addr, err, want)
		}
	}
	if in.Inject != "header:X-Api-Key={{secret}}" || !slices.Equal(in.Methods, []string{"GET", "POST"}) ||
		!slices.Equal(in.Paths, []string{"/**"}) || !slices.Equal(in.StripResponseHeaders, []string{"X-Debug"}) {
		t.Errorf("normalised = %+v", in)
	}
	if in.MaxBodyBytes != DefaultMaxBody || time.Duration(in.Timeout) != time.Millisecond {
		t.Errorf("limits = %d, %s", in.MaxBodyBytes, time.Duration(in.Timeout))
	}
	if c.project != "pay" || c.env != "prod" || c.spath != "maps-key" {
		t.Errorf("secret ref = %s/%s/%s", c.project, c.env, c.spath)
	}
	// Normalising twice changes nothing.
	again := in
	if _, err := again.Normalize(); err != nil || !equalIntegrations(again, in) {
		t.Errorf("second Normalize = %+v, %v", again, err)
	}

	base := Integration{Name: "x", Upstream: "https://api.example.com", Secret: "p/e/k", Inject: "query:key"}
	bad := map[string]func(*Integration){
		"integration name":   func(i *Integration) { i.Name = "Maps" },
		"name is empty":      func(i *Integration) { i.Name = "" },
		"longer than 63":     func(i *Integration) { i.Name = strings.Repeat("a", 64) },
		"upstream is req":    func(i *Integration) { i.Upstream = "" },
		"scheme must be":     func(i *Integration) { i.Upstream = "ftp://api.example.com" },
		"http is allowed":    func(i *Integration) { i.Upstream = "http://api.example.com" },
		"no user":            func(i *Integration) { i.Upstream = "https://u:p@api.example.com" },
		"no query":           func(i *Integration) { i.Upstream = "https://api.example.com/?a=1" },
		"no fragment":        func(i *Integration) { i.Upstream = "https://api.example.com/#x" },
		"a host is required": func(i *Integration) { i.Upstream = "https:///x" },
		"internal address":   func(i *Integration) { i.Upstream = "https://127.0.0.1" },
		"internal address.":  func(i *Integration) { i.Upstream = "https://[::1]:8443" },
		"internal address..": func(i *Integration) { i.Upstream = "https://169.254.169.254/latest" },
		"internal address3":  func(i *Integration) { i.Upstream = "https://10.1.2.3" },
		"port":               func(i *Integration) { i.Upstream = "https://api.example.com:0" },
		"upstream path":      func(i *Integration) { i.Upstream = "https://api.example.com/a/../b" },
		"host \"":            func(i *Integration) { i.Upstream = "https://api_example.com" },
		"PROJECT/ENV/PATH":   func(i *Integration) { i.Secret = "p/e" },
		"segments":           func(i *Integration) { i.Secret = "p/e/../k" },
		"lowercase":          func(i *Integration) { i.Secret = "P/e/k" },
		"kind must be":       func(i *Integration) { i.Inject = "cookie:x" },
		"method":             func(i *Integration) { i.Methods = []string{"CONNECT"} },
		"path glob":          func(i *Integration) { i.Paths = []string{"v1/**"} },
		"timeout":            func(i *Integration) { i.Timeout = Duration(time.Hour) },
		"max_body_bytes":     func(i *Integration) { i.MaxBodyBytes = -1 },
		"strip_response":     func(i *Integration) { i.StripResponseHeaders = []string{"a b"} },
	}
	for want, mutate := range bad {
		in := base
		mutate(&in)
		want = strings.TrimRight(want, ".0123456789")
		if _, err := in.Normalize(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Normalize = %v", want, err)
		}
	}
	// Private upstreams and plain http pass with allow_private.
	for _, u := range []string{"http://127.0.0.1:8080", "https://10.1.2.3", "http://localhost"} {
		in := base
		in.Upstream, in.AllowPrivate = u, true
		if _, err := in.Normalize(); err != nil {
			t.Errorf("%s with allow_private: %v", u, err)
		}
	}
}

func equalIntegrations(a, b Integration) bool {
	return a.Name == b.Name && a.Upstream == b.Upstream && a.Secret == b.Secret && a.Inject == b.Inject &&
		slices.Equal(a.Methods, b.Methods) && slices.Equal(a.Paths, b.Paths) && a.Timeout == b.Timeout &&
		a.MaxBodyBytes == b.MaxBodyBytes && slices.Equal(a.StripResponseHeaders, b.StripResponseHeaders) &&
		a.AllowPrivate == b.AllowPrivate
}

func TestBlocked(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "127.9.9.9", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
		"fe80::1", "fc00::1", "fd12::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "100.64.0.1", "100.127.255.254",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a00:1", "2002:7f00:1::", "2002:a00:1::1",
		"255.255.255.255", "240.0.0.1", "198.18.0.1", "192.0.2.1"} {
		if !Blocked(netip.MustParseAddr(s)) {
			t.Errorf("%s is not blocked", s)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.63.255.255", "100.128.0.1", "::ffff:8.8.8.8",
		"64:ff9b::808:808", "2002:808:808::"} {
		if Blocked(netip.MustParseAddr(s)) {
			t.Errorf("%s is blocked", s)
		}
	}
}

func TestServiceCRUD(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		ctx := t.Context()
		s := NewService(st, nil)
		var audited int
		audit := func(context.Context, storage.Tx) error { audited++; return nil }
		in := Integration{Name: "maps", Upstream: "https://maps.example.com/api", Secret: "pay/prod/maps",
			Inject: "header:Authorization=Bearer {{secret}}", Methods: []string{"GET"}, Paths: []string{"/v1/**"}}
		got, err := s.Create(ctx, in, "user:alice", audit)
		if err != nil {
			t.Fatal(err)
		}
		if got.CreatedBy != "user:alice" || got.CreatedAt.IsZero() || got.MaxBodyBytes != DefaultMaxBody || audited != 1 {
			t.Fatalf("created = %+v (audited %d)", got, audited)
		}
		if _, err := s.Create(ctx, in, "user:bob", audit); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate create: %v", err)
		}
		read, err := s.Get(ctx, "maps")
		if err != nil || !equalIntegrations(*read, *got) || !read.CreatedAt.Equal(got.CreatedAt) {
			t.Fatalf("get = %+v, %v; want %+v", read, err, got)
		}
		c1, err := s.lookup(ctx, "maps")
		if err != nil || c1.in.Upstream != "https://maps.example.com/api" {
			t.Fatalf("lookup = %v", err)
		}
		if c2, _ := s.lookup(ctx, "maps"); c2 != c1 {
			t.Error("the compiled integration is not cached")
		}

		in.Upstream, in.Timeout = "https://maps2.example.com", Duration(5*time.Second)
		up, err := s.Update(ctx, in, "user:bob", audit)
		if err != nil || up.CreatedBy != "user:alice" || up.UpdatedBy != "user:bob" || time.Duration(up.Timeout) != 5*time.Second {
			t.Fatalf("update = %+v, %v", up, err)
		}
		if c3, _ := s.lookup(ctx, "maps"); c3 == c1 || c3.host != "maps2.example.com" {
			t.Error("the update did not replace the cached integration")
		}
		if _, err := s.Update(ctx, Integration{Name: "nope", Upstream: "https://x.example.com", Secret: "p/e/k", Inject: "query:k"}, "x", nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update missing: %v", err)
		}
		// A refused update leaves the stored integration as it was.
		bad := in
		bad.Paths = []string{"no-slash"}
		if _, err := s.Update(ctx, bad, "x", nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("invalid update: %v", err)
		}
		if r, _ := s.Get(ctx, "maps"); r.Paths[0] != "/v1/**" {
			t.Errorf("a refused update changed the paths to %v", r.Paths)
		}

		if _, err := s.Create(ctx, Integration{Name: "aaa", Upstream: "https://a.example.com", Secret: "p/e/k", Inject: "basic:u"}, "x", nil); err != nil {
			t.Fatal(err)
		}
		list, err := s.List(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "aaa" || list[1].Name != "maps" {
			t.Fatalf("list = %+v, %v", list, err)
		}
		if err := s.Delete(ctx, "maps", audit); err != nil {
			t.Fatal(err)
		}
		if _, err := s.lookup(ctx, "maps"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup after delete: %v", err)
		}
		if err := s.Delete(ctx, "maps", audit); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		// Every change appended an invalidation event.
		var n int
		st.Read(ctx, func(tx storage.Tx) error {
			return tx.QueryRow(ctx, `SELECT COUNT(*) FROM events WHERE kind = $1`, EventChange).Scan(&n)
		})
		if n != 4 {
			t.Errorf("%d integration events, want 4 (create, update, create, delete)", n)
		}
	})
}

// Another node's change reaches this node's cache through the event.
func TestServiceHandleEvent(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	ctx := t.Context()
	a, b := NewService(st, nil), NewService(st, nil)
	in := Integration{Name: "maps", Upstream: "https://one.example.com", Secret: "p/e/k", Inject: "query:key"}
	if _, err := a.Create(ctx, in, "x", nil); err != nil {
		t.Fatal(err)
	}
	if c, err := b.lookup(ctx, "maps"); err != nil || c.host != "one.example.com" {
		t.Fatalf("b lookup: %v", err)
	}
	in.Upstream = "https://two.example.com"
	if _, err := a.Update(ctx, in, "x", nil); err != nil {
		t.Fatal(err)
	}
	if c, _ := b.lookup(ctx, "maps"); c.host != "one.example.com" {
		t.Fatal("b reloaded without an event; the test proves nothing")
	}
	b.HandleEvent(events.Event{Kind: EventChange, Key: "maps"})
	if c, _ := b.lookup(ctx, "maps"); c.host != "two.example.com" {
		t.Errorf("after the event b still uses %s", c.host)
	}
}
