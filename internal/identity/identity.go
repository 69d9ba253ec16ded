// Package identity authenticates keyward's principals and says which
// policies they get. It does not issue tokens: internal/token turns the
// Principal returned by a login into a token.
//
// Three kinds of principal log in:
//   - users, with a password (argon2id, PHC-encoded) and optionally a TOTP
//     code (RFC 6238) whose secret is sealed by the barrier;
//   - service accounts, with a client id and a client secret of which only a
//     keyed hash (HMAC-SHA256 under a barrier-derived key) is stored; a
//     rotation keeps the previous secret valid for a grace period;
//   - workloads holding a JWT from a trusted issuer (GitHub Actions, a
//     Kubernetes service account issuer, ...), checked against the issuer's
//     JWKS, audience, expiry and bound claims.
//
// Invariants:
//   - A failed login returns ErrInvalidCredentials whatever went wrong (unknown
//     name, wrong secret, disabled principal, wrong or replayed TOTP code), and
//     an unknown user costs a password hash too, so failures do not reveal
//     which names exist.
//   - Every login consults an in-memory Throttle first; while a principal or
//     a source address is locked out no password is checked.
//   - No secret, password, TOTP code or JWT ever appears in an error message.
//   - Secrets are compared with crypto/subtle.
//
// The package reaches key material only through the small Sealer and MACer
// interfaces declared here (the barrier implements both). It is imported by
// internal/server and the HTTP handlers.
package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// Errors. Callers map them to HTTP statuses with errors.Is.
var (
	// ErrInvalidCredentials: a login failed. It never says why.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrTOTPRequired: the password was right but the user is enrolled in
	// TOTP and gave no code; a CLI prompts for one and retries.
	ErrTOTPRequired = errors.New("a TOTP code is required")
	// ErrThrottled: too many failed logins; see ThrottledError.RetryAfter.
	ErrThrottled = errors.New("too many failed login attempts")
	// ErrNotFound: the named user, service account or issuer does not exist.
	ErrNotFound = errors.New("identity not found")
	// ErrExists: the name is already taken.
	ErrExists = errors.New("identity already exists")
	// ErrInvalid: an argument is invalid; the wrapping message names the field.
	ErrInvalid = errors.New("invalid argument")
	// ErrJWKSUnavailable: the issuer's JWKS could not be fetched (503).
	ErrJWKSUnavailable = errors.New("the JWT issuer's key set is unavailable")
	// ErrDisabled: a management call on a disabled principal.
	ErrDisabled = errors.New("identity is disabled")
	// ErrSealed: the barrier is sealed, so no secret can be checked (503).
	ErrSealed = errors.New("identity: barrier is sealed")
)

// ThrottledError is returned while a login is locked out. errors.Is(err,
// ErrThrottled) holds.
type ThrottledError struct {
	// RetryAfter is how long until the lockout ends.
	RetryAfter time.Duration
}

// Error says when to retry; it names no principal or address.
func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v: retry after %v", ErrThrottled, e.RetryAfter.Round(time.Second))
}

// Unwrap returns ErrThrottled.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// Principal kinds.
const (
	KindUser    = "user"
	KindService = "service"
	KindJWT     = "jwt"
)

// Principal is who logged in and what the token issued to them may do.
type Principal struct {
	// Kind is KindUser, KindService or KindJWT.
	Kind string `json:"kind"`
	// Name is the user or service account name, or "<issuer>/<subject>" for a JWT.
	Name string `json:"name"`
	// Policies are the names of the policies granted, sorted and unique.
	Policies []string `json:"policies"`
	// TokenTTL and TokenMaxTTL bound the tokens issued to the principal.
	TokenTTL    time.Duration `json:"token_ttl"`
	TokenMaxTTL time.Duration `json:"token_max_ttl"`
	// BoundCIDRs, when set, are the only source networks tokens may be used from.
	BoundCIDRs []netip.Prefix `json:"bound_cidrs,omitempty"`
	// Metadata describes the login (for a JWT: issuer, sub and the claims
	// used by the issuer's rules). It never holds a secret.
	Metadata map[string]string `json:"metadata,omitempty"`
	// CredentialExpiresAt, when set, is when the credential that logged in
	// expires (a JWT's exp).
	CredentialExpiresAt time.Time `json:"credential_expires_at,omitzero"`
}

// ID returns the principal's identity as "<kind>:<name>", such as
// "user:alice", "service:ci" or "jwt:github/repo:acme/app:ref:refs/heads/main".
func (p *Principal) ID() string { return p.Kind + ":" + p.Name }

