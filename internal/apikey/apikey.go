// Package apikey issues, verifies, rotates and revokes client API keys: the
// long-lived credentials keyward hands to partners, third-party developers
// and server-to-server callers, usable directly on the gateway and
// verifiable by customers' own APIs.
//
// A key is a credential of type 'k' (kwk_<40 base62><6 base62 CRC32>). The
// plaintext is shown once; storage holds only HMAC-SHA256(key) under a key
// derived by the barrier, so a copy of the database cannot test guesses. Each
// key has an id (key_…, not a secret) that names it for management and, as
// an HMAC, in the audit log.
//
// Test and live keys. The environment decides a key's kind: the
// environments named prod, production or live make live keys; every other
// environment makes test keys. The kind is visible in the key itself, whose
// random part starts with "live" or "test" (kwk_live…, kwk_test…): the
// standard credential shape (internal/credential, the scanners) is kept, and
// the checksum covers the marker. The kind is also recorded with the key and
// reported everywhere as environment_kind, so neither a person reading a
// config file nor a program verifying a key can mistake one for the other.
//
// Invariants:
//   - Verification is served from an in-memory cache keyed by the hash: a
//     cached key costs a checksum, an HMAC and a map lookup. A revocation or
//     rotation evicts at once on this node and, through the events log,
//     within a poll interval on every other node. Expiry and the end of a
//     rotation's grace period are checked on every call.
//   - Quotas are counted in storage: UPDATE … SET remaining = remaining - 1
//     WHERE remaining > 0, one row per key, so concurrent callers on any
//     number of nodes never overshoot. Refills (daily, monthly; UTC) are
//     applied lazily by the first use of a new period.
//   - Rate limits are counted in memory per node (internal/ratelimit): with N
//     nodes a key may make up to N times its rate.
//   - The time and address of a key's last use are kept in memory and
//     written in batches (Flush), at most once per key per flush interval,
//     never by the request itself.
//   - A rotated key stays valid until its grace period ends and then counts
//     as revoked (revoked_at may lie in the future). It shares its quota and
//     rate with its successor.
//
// Imported by internal/server (and its HTTP handlers) only.
package apikey

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/events"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
)

// Event kinds this package appends to the events log (key: the key's id).
const (
	EventRevoke = "apikey.revoke"
	EventChange = "apikey.change"
)

// Environment kinds.
const (
	KindLive = "live"
	KindTest = "test"
)

// Limits on what a key may carry.
const (
	MaxNameBytes = 128
	MaxMetaBytes = 4096
	MaxCIDRs     = 32
	MaxTTL       = 10 * 366 * 24 * time.Hour
	MaxGrace     = 30 * 24 * time.Hour
	MaxQuota     = 1 << 50
	DefaultGrace = 24 * time.Hour
)

// Refill periods.
const (
	RefillDaily   = "daily"
	RefillMonthly = "monthly"
)

// Errors. Verification failures are distinct so the verify API can report
// a code; the gateway maps them all to 401 (429 for the rate and quota).
var (
	ErrInvalid        = errors.New("invalid argument")
	ErrNotFound       = errors.New("API key not found")
	ErrMalformed      = errors.New("not a keyward API key (want kwk_ followed by 46 letters and digits)")
	ErrExpired        = errors.New("API key has expired")
	ErrRevoked        = errors.New("API key has been revoked")
	ErrSourceDenied   = errors.New("API key may not be used from this address")
	ErrScopeDenied    = errors.New("API key's scopes do not cover this resource")
	ErrRateLimited    = errors.New("API key is over its rate limit")
	ErrUsageExceeded  = errors.New("API key has no uses left")
	ErrAlreadyRotated = errors.New("API key was already rotated")
	ErrEnvNotFound    = errors.New("environment not found")
	ErrSealed         = errors.New("keyward is sealed")
)

// MACer computes keyed hashes; the barrier implements it. It returns nil
// while sealed.
type MACer interface {
	MAC(purpose string, data []byte) []byte
}

// mac32 is the allocation-free form the barrier also offers.
type mac32 interface {
	MAC32(purpose, data string) ([32]byte, bool)
}

// AuditFunc appends the audit entry of a change inside its transaction.
type AuditFunc func(ctx context.Context, tx storage.Tx) error

// Refill tops a quota up at the start of every period (UTC).
type Refill struct {
	Period string // "", RefillDaily or RefillMonthly
	Amount int64  // what remaining is set to; 0: the key's quota
}

