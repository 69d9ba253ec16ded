package identity

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// env is a Manager over a real store and an unsealed barrier, with a test
// clock and the cheap hashing parameters.
type env struct {
	m        *Manager
	st       storage.Store
	b        *barrier.Barrier
	clk      *clock
	mu       sync.Mutex
	lockouts []string
	changes  []Change
}

func newEnv(t testing.TB, st storage.Store) *env {
	t.Helper()
	res, err := barrier.Init(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := barrier.New()
	if err := b.UnsealKey(res.RootKey, res.Keyring); err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, b: b, clk: newClock()}
	e.m = New(st, b, b, Options{
		Now: e.clk.Now,
		OnLockout: func(k string) {
			e.mu.Lock()
			e.lockouts = append(e.lockouts, k)
			e.mu.Unlock()
		},
		Audit: func(_ context.Context, _ storage.Tx, c Change) error {
			e.mu.Lock()
			e.changes = append(e.changes, c)
			e.mu.Unlock()
			return nil
		},
	})
	e.m.params = testParams
	return e
}

// unlock clears the throttle keys the tests use.
func (e *env) unlock() {
	for _, k := range []string{"principal:user:alice", "src:" + src1.String(), "src:" + src2.String()} {
		e.m.Throttle().Success(k)
	}
}

var (
	src1 = netip.MustParseAddr("192.0.2.1")
	src2 = netip.MustParseAddr("192.0.2.2")
)

const pw = "correct horse battery staple"

func TestUserLifecycle(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		u, err := e.m.CreateUser(ctx, "alice", pw, UserOptions{Policies: []string{"ops", "dev", "ops"}})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(u.Policies, ",") != "dev,ops" || u.TokenTTL != DefaultTokenTTL || u.TokenMaxTTL != DefaultTokenMaxTTL {
			t.Fatalf("created %+v", u)
		}
		if _, err := e.m.CreateUser(ctx, "alice", pw, UserOptions{}); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate: %v", err)
		}
		if _, err := e.m.CreateUser(ctx, "bob", pw, UserOptions{TokenTTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		got, err := e.m.GetUser(ctx, "bob")
		if err != nil || got.TokenTTL != time.Hour || got.TokenMaxTTL != DefaultTokenMaxTTL {
			t.Fatalf("get bob: %+v %v", got, err)
		}
		if _, err := e.m.GetUser(ctx, "carol"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get unknown: %v", err)
		}
		list, err := e.m.ListUsers(ctx, MaxListLimit, "")
		if err != nil || len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" {
			t.Fatalf("list: %+v %v", list, err)
		}

		p, err := e.m.PasswordLogin(ctx, "alice", pw, "", src1)
		if err != nil {
			t.Fatal(err)
		}
		if p.ID() != "user:alice" || strings.Join(p.Policies, ",") != "dev,ops" || p.TokenTTL != DefaultTokenTTL {
			t.Fatalf("principal %+v", p)
		}

		if err := e.m.SetPassword(ctx, "alice", "another long password"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, "", src1); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("old password after SetPassword: %v", err)
		}
		if _, err := e.m.PasswordLogin(ctx, "alice", "another long password", "", src1); err != nil {
			t.Fatalf("new password: %v", err)
		}

		if err := e.m.DisableUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if err := e.m.DisableUser(ctx, "alice"); err != nil {
			t.Fatalf("disable twice: %v", err)
		}
		if _, err := e.m.PasswordLogin(ctx, "alice", "another long password", "", src1); err != ErrInvalidCredentials {
			t.Fatalf("disabled user login: %v", err)
		}
		if err := e.m.SetPassword(ctx, "alice", pw); !errors.Is(err, ErrDisabled) {
			t.Fatalf("SetPassword on disabled: %v", err)
		}
		if _, _, err := e.m.EnrollTOTP(ctx, "alice"); !errors.Is(err, ErrDisabled) {
			t.Fatalf("EnrollTOTP on disabled: %v", err)
		}
		if u, _ := e.m.GetUser(ctx, "alice"); !u.Disabled {
			t.Fatal("GetUser does not report disabled")
		}
		if err := e.m.EnableUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.PasswordLogin(ctx, "alice", "another long password", "", src1); err != nil {
			t.Fatalf("re-enabled login: %v", err)
		}
		if err := e.m.DisableUser(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("disable unknown: %v", err)
		}

		var ops []string
		for _, c := range e.changes {
			ops = append(ops, c.Op+" "+c.Kind+" "+c.Name)
		}
		want := "create user alice,create user bob,set_password user alice,disable user alice,enable user alice"
		if strings.Join(ops, ",") != want {
			t.Fatalf("audited changes:\n got %s\nwant %s", strings.Join(ops, ","), want)
		}
	})
}

