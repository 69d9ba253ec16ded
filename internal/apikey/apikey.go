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
//   - Checking a key and spending it are separate steps: Authenticate
//     checks a presented key (format, checksum, lookup, revocation, expiry,
//     source address) and spends nothing; Charge spends one request of its
//     rate and one unit of its quota and records the use. The gateway
//     charges a key only once the call is authorised, so a refused call
//     costs nothing; Verify (the verify API) does both at once.
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
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/credential"
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
	ErrDisabled       = errors.New("API key is disabled")
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

// AuditFunc appends the audit entry of a change inside its transaction; id
// is the key created or changed (the successor, for a rotation).
type AuditFunc func(ctx context.Context, tx storage.Tx, id string) error

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
	Owner     string // who the key was issued to (free text: a partner, a customer id)
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
	DisabledAt   time.Time // zero: enabled; otherwise suspended since then
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

// usage is the per-node state of a cached key: its last use, not yet
// written, and whether its quota is known to be exhausted.
type usage struct {
	at    atomic.Int64 // unix nanoseconds
	addr  atomic.Pointer[netip.Addr]
	dirty atomic.Bool // queued for the next flush
	// exhaustedUntil (unix nanoseconds) is set when the quota ran out: the
	// next refill, or forever.
	exhaustedUntil atomic.Int64
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

// Status is "active", "grace" (rotated, still valid), "disabled",
// "expired" or "revoked".
func (k *Key) Status(now time.Time) string {
	switch {
	case k.Revoked(now):
		return "revoked"
	case k.Expired(now):
		return "expired"
	case !k.DisabledAt.IsZero():
		return "disabled"
	case !k.RevokedAt.IsZero():
		return "grace"
	}
	return "active"
}

// NextRefill is when the key's quota is next topped up (zero: never).
func (k *Key) NextRefill(now time.Time) time.Time {
	start := periodStart(k.Refill.Period, now)
	switch k.Refill.Period {
	case RefillDaily:
		return start.AddDate(0, 0, 1)
	case RefillMonthly:
		return start.AddDate(0, 1, 0)
	}
	return time.Time{}
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

// CreateRequest describes a key to issue.
type CreateRequest struct {
	Project, Env string
	Name         string
	Owner        string
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
	// OnNewNetwork, when set, hears of a key used from a source network
	// (NetworkOf) it was not used from in the last NetworkMemory, when it
	// had been used from another one: called after the flush that saw it.
	OnNewNetwork func(keyID, network string, at time.Time)
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

	// uses queues quota uses for group commit (quota.go).
	usesMu sync.Mutex
	uses   uses

	// dirty holds the keys used since the last flush, by id.
	dirtyMu sync.Mutex
	dirty   map[string]*Key
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
	return &Service{store: st, mac: mac, opts: opts, limiter: opts.Limiter, byID: map[string][32]byte{}, dirty: map[string]*Key{}}
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
func newID() string { return "key_" + credential.RandomBase62(20) }

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

// plan validates a request and builds the key it describes.
func (s *Service) plan(req CreateRequest) (*Key, error) {
	if err := ValidateName(req.Name); err != nil {
		return nil, err
	}
	if req.Owner != "" {
		if err := ValidateName(req.Owner); err != nil {
			return nil, fmt.Errorf("%w: owner: want up to %d bytes of UTF-8 without control characters", ErrInvalid, MaxNameBytes)
		}
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
		ID: newID(), Project: req.Project, Env: req.Env, Kind: EnvKind(req.Env), Name: req.Name, Owner: req.Owner,
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
			return audit(ctx, tx, k.ID)
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
	_, err := tx.Exec(ctx, `INSERT INTO api_keys (hash, id, project, env, kind, name, owner, scopes, meta, cidrs, created_by, created_at,
		expires_at, rate_count, rate_period, rate_burst, quota, remaining, refill, refill_amount, refilled_at, counter_id,
		revoked_at, rotated_from, rotated_to, last_used_at, last_used_addr)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, 0, $23, '', 0, '')`,
		hash, k.ID, k.Project, k.Env, k.Kind, k.Name, k.Owner, string(scopes), meta, string(cidrs), k.CreatedBy, k.CreatedAt.UnixNano(),
		nanosOrZero(k.ExpiresAt), k.Rate.Count, int64(k.Rate.Period), k.Rate.Burst, k.Quota, k.Remaining, k.Refill.Period,
		k.Refill.Amount, nanosOrZero(k.RefilledAt), k.CounterID, k.RotatedFrom)
	if err != nil {
		return fmt.Errorf("storing API key: %w", err)
	}
	return nil
}

// columns are read by scanKey. remaining comes from the counter row.
const columns = `k.hash, k.id, k.project, k.env, k.kind, k.name, k.owner, k.scopes, k.meta, k.cidrs, k.created_by, k.created_at,
	k.expires_at, k.rate_count, k.rate_period, k.rate_burst, k.quota, COALESCE(c.remaining, k.remaining), k.refill,
	k.refill_amount, COALESCE(c.refilled_at, k.refilled_at), k.counter_id, k.revoked_at, k.rotated_from, k.rotated_to,
	k.last_used_at, k.last_used_addr, k.disabled_at`

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
		disabled                             int64
	)
	err := row.Scan(&hash, &k.ID, &k.Project, &k.Env, &k.Kind, &k.Name, &k.Owner, &scopes, &meta, &cidrs, &k.CreatedBy, &created,
		&expires, &rateCount, &period, &rBurst, &quota, &remaining, &k.Refill.Period, &refillAmt, &refilled,
		&k.CounterID, &revoked, &k.RotatedFrom, &k.RotatedTo, &lastUsed, &k.LastUsedAddr, &disabled)
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
	k.DisabledAt = timeOrZero(disabled)
	return hash, &k, nil
}
