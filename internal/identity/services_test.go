package identity

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

func TestServiceAccountLifecycle(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		svc, secret, err := e.m.CreateService(ctx, "ci", ServiceOptions{Policies: []string{"deploy"}, TokenTTL: 5 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if !clientIDRe.MatchString(svc.ClientID) || len(secret) != 52 || svc.TokenTTL != 5*time.Minute {
			t.Fatalf("created %+v (secret length %d)", svc, len(secret))
		}
		if _, _, err := e.m.CreateService(ctx, "ci", ServiceOptions{}); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate: %v", err)
		}
		if storagetest.RawContains(t, st, []byte(secret)) {
			t.Fatal("client secret stored in plaintext")
		}
		p, err := e.m.ServiceLogin(ctx, svc.ClientID, secret, src1)
		if err != nil {
			t.Fatal(err)
		}
		if p.ID() != "service:ci" || strings.Join(p.Policies, ",") != "deploy" || p.Metadata["client_id"] != svc.ClientID {
			t.Fatalf("principal %+v", p)
		}
		for name, tc := range map[string]struct{ id, secret string }{
			"wrong secret":   {svc.ClientID, secret[:51] + otherChar(secret[51])},
			"empty secret":   {svc.ClientID, ""},
			"unknown id":     {"kwsvc-0000000000000000", secret},
			"junk id":        {"ci", secret},
			"name as id":     {"svc_ci", secret},
			"huge secret":    {svc.ClientID, strings.Repeat(secret, 10)},
			"secret prefix":  {svc.ClientID, secret[:26]},
			"id with suffix": {svc.ClientID + "x", secret},
		} {
			if _, err := e.m.ServiceLogin(ctx, tc.id, tc.secret, src2); err != ErrInvalidCredentials {
				t.Errorf("%s: err = %v, want exactly ErrInvalidCredentials", name, err)
			}
			e.m.Throttle().Success("src:" + src2.String())
			e.m.Throttle().Success("principal:service:" + svc.ClientID)
		}
		got, err := e.m.GetService(ctx, "ci")
		if err != nil || got.ClientID != svc.ClientID {
			t.Fatalf("get: %+v %v", got, err)
		}
		if list, err := e.m.ListServices(ctx, MaxListLimit, ""); err != nil || len(list) != 1 || list[0].Name != "ci" {
			t.Fatalf("list: %+v %v", list, err)
		}

		if err := e.m.DisableService(ctx, "ci"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.ServiceLogin(ctx, svc.ClientID, secret, src1); err != ErrInvalidCredentials {
			t.Fatalf("disabled service: %v", err)
		}
		if _, err := e.m.RotateServiceSecret(ctx, "ci", 0); !errors.Is(err, ErrDisabled) {
			t.Fatalf("rotate disabled: %v", err)
		}
		if got, _ := e.m.GetService(ctx, "ci"); !got.Disabled {
			t.Fatal("GetService does not report disabled")
		}
		if err := e.m.EnableService(ctx, "ci"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.ServiceLogin(ctx, svc.ClientID, secret, src1); err != nil {
			t.Fatalf("re-enabled: %v", err)
		}
		if err := e.m.DisableService(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("disable unknown: %v", err)
		}
	})
}

func TestServiceSecretRotationGrace(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		svc, old, err := e.m.CreateService(ctx, "ci", ServiceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.RotateServiceSecret(ctx, "ci", -time.Second); !errors.Is(err, ErrInvalid) {
			t.Fatalf("negative grace: %v", err)
		}
		newer, err := e.m.RotateServiceSecret(ctx, "ci", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if newer == old {
			t.Fatal("rotation returned the old secret")
		}
		got, _ := e.m.GetService(ctx, "ci")
		if !got.PreviousSecretExpiresAt.Equal(e.clk.Now().Add(time.Hour)) {
			t.Fatalf("previous secret expires at %v", got.PreviousSecretExpiresAt)
		}
		for _, s := range []string{old, newer} {
			if _, err := e.m.ServiceLogin(ctx, svc.ClientID, s, src1); err != nil {
				t.Fatalf("inside the grace period: %v", err)
			}
		}
		e.clk.Advance(time.Hour - time.Nanosecond)
		if _, err := e.m.ServiceLogin(ctx, svc.ClientID, old, src1); err != nil {
			t.Fatalf("just before the grace ends: %v", err)
		}
		e.clk.Advance(time.Nanosecond)
		if _, err := e.m.ServiceLogin(ctx, svc.ClientID, old, src1); err != ErrInvalidCredentials {
			t.Fatalf("old secret after the grace: %v", err)
		}
		if _, err := e.m.ServiceLogin(ctx, svc.ClientID, newer, src1); err != nil {
			t.Fatalf("new secret after the grace: %v", err)
		}
		// Rotating with no grace ends the current secret at once, and the
		// secret rotated out earlier stays dead.
		third, err := e.m.RotateServiceSecret(ctx, "ci", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{old, newer} {
			if _, err := e.m.ServiceLogin(ctx, svc.ClientID, s, src2); err != ErrInvalidCredentials {
				t.Fatalf("rotated-out secret with no grace: %v", err)
			}
		}
		if _, err := e.m.ServiceLogin(ctx, svc.ClientID, third, src1); err != nil {
			t.Fatal(err)
		}
	})
}

func TestServiceBoundCIDRs(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		nets := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/31"), netip.MustParsePrefix("2001:db8::/32")}
		svc, secret, err := e.m.CreateService(ctx, "edge", ServiceOptions{BoundCIDRs: nets})
		if err != nil {
			t.Fatal(err)
		}
		for addr, ok := range map[string]bool{
			"192.0.2.1":        true,
			"::ffff:192.0.2.0": true,
			"2001:db8::5":      true,
			"192.0.2.2":        false,
			"2001:db9::1":      false,
		} {
			p, err := e.m.ServiceLogin(ctx, svc.ClientID, secret, netip.MustParseAddr(addr))
			if ok && (err != nil || len(p.BoundCIDRs) != 2) {
				t.Errorf("%s: %v", addr, err)
			}
			if !ok && err != ErrInvalidCredentials {
				t.Errorf("%s outside the bound networks: %v", addr, err)
			}
		}
		if _, err := e.m.ServiceLogin(ctx, svc.ClientID, secret, netip.Addr{}); err != ErrInvalidCredentials {
			t.Errorf("unknown source with bound networks: %v", err)
		}
		if _, _, err := e.m.CreateService(ctx, "bad", ServiceOptions{BoundCIDRs: []netip.Prefix{{}}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("invalid prefix: %v", err)
		}
	})
}

func TestServiceLoginThrottleAndSealed(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		svc, secret, err := e.m.CreateService(ctx, "ci", ServiceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			e.m.ServiceLogin(ctx, svc.ClientID, "nope", src1)
		}
		if _, err := e.m.ServiceLogin(ctx, svc.ClientID, secret, src2); !errors.Is(err, ErrThrottled) {
			t.Fatalf("right secret while locked: %v", err)
		}
		want := []string{"principal:service:" + svc.ClientID, "src:192.0.2.1"}
		if strings.Join(e.lockouts, ",") != strings.Join(want, ",") {
			t.Fatalf("lockouts %v, want %v", e.lockouts, want)
		}
		e.clk.Advance(time.Second)
		if _, err := e.m.ServiceLogin(ctx, svc.ClientID, secret, src2); err != nil {
			t.Fatalf("after the lockout: %v", err)
		}
		e.b.Seal()
		if _, err := e.m.ServiceLogin(ctx, svc.ClientID, secret, src2); !errors.Is(err, ErrSealed) {
			t.Fatalf("sealed: %v", err)
		}
		if _, _, err := e.m.CreateService(ctx, "other", ServiceOptions{}); !errors.Is(err, ErrSealed) {
			t.Fatalf("create while sealed: %v", err)
		}
	})
}