func TestCreateUserValidation(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		for name, tc := range map[string]struct {
			name, pw string
			opts     UserOptions
			field    string
		}{
			"upper name":   {"Alice", pw, UserOptions{}, "name"},
			"empty name":   {"", pw, UserOptions{}, "name"},
			"dot first":    {".alice", pw, UserOptions{}, "name"},
			"long name":    {strings.Repeat("a", 65), pw, UserOptions{}, "name"},
			"short pw":     {"alice", "elevenchars", UserOptions{}, "password"},
			"huge pw":      {"alice", strings.Repeat("x", MaxPasswordLen+1), UserOptions{}, "password"},
			"bad policy":   {"alice", pw, UserOptions{Policies: []string{"a b"}}, "policies"},
			"ttl > max":    {"alice", pw, UserOptions{TokenTTL: 2 * time.Hour, TokenMaxTTL: time.Hour}, "token_ttl"},
			"negative ttl": {"alice", pw, UserOptions{TokenTTL: -1}, "token_ttl"},
			"max too big":  {"alice", pw, UserOptions{TokenMaxTTL: MaxTokenTTL + 1}, "token_max_ttl"},
		} {
			_, err := e.m.CreateUser(ctx, tc.name, tc.pw, tc.opts)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("%s: err = %v, want ErrInvalid naming %s", name, err, tc.field)
			}
			if err != nil && strings.Contains(err.Error(), pw) {
				t.Errorf("%s: error quotes the password", name)
			}
		}
		// Twelve characters (not bytes) are enough.
		if _, err := e.m.CreateUser(ctx, "alice", "ééééééééééé1", UserOptions{}); err != nil {
			t.Fatalf("12-character password: %v", err)
		}
	})
}

func TestPasswordLoginFailuresLookAlike(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		if _, err := e.m.CreateUser(ctx, "alice", pw, UserOptions{}); err != nil {
			t.Fatal(err)
		}
		for name, tc := range map[string]struct{ user, pw string }{
			"wrong password": {"alice", pw + "x"},
			"empty password": {"alice", ""},
			"unknown user":   {"mallory", pw},
			"invalid name":   {"Not A Name!", pw},
			"huge password":  {"alice", strings.Repeat(pw, 100)},
		} {
			_, err := e.m.PasswordLogin(ctx, tc.user, tc.pw, "", src1)
			if err != ErrInvalidCredentials {
				t.Errorf("%s: err = %v, want exactly ErrInvalidCredentials", name, err)
			}
		}
		// The unknown user cost a hash too (against the dummy).
		if e.m.dummyHash == "" {
			t.Fatal("no dummy hash computed for the unknown user")
		}
	})
}

func TestTOTPLogin(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		if _, err := e.m.CreateUser(ctx, "alice", pw, UserOptions{}); err != nil {
			t.Fatal(err)
		}
		secretB32, u, err := e.m.EnrollTOTP(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u, "otpauth://totp/keyward:alice?") || !strings.Contains(u, "secret="+secretB32) {
			t.Fatalf("otpauth URL %q", u)
		}
		secret, err := b32.DecodeString(secretB32)
		if err != nil || len(secret) != 20 {
			t.Fatalf("secret: %v len %d", err, len(secret))
		}
		if got, _ := e.m.GetUser(ctx, "alice"); !got.TOTPEnrolled {
			t.Fatal("GetUser does not report the enrolment")
		}
		// The secret is sealed at rest.
		if storagetest.RawContains(t, st, secret) {
			t.Fatal("TOTP secret stored in plaintext")
		}

		if _, err := e.m.PasswordLogin(ctx, "alice", pw, "", src1); err != ErrTOTPRequired {
			t.Fatalf("no code: %v", err)
		}
		if _, err := e.m.PasswordLogin(ctx, "alice", pw+"x", "", src1); err != ErrInvalidCredentials {
			t.Fatalf("wrong password, no code: %v", err)
		}
		code := GenerateTOTP(secret, e.clk.Now(), 6)
		wrong := GenerateTOTP(secret, e.clk.Now().Add(-time.Hour), 6)
		if wrong == code {
			t.Skip("code collision")
		}
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, wrong, src1); err != ErrInvalidCredentials {
			t.Fatalf("wrong code: %v", err)
		}
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, "abcdef", src1); err != ErrInvalidCredentials {
			t.Fatalf("junk code: %v", err)
		}
		if _, err := e.m.PasswordLogin(ctx, "alice", pw+"x", code, src1); err != ErrInvalidCredentials {
			t.Fatalf("right code, wrong password: %v", err)
		}
		e.unlock()
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, code, src1); err != nil {
			t.Fatalf("right code: %v", err)
		}
		// Replay of the same code is refused, and so is the previous step's
		// code, still inside the skew window.
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, code, src1); err != ErrInvalidCredentials {
			t.Fatalf("replayed code: %v", err)
		}
		prev := GenerateTOTP(secret, e.clk.Now().Add(-30*time.Second), 6)
		if prev != code {
			if _, err := e.m.PasswordLogin(ctx, "alice", pw, prev, src1); err != ErrInvalidCredentials {
				t.Fatalf("older step after a newer one: %v", err)
			}
		}
		// The next step's code works once.
		e.unlock()
		e.clk.Advance(30 * time.Second)
		next := GenerateTOTP(secret, e.clk.Now(), 6)
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, next, src1); err != nil {
			t.Fatalf("next step: %v", err)
		}
		// A code bound to another user's row does not open: the AAD names the user.
		var sealed []byte
		if err := st.Read(ctx, func(tx storage.Tx) error {
			return tx.QueryRow(ctx, `SELECT totp_secret FROM identity_users WHERE name = $1`, "alice").Scan(&sealed)
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.Decrypt(totpAAD("bob"), sealed); err == nil {
			t.Fatal("TOTP ciphertext opens under another user's AAD")
		}

		if err := e.m.RemoveTOTP(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, "", src1); err != nil {
			t.Fatalf("login after RemoveTOTP: %v", err)
		}
	})
}