// Key is what keyward knows of an API key. A *Key returned by Lookup or
// Verify is shared with the cache: treat it as read-only.
type Key struct {
	ID        string
	Project   string
	Env       string
	Kind      string // KindLive or KindTest
	Name      string
	Scopes    []string
	Meta      json.RawMessage // a JSON object; nil when none
	CIDRs     []netip.Prefix
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	Rate      ratelimit.Limit
	Quota     int64 // 0: unlimited
	// Remaining is the quota left when the key was read (the counter row's).
	Remaining  int64
	Refill     Refill
	RefilledAt time.Time
	// CounterID names the key whose row counts quota and rate: ID, or the
	// successor's after a rotation.
	CounterID    string
	RevokedAt    time.Time // zero: never; in the future during a rotation's grace
	RotatedFrom  string
	RotatedTo    string
	LastUsedAt   time.Time
	LastUsedAddr string

	// IDHMAC names the key in the audit log (hex).
	IDHMAC string
	// Ext lets the server attach what it derives from the key once per cache
	// fill (its request principal), so the hot path allocates nothing.
	Ext any

	use *usage // last-use tracking of cached keys
}

// usage is the last use of a cached key, not yet written.
type usage struct {
	at    atomic.Int64 // unix nanoseconds
	addr  atomic.Pointer[netip.Addr]
	dirty atomic.Bool // queued for the next flush
}

// Resource is the key's policy resource.
func (k *Key) Resource() string { return Resource(k.Project, k.Env, k.ID) }

// Resource is the policy resource of key id in project/env.
func Resource(project, env, id string) string {
	return "projects/" + project + "/envs/" + env + "/keys/" + id
}

// Expired reports whether the key is past its expiry at now.
func (k *Key) Expired(now time.Time) bool {
	return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)
}

// Revoked reports whether the key is revoked at now (a rotated key is
// revoked once its grace period is over).
func (k *Key) Revoked(now time.Time) bool {
	return !k.RevokedAt.IsZero() && !now.Before(k.RevokedAt)
}

// Status is "active", "grace" (rotated, still valid), "expired" or "revoked".
func (k *Key) Status(now time.Time) string {
	switch {
	case k.Revoked(now):
		return "revoked"
	case k.Expired(now):
		return "expired"
	case !k.RevokedAt.IsZero():
		return "grace"
	}
	return "active"
}

// Allows reports whether the key's scopes cover resource.
func (k *Key) Allows(resource string) bool { return MatchScopes(k.Scopes, resource) }

// EnvKind is the kind of key an environment makes: live for prod,
// production and live; test for every other environment.
func EnvKind(env string) string {
	switch strings.ToLower(env) {
	case "prod", "production", "live":
		return KindLive
	}
	return KindTest
}

// KindOf reads the kind marker of a well-formed key ("" when it carries
// none, as keys made elsewhere would).
func KindOf(plaintext string) string {
	if len(plaintext) < credential.PrefixLen+4 {
		return ""
	}
	switch m := plaintext[credential.PrefixLen : credential.PrefixLen+4]; m {
	case KindLive, KindTest:
		return m
	}
	return ""
}

// CreateRequest describes a key to issue.
type CreateRequest struct {
	Project, Env string
	Name         string
	Scopes       []string
	Meta         json.RawMessage
	CIDRs        []netip.Prefix
	TTL          time.Duration // 0: never expires
	Rate         ratelimit.Limit
	Quota        int64 // 0: unlimited
	Refill       Refill
	CreatedBy    string
}

// Options tune the service.
type Options struct {
	Now       func() time.Time
	CacheSize int // default 100,000 keys
	// FlushInterval is how often last-use times are written (default 5s).
	FlushInterval time.Duration
	// Limiter counts rates (default: a new one).
	Limiter *ratelimit.Limiter
	// EnvExists reports whether project/env exists (ErrEnvNotFound, or an
	// error wrapping it, when not); nil skips the check.
	EnvExists func(ctx context.Context, project, env string) error
}

// Service issues and verifies API keys.
type Service struct {
	store   storage.Store
	mac     MACer
	opts    Options
	limiter *ratelimit.Limiter

	// OnFill, when set, is called once per cache fill so the server can
	// attach its own view of the key in Ext. Set it before serving.
	OnFill func(*Key)

	// cache maps a key's hash to *Key: sync.Map reads take no lock, so
	// concurrent verifies of one hot key do not contend. mu guards byID (the
	// cache's index by id, which also bounds its size) and fills.
	cache sync.Map
	mu    sync.Mutex
	byID  map[string][32]byte
	// gen counts evictions; a load that raced one does not fill the cache
	// with what it read before the change.
	gen atomic.Uint64

	dirtyMu sync.Mutex
	dirty   []*Key
}

// New returns an API key service.
func New(st storage.Store, mac MACer, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 100_000
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 5 * time.Second
	}
	if opts.Limiter == nil {
		opts.Limiter = ratelimit.New(ratelimit.Options{Now: opts.Now})
	}
	return &Service{store: st, mac: mac, opts: opts, limiter: opts.Limiter, byID: map[string][32]byte{}}
}