// otherChar returns a one-character string that differs from c, so that a
// "wrong secret" built by replacing c is never the right one by chance.
func otherChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// A login is recorded as the account's last login, at most once a minute.
func TestServiceLastLogin(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		svc, secret, err := e.m.CreateService(ctx, "ci", ServiceOptions{Policies: []string{"deploy"}})
		if err != nil {
			t.Fatal(err)
		}
		last := func() time.Time {
			t.Helper()
			got, err := e.m.GetService(ctx, "ci")
			if err != nil {
				t.Fatal(err)
			}
			return got.LastLoginAt
		}
		if !last().IsZero() {
			t.Fatal("a new account has a last login")
		}
		login := func() {
			t.Helper()
			if _, err := e.m.ServiceLogin(ctx, svc.ClientID, secret, src1); err != nil {
				t.Fatal(err)
			}
		}
		login()
		first := e.clk.Now()
		if got := last(); !got.Equal(first) {
			t.Fatalf("last login %v, want %v", got, first)
		}
		e.clk.Advance(30 * time.Second)
		login()
		if got := last(); !got.Equal(first) {
			t.Errorf("a login 30 s later wrote %v", got)
		}
		e.clk.Advance(time.Minute)
		login()
		if got := last(); !got.Equal(e.clk.Now()) {
			t.Errorf("a login 90 s later: last login %v, want %v", got, e.clk.Now())
		}
		if _, err := e.m.ServiceLogin(ctx, svc.ClientID, "wrong", src1); err == nil {
			t.Fatal("a wrong secret logged in")
		}
	})
}

// failingWrites is a store whose writes fail (reads work).
type failingWrites struct{ storage.Store }

func (failingWrites) Write(context.Context, func(storage.Tx) error) error {
	return errors.New("disk full")
}

// A last login that cannot be recorded does not fail the login, and is
// reported through OnError.
func TestServiceLastLoginFailureReported(t *testing.T) {
	st := storagetest.OpenSQLite(t, storage.Options{})
	e := newEnv(t, st)
	ctx := t.Context()
	svc, secret, err := e.m.CreateService(ctx, "ci", ServiceOptions{Policies: []string{"deploy"}})
	if err != nil {
		t.Fatal(err)
	}
	var reported []error
	e.m.store = failingWrites{st}
	e.m.onError = func(err error) { reported = append(reported, err) }
	if _, err := e.m.ServiceLogin(ctx, svc.ClientID, secret, src1); err != nil {
		t.Fatalf("login with a failing last-login write: %v", err)
	}
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), `"ci"`) || !strings.Contains(reported[0].Error(), "disk full") {
		t.Fatalf("reported %v, want one error naming the account and the cause", reported)
	}
}