// Limits and defaults.
const (
	// DefaultTokenTTL and DefaultTokenMaxTTL apply when a principal sets none.
	DefaultTokenTTL    = 15 * time.Minute
	DefaultTokenMaxTTL = 8 * time.Hour
	// MaxTokenTTL caps any principal's token max TTL.
	MaxTokenTTL = 30 * 24 * time.Hour
	// MinPasswordLen is the minimum password length in characters.
	MinPasswordLen = 12
	// MaxPasswordLen is the maximum password length in bytes.
	MaxPasswordLen = 1024
	// MaxPolicies caps the policies attached to one principal or issuer.
	MaxPolicies = 64
	// maxSecretLen bounds a client secret presented to ServiceLogin.
	maxSecretLen = 256
	// DefaultListLimit and MaxListLimit size a page of ListUsers or
	// ListServices: the API's default, and the most one page may hold.
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

var (
	nameRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	policyRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

func validName(field, name string) error {
	if !nameRe.MatchString(name) {
		return invalid(field, "must match %s", nameRe)
	}
	return nil
}

// checkPage validates a list page's limit and cursor (the last name of the
// previous page, or "").
func checkPage(limit int, cursor string) error {
	if limit < 1 || limit > MaxListLimit {
		return invalid("limit", "want 1 to %d", MaxListLimit)
	}
	if cursor != "" {
		return validName("cursor", cursor)
	}
	return nil
}

// cleanPolicies validates, sorts and deduplicates policy names.
func cleanPolicies(field string, ps []string) ([]string, error) {
	if len(ps) > MaxPolicies {
		return nil, invalid(field, "at most %d policies", MaxPolicies)
	}
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if !policyRe.MatchString(p) {
			return nil, invalid(field, "policy name %q must match %s", p, policyRe)
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ttls applies the defaults and checks 0 < ttl <= maxTTL <= MaxTokenTTL.
func (m *Manager) ttls(ttl, maxTTL time.Duration) (time.Duration, time.Duration, error) {
	if ttl < 0 {
		return 0, 0, invalid("token_ttl", "must not be negative")
	}
	if maxTTL < 0 {
		return 0, 0, invalid("token_max_ttl", "must not be negative")
	}
	if maxTTL == 0 {
		maxTTL = max(m.defaultMaxTTL, ttl)
	}
	if ttl == 0 {
		ttl = min(m.defaultTTL, maxTTL)
	}
	if maxTTL > MaxTokenTTL {
		return 0, 0, invalid("token_max_ttl", "must be at most %v", MaxTokenTTL)
	}
	if ttl > maxTTL {
		return 0, 0, invalid("token_ttl", "must not exceed token_max_ttl (%v)", maxTTL)
	}
	return ttl, maxTTL, nil
}

// Sealer encrypts small values bound to their row (the barrier implements it).
type Sealer interface {
	Encrypt(aad, plaintext []byte) ([]byte, error)
	Decrypt(aad, ciphertext []byte) ([]byte, error)
}

// MACer computes a keyed hash for a purpose (the barrier implements it). MAC
// returns nil when the key is unavailable (sealed).
type MACer interface {
	MAC(purpose string, data []byte) []byte
}

// Change describes one change to an identity, for the audit log.
type Change struct {
	// Op is what happened: "create", "disable", "enable", "set_password",
	// "enroll_totp", "remove_totp", "rotate_secret", "put" or "delete".
	Op string
	// Kind is KindUser, KindService or "issuer".
	Kind string
	// Name is the identity's name.
	Name string
}

// AuditFunc appends the audit entry of a change inside the change's own
// transaction; an error rolls the change back (fail closed).
type AuditFunc func(ctx context.Context, tx storage.Tx, c Change) error

// Options configure a Manager. The zero value is usable.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnLockout is called (outside any lock) each time a throttle key is
	// locked out, so the server can audit it. Keys look like
	// "principal:user:alice" or "src:192.0.2.1".
	OnLockout func(key string)
	// Audit, when set, is called inside every management transaction.
	Audit AuditFunc
	// HTTPClient fetches JWKS documents (default: a client with a 5 s timeout).
	// Every fetch is also bounded by a 5 s context deadline.
	HTTPClient *http.Client
	// TOTPIssuer names keyward in authenticator apps (default "keyward").
	TOTPIssuer string
	// TokenTTL and TokenMaxTTL are the defaults for principals that set none
	// (default 15 min and 8 h).
	TokenTTL, TokenMaxTTL time.Duration
	// MaxConcurrentHashes bounds the password hashes computed at once, each
	// using 19 MiB (default GOMAXPROCS, at least 2).
	MaxConcurrentHashes int
	// ThrottleMaxKeys bounds the throttle's memory (default 65536 keys).
	ThrottleMaxKeys int
	// OnError, when set, hears of failures of best-effort writes that do
	// not fail the request (a service account's last login), so the
	// server can log them.
	OnError func(error)
}

// Manager authenticates users, service accounts and JWT workloads, and
// manages them. It is safe for concurrent use.
type Manager struct {
	store         storage.Store
	sealer        Sealer
	mac           MACer
	now           func() time.Time
	audit         AuditFunc
	onError       func(error)
	throttle      *Throttle
	http          *http.Client
	totpIssuer    string
	defaultTTL    time.Duration
	defaultMaxTTL time.Duration

	// params are the argon2id parameters of new hashes; tests in this
	// package lower them to stay fast.
	params  argonParams
	hashSem chan struct{}

	dummyOnce sync.Once
	dummyHash string // a hash of a random password, checked for unknown users

	jwksMu sync.Mutex
	jwks   map[string]*jwksEntry // issuer name → cached key set
}

// New returns a Manager over st. sealer seals TOTP secrets and mac keys the
// service-secret hashes; both are normally the barrier.
func New(st storage.Store, sealer Sealer, mac MACer, opts Options) *Manager {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: jwksFetchTimeout}
	}
	if opts.TOTPIssuer == "" {
		opts.TOTPIssuer = "keyward"
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.TokenMaxTTL <= 0 {
		opts.TokenMaxTTL = DefaultTokenMaxTTL
	}
	if opts.TokenTTL > opts.TokenMaxTTL {
		opts.TokenTTL = opts.TokenMaxTTL
	}
	if opts.MaxConcurrentHashes <= 0 {
		opts.MaxConcurrentHashes = max(2, runtime.GOMAXPROCS(0))
	}
	return &Manager{
		store:   st,
		sealer:  sealer,
		mac:     mac,
		now:     opts.Now,
		audit:   opts.Audit,
		onError: opts.OnError,
		throttle: NewThrottle(ThrottleOptions{
			Now:       opts.Now,
			OnLockout: opts.OnLockout,
			MaxKeys:   opts.ThrottleMaxKeys,
		}),
		http:          opts.HTTPClient,
		totpIssuer:    opts.TOTPIssuer,
		defaultTTL:    opts.TokenTTL,
		defaultMaxTTL: opts.TokenMaxTTL,
		params:        defaultParams,
		hashSem:       make(chan struct{}, opts.MaxConcurrentHashes),
		jwks:          map[string]*jwksEntry{},
	}
}

// Throttle returns the Manager's login throttle (for metrics and operator
// unlocks through Success).
func (m *Manager) Throttle() *Throttle { return m.throttle }

// record calls the audit hook, if any.
func (m *Manager) record(ctx context.Context, tx storage.Tx, op, kind, name string) error {
	if m.audit == nil {
		return nil
	}
	return m.audit(ctx, tx, Change{Op: op, Kind: kind, Name: name})
}

// throttleKeys returns the keys a login from src for principal consults.
func throttleKeys(principal string, src netip.Addr) []string {
	keys := make([]string, 0, 2)
	if principal != "" {
		keys = append(keys, "principal:"+principal)
	}
	if k := srcKey(src); k != "" {
		keys = append(keys, k)
	}
	return keys
}

// srcKey is "src:<ip>" for IPv4 and "src:<prefix>/64" for IPv6, since one
// IPv6 client commonly holds a whole /64.
func srcKey(src netip.Addr) string {
	if !src.IsValid() {
		return ""
	}
	src = src.Unmap()
	if src.Is6() {
		p, _ := src.WithZone("").Prefix(64)
		return "src:" + p.String()
	}
	return "src:" + src.String()
}

// checkThrottle returns a *ThrottledError when any key is locked out.
func (m *Manager) checkThrottle(keys []string) error {
	if d, locked := m.throttle.Check(keys...); locked {
		return &ThrottledError{RetryAfter: d}
	}
	return nil
}

// fail records a failed login against keys and returns err.
func (m *Manager) fail(keys []string, err error) error {
	m.throttle.Fail(keys...)
	return err
}

// acquireHash waits for a password-hashing slot.
func (m *Manager) acquireHash(ctx context.Context) (release func(), err error) {
	select {
	case m.hashSem <- struct{}{}:
		return func() { <-m.hashSem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func marshalList[T any](v []T) string {
	if v == nil {
		v = []T{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func unmarshalList[T any](s string) ([]T, error) {
	var v []T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("identity: corrupt list column: %w", err)
	}
	return v, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func timeOrZero(ns *int64) time.Time {
	if ns == nil {
		return time.Time{}
	}
	return time.Unix(0, *ns).UTC()
}