func (s *Service) hashKey(plaintext string) (key [32]byte, ok bool) {
	if m, fast := s.mac.(mac32); fast {
		return m.MAC32("apikey", plaintext)
	}
	h := s.mac.MAC("apikey", []byte(plaintext))
	if h == nil {
		return key, false
	}
	copy(key[:], h)
	return key, true
}

func (s *Service) idHMAC(id string) string {
	h := s.mac.MAC("audit/apikey", []byte(id))
	if h == nil {
		return ""
	}
	return fmt.Sprintf("%x", h[:16])
}

// newID returns "key_" and 20 random base62 characters.
func newID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [20]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%62] // the bias is irrelevant for a non-secret id
	}
	return "key_" + string(b[:])
}

// ValidID reports whether id has the shape of a key id.
func ValidID(id string) bool {
	if len(id) != 24 || !strings.HasPrefix(id, "key_") {
		return false
	}
	for i := 4; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// ValidateName checks a key's display name.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameBytes || !utf8.ValidString(name) {
		return fmt.Errorf("%w: name: want 1 to %d bytes of UTF-8", ErrInvalid, MaxNameBytes)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: name %q holds a control character", ErrInvalid, printable(name))
		}
	}
	return nil
}

// NormalizeMeta checks that meta is a JSON object of at most MaxMetaBytes
// and returns it compacted (nil for an empty input or null).
func NormalizeMeta(meta []byte) (json.RawMessage, error) {
	if len(meta) == 0 {
		return nil, nil
	}
	if len(meta) > MaxMetaBytes {
		return nil, fmt.Errorf("%w: meta is %d bytes, the limit is %d", ErrInvalid, len(meta), MaxMetaBytes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(meta, &obj); err != nil {
		return nil, fmt.Errorf("%w: meta must be a JSON object, such as {\"team\":\"x\"}", ErrInvalid)
	}
	if obj == nil {
		return nil, nil
	}
	// Re-encoding sorts the keys and compacts: one stored form.
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("%w: meta: %v", ErrInvalid, err)
	}
	return out, nil
}

// ParseRefill reads a refill period: "daily", "monthly" (or "day", "month"),
// or "" for none.
func ParseRefill(s string) (string, error) {
	switch strings.ToLower(s) {
	case "":
		return "", nil
	case "daily", "day":
		return RefillDaily, nil
	case "monthly", "month":
		return RefillMonthly, nil
	}
	return "", fmt.Errorf("%w: refill %q: want daily or monthly", ErrInvalid, printable(s))
}

// ParseDuration reads a lifetime: a Go duration ("36h", "90m"), a number
// of days ("90d") or weeks ("2w"), or "" for none.
func ParseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	bad := fmt.Errorf("%w: %s %q: want a duration such as 90d, 12h or 30m", ErrInvalid, field, printable(s))
	if n := len(s); n >= 2 && (s[n-1] == 'd' || s[n-1] == 'w') {
		num := s[:n-1]
		var v int64
		for i := 0; i < len(num); i++ {
			c := num[i]
			if c < '0' || c > '9' || v > 1e6 {
				return 0, bad
			}
			v = v*10 + int64(c-'0')
		}
		if len(num) > 1 && num[0] == '0' {
			return 0, bad
		}
		unit := 24 * time.Hour
		if s[n-1] == 'w' {
			unit *= 7
		}
		d := time.Duration(v) * unit
		if v > int64(MaxTTL/unit)+1 {
			return 0, fmt.Errorf("%w: %s %q is longer than %d days", ErrInvalid, field, printable(s), int(MaxTTL/(24*time.Hour)))
		}
		return d, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	return d, nil
}

// periodStart is the start (UTC) of the refill period holding t.
func periodStart(period string, t time.Time) time.Time {
	t = t.UTC()
	switch period {
	case RefillDaily:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	case RefillMonthly:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Time{}
}

// plan validates a request and builds the key it describes.
func (s *Service) plan(req CreateRequest) (*Key, error) {
	if err := ValidateName(req.Name); err != nil {
		return nil, err
	}
	if len(req.Scopes) == 0 {
		return nil, fmt.Errorf("%w: a key needs at least one scope, such as integrations/maps", ErrInvalid)
	}
	if len(req.Scopes) > MaxScopes {
		return nil, fmt.Errorf("%w: at most %d scopes", ErrInvalid, MaxScopes)
	}
	var scopes []string
	for _, sc := range req.Scopes {
		if err := ValidateScope(sc); err != nil {
			return nil, err
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	meta, err := NormalizeMeta(req.Meta)
	if err != nil {
		return nil, err
	}
	if len(req.CIDRs) > MaxCIDRs {
		return nil, fmt.Errorf("%w: at most %d CIDRs", ErrInvalid, MaxCIDRs)
	}
	cidrs := make([]netip.Prefix, 0, len(req.CIDRs))
	for _, c := range req.CIDRs {
		if !c.IsValid() {
			return nil, fmt.Errorf("%w: invalid CIDR", ErrInvalid)
		}
		cidrs = append(cidrs, c.Masked())
	}
	if req.TTL < 0 || req.TTL > MaxTTL {
		return nil, fmt.Errorf("%w: ttl must be between 0 (never expires) and %d days", ErrInvalid, int(MaxTTL/(24*time.Hour)))
	}
	if err := req.Rate.Valid(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if req.Quota < 0 || req.Quota > MaxQuota {
		return nil, fmt.Errorf("%w: quota must be between 0 (unlimited) and %d", ErrInvalid, int64(MaxQuota))
	}
	refill := req.Refill
	if refill.Period, err = ParseRefill(refill.Period); err != nil {
		return nil, err
	}
	switch {
	case refill.Period == "" && refill.Amount != 0:
		return nil, fmt.Errorf("%w: a refill amount needs a refill period (daily or monthly)", ErrInvalid)
	case refill.Period != "" && req.Quota == 0:
		return nil, fmt.Errorf("%w: a refill needs a quota", ErrInvalid)
	case refill.Amount < 0 || refill.Amount > MaxQuota:
		return nil, fmt.Errorf("%w: refill amount must be between 1 and %d", ErrInvalid, int64(MaxQuota))
	case refill.Period != "" && refill.Amount == 0:
		refill.Amount = req.Quota
	}
	now := s.opts.Now().UTC().Truncate(time.Microsecond)
	k := &Key{
		ID: newID(), Project: req.Project, Env: req.Env, Kind: EnvKind(req.Env), Name: req.Name,
		Scopes: scopes, Meta: meta, CIDRs: cidrs, CreatedBy: req.CreatedBy, CreatedAt: now,
		Rate: req.Rate, Quota: req.Quota, Remaining: req.Quota, Refill: refill,
	}
	k.CounterID = k.ID
	if refill.Period != "" {
		k.RefilledAt = periodStart(refill.Period, now)
	}
	if req.TTL > 0 {
		k.ExpiresAt = now.Add(req.TTL)
	}
	return k, nil
}

// newPlaintext returns a fresh key of kind, marked with it.
func newPlaintext(kind string) string {
	return credential.NewMarked(credential.APIKey, kind)
}

// Create issues a key and returns its plaintext, shown once. The key row
// and the audit entry commit in one transaction.
func (s *Service) Create(ctx context.Context, req CreateRequest, audit AuditFunc) (string, *Key, error) {
	k, err := s.plan(req)
	if err != nil {
		return "", nil, err
	}
	if s.opts.EnvExists != nil {
		if err := s.opts.EnvExists(ctx, req.Project, req.Env); err != nil {
			return "", nil, err
		}
	}
	plaintext := newPlaintext(k.Kind)
	hash, ok := s.hashKey(plaintext)
	if !ok {
		return "", nil, ErrSealed
	}
	err = s.store.Write(ctx, func(tx storage.Tx) error {
		if err := insert(ctx, tx, hash[:], k); err != nil {
			return err
		}
		if audit != nil {
			return audit(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	k.IDHMAC = s.idHMAC(k.ID)
	return plaintext, k, nil
}

func nanosOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeOrZero(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func insert(ctx context.Context, tx storage.Tx, hash []byte, k *Key) error {
	scopes, _ := json.Marshal(k.Scopes)
	cidrs, _ := json.Marshal(k.CIDRs)
	meta := "{}"
	if k.Meta != nil {
		meta = string(k.Meta)
	}
	_, err := tx.Exec(ctx, `INSERT INTO api_keys (hash, id, project, env, kind, name, scopes, meta, cidrs, created_by, created_at,
		expires_at, rate_count, rate_period, rate_burst, quota, remaining, refill, refill_amount, refilled_at, counter_id,
		revoked_at, rotated_from, rotated_to, last_used_at, last_used_addr)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, 0, $22, '', 0, '')`,
		hash, k.ID, k.Project, k.Env, k.Kind, k.Name, string(scopes), meta, string(cidrs), k.CreatedBy, k.CreatedAt.UnixNano(),
		nanosOrZero(k.ExpiresAt), k.Rate.Count, int64(k.Rate.Period), k.Rate.Burst, k.Quota, k.Remaining, k.Refill.Period,
		k.Refill.Amount, nanosOrZero(k.RefilledAt), k.CounterID, k.RotatedFrom)
	if err != nil {
		return fmt.Errorf("storing API key: %w", err)
	}
	return nil
}

// columns are read by scanKey. remaining comes from the counter row.
const columns = `k.hash, k.id, k.project, k.env, k.kind, k.name, k.scopes, k.meta, k.cidrs, k.created_by, k.created_at,
	k.expires_at, k.rate_count, k.rate_period, k.rate_burst, k.quota, COALESCE(c.remaining, k.remaining), k.refill,
	k.refill_amount, COALESCE(c.refilled_at, k.refilled_at), k.counter_id, k.revoked_at, k.rotated_from, k.rotated_to,
	k.last_used_at, k.last_used_addr`

const from = ` FROM api_keys k LEFT JOIN api_keys c ON c.id = k.counter_id `

// lockKey locks the key's row (not its counter's) for the transaction.
func lockKey(tx storage.Tx) string {
	if tx.LockForUpdate() == "" {
		return ""
	}
	return tx.LockForUpdate() + " OF k"
}

type scanner interface{ Scan(dest ...any) error }

func scanKey(row scanner) ([]byte, *Key, error) {
	var (
		hash                                 []byte
		k                                    Key
		scopes, meta, cidrs                  string
		created, expires, period, refilled   int64
		revoked, lastUsed, rateCount, rBurst int64
		quota, remaining, refillAmt          int64
	)
	err := row.Scan(&hash, &k.ID, &k.Project, &k.Env, &k.Kind, &k.Name, &scopes, &meta, &cidrs, &k.CreatedBy, &created,
		&expires, &rateCount, &period, &rBurst, &quota, &remaining, &k.Refill.Period, &refillAmt, &refilled,
		&k.CounterID, &revoked, &k.RotatedFrom, &k.RotatedTo, &lastUsed, &k.LastUsedAddr)
	if err != nil {
		return nil, nil, err
	}
	if err := errors.Join(json.Unmarshal([]byte(scopes), &k.Scopes), json.Unmarshal([]byte(cidrs), &k.CIDRs)); err != nil {
		return nil, nil, fmt.Errorf("API key %s: corrupt row: %w", k.ID, err)
	}
	if meta != "{}" && meta != "" {
		k.Meta = json.RawMessage(meta)
	}
	k.CreatedAt, k.ExpiresAt = timeOrZero(created), timeOrZero(expires)
	k.Rate = ratelimit.Limit{Count: int(rateCount), Period: time.Duration(period), Burst: int(rBurst)}
	k.Quota, k.Remaining, k.Refill.Amount = quota, remaining, refillAmt
	k.RefilledAt, k.RevokedAt, k.LastUsedAt = timeOrZero(refilled), timeOrZero(revoked), timeOrZero(lastUsed)
	return hash, &k, nil
}

// Result is what a successful Check reports besides the key.
type Result struct {
	// Rate is the rate-limit decision (zero Limit: the key has no rate).
	Rate ratelimit.Decision
	// Remaining is the quota left after this use; -1 when unlimited.
	Remaining int64
}

// CheckOptions qualify a verification.
type CheckOptions struct {
	// Peek reports the key's state without consuming a use of its rate or
	// quota, and without recording a use.
	Peek bool
	// Resource, when set, must be covered by the key's scopes.
	Resource string
}

// Verify checks a presented key for use from src and consumes one use of
// its rate and quota: Lookup then Check.
func (s *Service) Verify(ctx context.Context, plaintext string, src netip.Addr) (*Key, Result, error) {
	k, err := s.Lookup(ctx, plaintext)
	if err != nil {
		return nil, Result{}, err
	}
	res, err := s.Check(ctx, k, src, CheckOptions{})
	return k, res, err
}

// Lookup finds the key a plaintext names. The format and checksum are
// checked before anything else, so a typo costs no lookup. It checks
// nothing about the key's state: call Check.
func (s *Service) Lookup(ctx context.Context, plaintext string) (*Key, error) {
	if err := credential.ParseType(plaintext, credential.APIKey); err != nil {
		return nil, ErrMalformed
	}
	hash, ok := s.hashKey(plaintext)
	if !ok {
		return nil, ErrSealed
	}
	if k, ok := s.cache.Load(hash); ok {
		return k.(*Key), nil
	}
	return s.load(ctx, hash)
}

// Check decides whether k may be used now from src: revocation (and the end
// of a grace period), expiry, source address, scope, then rate and quota,
// each consumed only when everything before it passed.
func (s *Service) Check(ctx context.Context, k *Key, src netip.Addr, opts CheckOptions) (Result, error) {
	now := s.opts.Now()
	res := Result{Remaining: -1}
	switch {
	case k.Revoked(now):
		return res, ErrRevoked
	case k.Expired(now):
		return res, ErrExpired
	case len(k.CIDRs) > 0 && !addrAllowed(k.CIDRs, src):
		return res, ErrSourceDenied
	case opts.Resource != "" && !k.Allows(opts.Resource):
		return res, ErrScopeDenied
	}
	if opts.Peek {
		res.Rate = s.limiter.Peek(k.CounterID, k.Rate)
		if k.Quota > 0 {
			rem, err := s.remaining(ctx, k, now)
			if err != nil {
				return res, err
			}
			res.Remaining = rem
		}
		return res, nil
	}
	res.Rate = s.limiter.AllowAt(k.CounterID, k.Rate, now)
	if !res.Rate.Allowed {
		return res, ErrRateLimited
	}
	if k.Quota > 0 {
		rem, err := s.consume(ctx, k, now)
		if err != nil {
			return res, err
		}
		res.Remaining = rem
	}
	s.recordUse(k, now, src)
	return res, nil
}

func addrAllowed(cidrs []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, c := range cidrs {
		if c.Contains(a) {
			return true
		}
	}
	return false
}

// consume counts one use against the key's quota in storage, refilling
// first when a new period began.
func (s *Service) consume(ctx context.Context, k *Key, now time.Time) (int64, error) {
	for attempt := 0; ; attempt++ {
		rem, ok, err := s.decrement(ctx, k, now)
		if err != nil || ok {
			return rem, err
		}
		// Nothing was counted: exhausted, or the key changed (revoked or
		// rotated on another node). Storage says which.
		s.evictID(k.ID)
		fresh, err := s.loadID(ctx, k.ID)
		if err != nil {
			return 0, err
		}
		switch {
		case fresh.Revoked(now):
			return 0, ErrRevoked
		case fresh.CounterID != k.CounterID && attempt == 0:
			k = fresh
			continue
		}
		return 0, ErrUsageExceeded
	}
}

func (s *Service) decrement(ctx context.Context, k *Key, now time.Time) (rem int64, ok bool, err error) {
	// The presented key ($2) must still be unrevoked in storage: a quota
	// key is revoked everywhere at once, not after the next poll.
	const live = ` AND EXISTS (SELECT 1 FROM api_keys s WHERE s.id = $2 AND (s.revoked_at = 0 OR s.revoked_at > $3)) RETURNING remaining`
	err = s.store.Write(ctx, func(tx storage.Tx) error {
		if k.Refill.Period != "" {
			start := periodStart(k.Refill.Period, now).UnixNano()
			err := tx.QueryRow(ctx, `UPDATE api_keys SET remaining = refill_amount - 1, refilled_at = $4
				WHERE id = $1 AND refilled_at < $4 AND refill_amount > 0`+live, k.CounterID, k.ID, now.UnixNano(), start).Scan(&rem)
			if err == nil {
				ok = true
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		err := tx.QueryRow(ctx, `UPDATE api_keys SET remaining = remaining - 1 WHERE id = $1 AND remaining > 0`+live,
			k.CounterID, k.ID, now.UnixNano()).Scan(&rem)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		ok = err == nil
		return err
	})
	return rem, ok, err
}

// remaining reads the quota left without consuming (applying a due refill
// in the answer only).
func (s *Service) remaining(ctx context.Context, k *Key, now time.Time) (int64, error) {
	var rem, refilled, amount int64
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT remaining, refilled_at, refill_amount FROM api_keys WHERE id = $1`, k.CounterID).Scan(&rem, &refilled, &amount)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	if k.Refill.Period != "" && refilled < periodStart(k.Refill.Period, now).UnixNano() {
		rem = amount
	}
	return rem, nil
}

// load reads a key by hash and caches it.
func (s *Service) load(ctx context.Context, hash [32]byte) (*Key, error) {
	gen := s.gen.Load()
	var k *Key
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		var err error
		_, k, err = scanKey(tx.QueryRow(ctx, `SELECT `+columns+from+`WHERE k.hash = $1`, hash[:]))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	k.IDHMAC = s.idHMAC(k.ID)
	k.use = &usage{}
	s.put(hash, k, gen)
	return k, nil
}

// loadID reads a key by id, uncached.
func (s *Service) loadID(ctx context.Context, id string) (*Key, error) {
	var k *Key
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		var err error
		_, k, err = scanKey(tx.QueryRow(ctx, `SELECT `+columns+from+`WHERE k.id = $1`, id))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	k.IDHMAC = s.idHMAC(k.ID)
	s.overlayUse(k)
	return k, nil
}

// put caches k unless an eviction happened since gen was read.
func (s *Service) put(hash [32]byte, k *Key, gen uint64) {
	if s.OnFill != nil {
		s.OnFill(k)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen.Load() != gen {
		return
	}
	if len(s.byID) >= s.opts.CacheSize {
		// Evict an arbitrary tenth: map order is random enough, and a
		// reload costs one indexed read. Pending last-use times stay queued.
		n := 0
		for id, h := range s.byID {
			s.cache.Delete(h)
			delete(s.byID, id)
			if n++; n >= s.opts.CacheSize/10+1 {
				break
			}
		}
	}
	s.cache.Store(hash, k)
	s.byID[k.ID] = hash
}

// evictID drops a key from this node's cache.
func (s *Service) evictID(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen.Add(1)
	if h, ok := s.byID[id]; ok {
		s.cache.Delete(h)
		delete(s.byID, id)
	}
}

// Purge empties the cache (on seal).
func (s *Service) Purge() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen.Add(1)
	s.cache.Clear()
	clear(s.byID)
}

// HandleEvent applies an event from another node (or this one).
func (s *Service) HandleEvent(e events.Event) {
	if e.Kind == EventRevoke || e.Kind == EventChange {
		s.evictID(e.Key)
	}
}

// recordUse notes a use in memory; Flush writes it. A key is queued once
// per flush however often it is used; a use from the same address as the
// last allocates nothing.
func (s *Service) recordUse(k *Key, now time.Time, src netip.Addr) {
	u := k.use
	if u == nil {
		return
	}
	// Stores only when the time moved by a millisecond: a hot key's cache
	// line is then mostly read, not bounced between cores.
	if ns := now.UnixNano(); ns-u.at.Load() >= int64(time.Millisecond) {
		u.at.Store(ns)
	}
	if p := u.addr.Load(); p == nil || *p != src {
		a := src
		u.addr.Store(&a)
	}
	if !u.dirty.Load() && u.dirty.CompareAndSwap(false, true) {
		s.dirtyMu.Lock()
		s.dirty = append(s.dirty, k)
		s.dirtyMu.Unlock()
	}
}

// overlayUse shows a cached key's unwritten last use on a key read from
// storage.
func (s *Service) overlayUse(k *Key) {
	s.mu.Lock()
	h, ok := s.byID[k.ID]
	s.mu.Unlock()
	if !ok {
		return
	}
	v, ok := s.cache.Load(h)
	if !ok {
		return
	}
	c := v.(*Key)
	if c.use == nil {
		return
	}
	if at := c.use.at.Load(); at > 0 && at > nanosOrZero(k.LastUsedAt) {
		k.LastUsedAt = time.Unix(0, at).UTC()
		if p := c.use.addr.Load(); p != nil {
			k.LastUsedAddr = addrString(*p)
		}
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Flush writes the queued last uses in one transaction.
func (s *Service) Flush(ctx context.Context) error {
	s.dirtyMu.Lock()
	batch := s.dirty
	s.dirty = nil
	s.dirtyMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	type row struct {
		id   string
		at   int64
		addr string
	}
	rows := make([]row, 0, len(batch))
	for _, k := range batch {
		k.use.dirty.Store(false)
		r := row{id: k.ID, at: k.use.at.Load()}
		if p := k.use.addr.Load(); p != nil {
			r.addr = addrString(*p)
		}
		rows = append(rows, r)
	}
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		for _, r := range rows {
			if _, err := tx.Exec(ctx, `UPDATE api_keys SET last_used_at = $1, last_used_addr = $2 WHERE id = $3 AND last_used_at < $1`, r.at, r.addr, r.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Queue them again for the next flush.
		for _, k := range batch {
			s.recordRequeue(k)
		}
	}
	return err
}

func (s *Service) recordRequeue(k *Key) {
	if k.use.dirty.CompareAndSwap(false, true) {
		s.dirtyMu.Lock()
		s.dirty = append(s.dirty, k)
		s.dirtyMu.Unlock()
	}
}

// Run flushes last uses every flush interval until ctx is done, then once
// more. onErr, when set, hears about failed flushes.
func (s *Service) Run(ctx context.Context, onErr func(error)) {
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := s.Flush(context.WithoutCancel(ctx)); err != nil && onErr != nil {
				onErr(err)
			}
			return
		case <-t.C:
		}
		if err := s.Flush(ctx); err != nil && onErr != nil {
			onErr(err)
		}
	}
}

// Get returns key id of project/env.
func (s *Service) Get(ctx context.Context, project, env, id string) (*Key, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	k, err := s.loadID(ctx, id)
	if err != nil {
		return nil, err
	}
	if k.Project != project || k.Env != env {
		return nil, ErrNotFound
	}
	return k, nil
}

// List returns up to limit keys of project/env with ids after cursor, by id.
func (s *Service) List(ctx context.Context, project, env string, limit int, cursor string) ([]*Key, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	var out []*Key
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+columns+from+`WHERE k.project = $1 AND k.env = $2 AND k.id > $3 ORDER BY k.id LIMIT $4`,
			project, env, cursor, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			_, k, err := scanKey(rows)
			if err != nil {
				return err
			}
			out = append(out, k)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	for _, k := range out {
		k.IDHMAC = s.idHMAC(k.ID)
		s.overlayUse(k)
	}
	return out, nil
}

// Revoke revokes key id of project/env now (ending a rotation's grace
// period early). Revoking a revoked key changes nothing.
func (s *Service) Revoke(ctx context.Context, project, env, id string, audit AuditFunc) (*Key, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	var k *Key
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		var err error
		_, k, err = scanKey(tx.QueryRow(ctx, `SELECT `+columns+from+`WHERE k.id = $1`+lockKey(tx), id))
		if errors.Is(err, sql.ErrNoRows) || err == nil && (k.Project != project || k.Env != env) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		now := s.opts.Now().UTC()
		if !k.Revoked(now) {
			k.RevokedAt = now
			if _, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE id = $2`, now.UnixNano(), id); err != nil {
				return err
			}
			if err := events.Append(ctx, tx, EventRevoke, id); err != nil {
				return err
			}
		}
		if audit != nil {
			return audit(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.evictID(id)
	k.IDHMAC = s.idHMAC(k.ID)
	return k, nil
}

// Rotate issues a successor of key id with the same settings (a key with a
// lifetime gets its full lifetime again from now) and keeps the old key
// valid for grace (0: revoked at once). Both share one quota and one rate
// until the old key's grace ends. It returns the successor's plaintext.
func (s *Service) Rotate(ctx context.Context, project, env, id string, grace time.Duration, by string, audit AuditFunc) (string, *Key, *Key, error) {
	if !ValidID(id) {
		return "", nil, nil, ErrNotFound
	}
	if grace < 0 || grace > MaxGrace {
		return "", nil, nil, fmt.Errorf("%w: grace must be between 0 and %d days", ErrInvalid, int(MaxGrace/(24*time.Hour)))
	}
	var old, next *Key
	var plaintext string
	var changed []string
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		var err error
		_, old, err = scanKey(tx.QueryRow(ctx, `SELECT `+columns+from+`WHERE k.id = $1`+lockKey(tx), id))
		if errors.Is(err, sql.ErrNoRows) || err == nil && (old.Project != project || old.Env != env) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		now := s.opts.Now().UTC().Truncate(time.Microsecond)
		switch {
		case old.RotatedTo != "":
			return fmt.Errorf("%w: rotate its successor %s instead", ErrAlreadyRotated, old.RotatedTo)
		case old.Revoked(now):
			return ErrRevoked
		case old.Expired(now):
			return ErrExpired
		}
		next = &Key{
			ID: newID(), Project: old.Project, Env: old.Env, Kind: old.Kind, Name: old.Name, Scopes: old.Scopes,
			Meta: old.Meta, CIDRs: old.CIDRs, CreatedBy: by, CreatedAt: now, Rate: old.Rate, Quota: old.Quota,
			Remaining: old.Remaining, Refill: old.Refill, RefilledAt: old.RefilledAt, RotatedFrom: old.ID,
		}
		next.CounterID = next.ID
		if !old.ExpiresAt.IsZero() {
			next.ExpiresAt = now.Add(old.ExpiresAt.Sub(old.CreatedAt))
		}
		plaintext = newPlaintext(next.Kind)
		hash, ok := s.hashKey(plaintext)
		if !ok {
			return ErrSealed
		}
		if err := insert(ctx, tx, hash[:], next); err != nil {
			return err
		}
		end := now.Add(grace)
		if !old.RevokedAt.IsZero() && old.RevokedAt.Before(end) {
			end = old.RevokedAt
		}
		old.RevokedAt, old.RotatedTo = end, next.ID
		// The old key, and its own predecessors still in grace, now count
		// against the successor's row.
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $1, rotated_to = $2, remaining = 0 WHERE id = $3`, end.UnixNano(), next.ID, old.ID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id FROM api_keys WHERE counter_id = $1`, old.ID)
		if err != nil {
			return err
		}
		changed = changed[:0]
		for rows.Next() {
			var cid string
			if err := rows.Scan(&cid); err != nil {
				rows.Close()
				return err
			}
			changed = append(changed, cid)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET counter_id = $1 WHERE counter_id = $2`, next.ID, old.ID); err != nil {
			return err
		}
		old.CounterID = next.ID
		for _, cid := range changed {
			if err := events.Append(ctx, tx, EventChange, cid); err != nil {
				return err
			}
		}
		if audit != nil {
			return audit(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return "", nil, nil, err
	}
	for _, cid := range changed {
		s.evictID(cid)
	}
	old.IDHMAC, next.IDHMAC = s.idHMAC(old.ID), s.idHMAC(next.ID)
	return plaintext, next, old, nil
}

// Tidy deletes keys that expired or were revoked more than keep ago.
func (s *Service) Tidy(ctx context.Context, keep time.Duration) (int64, error) {
	cutoff := s.opts.Now().Add(-keep).UnixNano()
	var n int64
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM api_keys WHERE ((expires_at > 0 AND expires_at < $1) OR (revoked_at > 0 AND revoked_at < $1))
			AND NOT EXISTS (SELECT 1 FROM api_keys o WHERE o.counter_id = api_keys.id AND o.id <> api_keys.id)`, cutoff)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