func TestTOTPConcurrentReplay(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		if _, err := e.m.CreateUser(ctx, "alice", pw, UserOptions{}); err != nil {
			t.Fatal(err)
		}
		secretB32, _, err := e.m.EnrollTOTP(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		secret, _ := b32.DecodeString(secretB32)
		code := GenerateTOTP(secret, e.clk.Now(), 6)
		const n = 8
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := e.m.PasswordLogin(ctx, "alice", pw, code, netip.Addr{})
				errs <- err
			}()
		}
		ok := 0
		for range n {
			if err := <-errs; err == nil {
				ok++
			} else if !errors.Is(err, ErrInvalidCredentials) && !errors.Is(err, ErrThrottled) {
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("one code logged in %d times", ok)
		}
	})
}

func TestPasswordLoginThrottle(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		if _, err := e.m.CreateUser(ctx, "alice", pw, UserOptions{}); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := e.m.PasswordLogin(ctx, "alice", "wrong password!", "", src1); err != ErrInvalidCredentials {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		if len(e.lockouts) != 2 { // principal:user:alice and src:192.0.2.1
			t.Fatalf("lockouts %v", e.lockouts)
		}
		// Locked: even the right password is refused, from any source.
		_, err := e.m.PasswordLogin(ctx, "alice", pw, "", src2)
		var te *ThrottledError
		if !errors.As(err, &te) || !errors.Is(err, ErrThrottled) || te.RetryAfter != time.Second {
			t.Fatalf("right password while locked: %v", err)
		}
		// Another user from the locked source is refused too.
		if _, err := e.m.PasswordLogin(ctx, "bob", pw, "", src1); !errors.Is(err, ErrThrottled) {
			t.Fatalf("locked source: %v", err)
		}
		// The next failure doubles the lockout.
		e.clk.Advance(time.Second)
		e.m.PasswordLogin(ctx, "alice", "wrong password!", "", src2)
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, "", src2); !errors.As(err, &te) || te.RetryAfter != 2*time.Second {
			t.Fatalf("second lockout: %v", err)
		}
		e.clk.Advance(2 * time.Second)
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, "", src2); err != nil {
			t.Fatalf("after the lockout: %v", err)
		}
		// Success cleared the principal's count; one failure does not lock.
		e.m.PasswordLogin(ctx, "alice", "wrong password!", "", src2)
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, "", src2); err != nil {
			t.Fatalf("after success and one failure: %v", err)
		}
		for _, k := range e.lockouts {
			if strings.Contains(k, pw) {
				t.Fatal("lockout key carries a password")
			}
		}
	})
}

func TestSrcKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":          "src:192.0.2.1",
		"::ffff:192.0.2.1":   "src:192.0.2.1",
		"2001:db8:1:2:3::4":  "src:2001:db8:1:2::/64",
		"2001:db8:1:2:ff::1": "src:2001:db8:1:2::/64",
	} {
		if got := srcKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("srcKey(%s) = %s, want %s", in, got, want)
		}
	}
	if srcKey(netip.Addr{}) != "" {
		t.Error("invalid address has a key")
	}
}

func TestPasswordHashUpgradedOnLogin(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		e := newEnv(t, st)
		ctx := t.Context()
		if _, err := e.m.CreateUser(ctx, "alice", pw, UserOptions{}); err != nil {
			t.Fatal(err)
		}
		stored := func() string {
			var h string
			if err := st.Read(ctx, func(tx storage.Tx) error {
				return tx.QueryRow(ctx, `SELECT password_hash FROM identity_users WHERE name = $1`, "alice").Scan(&h)
			}); err != nil {
				t.Fatal(err)
			}
			return h
		}
		before := stored()
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, "", src1); err != nil {
			t.Fatal(err)
		}
		if stored() != before {
			t.Fatal("hash rewritten although its parameters are current")
		}
		e.m.params = argonParams{memory: 128, time: 1, threads: 1}
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, "", src1); err != nil {
			t.Fatal(err)
		}
		after := stored()
		if !strings.Contains(after, "$m=128,t=1,p=1$") {
			t.Fatalf("hash not upgraded: %s", after)
		}
		if _, err := e.m.PasswordLogin(ctx, "alice", pw, "", src1); err != nil {
			t.Fatalf("login with the upgraded hash: %v", err)
		}
	})
}
