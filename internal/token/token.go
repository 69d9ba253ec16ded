// Package token issues, verifies, renews and revokes keyward access tokens.
//
// A token is a credential of type 't' (kwt_<40 base62><6 base62 CRC32>). The
// plaintext is shown once; storage holds only HMAC-SHA256(token) under a key
// derived by the barrier, so a copy of the database cannot test guesses.
// Every token has an accessor: a random, non-secret id used to manage it
// (lookup, revoke) and, HMAC'd, to name it in the audit log.
//
// Tokens form a tree: a token created with another token is its child, can
// hold no policy its parent lacks and cannot outlive it, and is revoked with
// it. Verification is served from an in-memory cache keyed by the hash, so the
// hot path touches memory only; a revocation evicts at once on this node and,
// through the events log, within a poll interval on every other node. An
// expired token fails even when cached: the expiry is checked on every call.
// Tokens with a use limit are counted in storage on every use and never
// served from the cache.
//
// A token may carry a rate limit (Rate). This package stores it, caches it
// with the token and keeps a child's within its parent's; counting the
// token's requests against it is the HTTP edge's (internal/server), in
// memory on each node.
package token

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/events"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
)

// Event kinds this package appends to the events log.
const (
	EventRevoke = "token.revoke" // key: accessor
	EventRenew  = "token.renew"  // key: accessor
)

// RootPolicy is the policy name that allows everything.
const RootPolicy = "root"

// Errors. Verification failures are deliberately coarse towards clients;
// the server maps them all to 401.
var (
	ErrInvalid          = errors.New("token is invalid")
	ErrExpired          = errors.New("token has expired")
	ErrRevoked          = errors.New("token has been revoked")
	ErrSourceNotAllowed = errors.New("token may not be used from this address")
	ErrUsesExhausted    = errors.New("token has no uses left")
	ErrNotFound         = errors.New("token not found")
	ErrExceedsParent    = errors.New("requested token exceeds its parent")
	ErrBadRequest       = errors.New("invalid token request")
	ErrSealed           = errors.New("keyward is sealed")
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

// Token is what keyward knows of an access token. A *Token returned by Verify
// is shared with the cache: treat it as read-only.
type Token struct {
	Accessor     string            `json:"accessor"`
	Parent       string            `json:"parent,omitempty"` // parent's accessor
	Principal    string            `json:"principal"`        // "root", "user:alice", "service:ci", ...
	AuthMethod   string            `json:"auth_method"`      // root, password, service, jwt, token
	Policies     []string          `json:"policies"`
	BoundEnvs    []string          `json:"bound_envs,omitempty"`
	BoundCIDRs   []netip.Prefix    `json:"bound_cidrs,omitempty"`
	Meta         map[string]string `json:"meta,omitempty"`
	TTL          time.Duration     `json:"-"` // renewal increment
	MaxUses      int               `json:"max_uses,omitempty"`
	Uses         int               `json:"uses,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
	ExpiresAt    time.Time         `json:"expires_at,omitzero"`     // zero: never
	MaxExpiresAt time.Time         `json:"max_expires_at,omitzero"` // zero: never
	RevokedAt    time.Time         `json:"revoked_at,omitzero"`
	// JKT, when set, binds the token to a client key (DPoP, RFC 9449): the
	// RFC 7638 thumbprint of the key every request must carry a proof from.
	JKT string `json:"jkt,omitempty"`
	// Rate limits the requests the token makes (zero: no limit of its own).
	Rate ratelimit.Limit `json:"-"`

	// AccessorHMAC names the token in the audit log (hex).
	AccessorHMAC string `json:"-"`
	// Ext lets the server attach what it derives from the token once per
	// cache fill (its request principal), so the hot path allocates nothing.
	Ext any `json:"-"`
}

// IsRoot reports whether the token holds the root policy.
func (t *Token) IsRoot() bool { return slices.Contains(t.Policies, RootPolicy) }

// Expired reports whether the token is past its expiry at now.
func (t *Token) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// Renewable reports whether renewing can extend the token.
func (t *Token) Renewable() bool {
	return t.TTL > 0 && (t.MaxExpiresAt.IsZero() || t.ExpiresAt.Before(t.MaxExpiresAt))
}

// Request describes a token to issue.
type Request struct {
	// Parent is the token creating this one; nil for a login.
	Parent     *Token
	Principal  string
	AuthMethod string
	Policies   []string
	TTL        time.Duration // 0: the default
	MaxTTL     time.Duration // 0: the default (or the parent's remaining max)
	BoundEnvs  []string
	BoundCIDRs []netip.Prefix
	MaxUses    int
	// Meta describes the token. A login's is the server's (a JWT's issuer
	// and claims, a service's client_id); a child's (Parent set) is its
	// creator's, bounded by MaxMetaEntries, MaxMetaKeyLen and
	// MaxMetaValueLen. A child does not inherit its parent's meta.
	Meta map[string]string
	// JKT binds the token to a client key (DPoP). A child of a bound token
	// is bound to the same key whatever it asks.
	JKT string
	// Rate limits the token's requests (zero: none, or the parent's). A
	// child's rate must be within its parent's (ratelimit.Limit.Within).
	Rate ratelimit.Limit
}

// Options tune the service.
type Options struct {
	DefaultTTL time.Duration // default 15m
	MaxTTL     time.Duration // default 8h; no token outlives it (except root)
	CacheSize  int           // default 100,000 tokens
	Now        func() time.Time
}

// Service issues and verifies tokens.
type Service struct {
	store storage.Store
	mac   MACer
	opts  Options

	// OnFill, when set, is called once per cache fill so the server can
	// attach its own view of the token in Ext. Set it before serving.
	OnFill func(*Token)

	mu         sync.RWMutex
	cache      map[[32]byte]*Token
	byAccessor map[string][32]byte
}

// New returns a token service.
func New(st storage.Store, mac MACer, opts Options) *Service {
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = 15 * time.Minute
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = 8 * time.Hour
	}
	if opts.DefaultTTL > opts.MaxTTL {
		opts.DefaultTTL = opts.MaxTTL
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 100_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{store: st, mac: mac, opts: opts, cache: map[[32]byte]*Token{}, byAccessor: map[string][32]byte{}}
}

// Hash is the stored form of a token.
func (s *Service) Hash(plaintext string) ([]byte, error) {
	h := s.mac.MAC("token", []byte(plaintext))
	if h == nil {
		return nil, ErrSealed
	}
	return h, nil
}

func (s *Service) accessorHMAC(accessor string) string {
	h := s.mac.MAC("audit/accessor", []byte(accessor))
	if h == nil {
		return ""
	}
	return fmt.Sprintf("%x", h[:16])
}

// newAccessor returns a random 24-character base62 id.
func newAccessor() string { return credential.RandomBase62(24) }

// Issue creates a token and returns its plaintext, shown once. The token row
// and the audit entry commit in one transaction: one storage write.
func (s *Service) Issue(ctx context.Context, req Request, audit AuditFunc) (string, *Token, error) {
	var plaintext string
	var t *Token
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		var err error
		if plaintext, t, err = s.IssueTx(ctx, tx, req); err != nil {
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
	return plaintext, t, nil
}

// IssueTx is Issue inside the caller's write transaction: the token exists
// once tx commits (and never if it rolls back).
func (s *Service) IssueTx(ctx context.Context, tx storage.Tx, req Request) (string, *Token, error) {
	t, err := s.plan(req)
	if err != nil {
		return "", nil, err
	}
	plaintext := credential.New(credential.AccessToken)
	hash, err := s.Hash(plaintext)
	if err != nil {
		return "", nil, err
	}
	if err := s.insert(ctx, tx, hash, t); err != nil {
		return "", nil, err
	}
	t.AccessorHMAC = s.accessorHMAC(t.Accessor)
	return plaintext, t, nil
}

// plan validates a request against the defaults and the parent.
func (s *Service) plan(req Request) (*Token, error) {
	now := s.opts.Now().UTC().Truncate(time.Microsecond)
	if req.Principal == "" || req.AuthMethod == "" {
		return nil, fmt.Errorf("%w: principal and auth method are required", ErrBadRequest)
	}
	if req.TTL < 0 || req.MaxTTL < 0 || req.MaxUses < 0 {
		return nil, fmt.Errorf("%w: ttl, max ttl and max uses cannot be negative", ErrBadRequest)
	}
	for _, e := range req.BoundEnvs {
		if e == "" || strings.Count(e, "/") > 1 {
			return nil, fmt.Errorf("%w: bound environment %q must be ENV or PROJECT/ENV", ErrBadRequest, e)
		}
	}
	if err := req.Rate.Valid(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if req.Rate.Burst != 0 {
		return nil, fmt.Errorf("%w: rate: a token's burst is its count", ErrBadRequest)
	}
	if req.Parent != nil {
		if err := checkMeta(req.Meta); err != nil {
			return nil, err
		}
	}
	t := &Token{
		Accessor: newAccessor(), Principal: req.Principal, AuthMethod: req.AuthMethod,
		Policies: dedupe(req.Policies), BoundEnvs: dedupe(req.BoundEnvs), BoundCIDRs: req.BoundCIDRs,
		Meta: maps.Clone(req.Meta), MaxUses: req.MaxUses, CreatedAt: now, JKT: req.JKT, Rate: req.Rate,
	}
	if len(t.JKT) > maxJKTLen {
		return nil, fmt.Errorf("%w: jkt is longer than %d bytes", ErrBadRequest, maxJKTLen)
	}
	maxTTL := s.opts.MaxTTL
	if req.MaxTTL > 0 {
		if req.MaxTTL > s.opts.MaxTTL {
			return nil, fmt.Errorf("%w: max ttl %s exceeds the server's maximum %s", ErrBadRequest, req.MaxTTL, s.opts.MaxTTL)
		}
		maxTTL = req.MaxTTL
	}
	ttl := s.opts.DefaultTTL
	if req.TTL > 0 {
		ttl = req.TTL
	}
	if ttl > maxTTL {
		return nil, fmt.Errorf("%w: ttl %s exceeds the maximum %s", ErrBadRequest, ttl, maxTTL)
	}
	t.TTL = ttl
	t.ExpiresAt = now.Add(ttl)
	t.MaxExpiresAt = now.Add(maxTTL)

	if p := req.Parent; p != nil {
		t.Parent = p.Accessor
		if len(req.Policies) == 0 {
			t.Policies = slices.Clone(p.Policies)
		}
		if !p.IsRoot() {
			for _, pol := range t.Policies {
				if !slices.Contains(p.Policies, pol) {
					return nil, fmt.Errorf("%w: the parent token does not hold policy %q", ErrExceedsParent, pol)
				}
			}
		}
		if !p.ExpiresAt.IsZero() {
			if req.TTL == 0 && t.ExpiresAt.After(p.ExpiresAt) {
				// No TTL asked for: the default, cut to the parent's life.
				t.ExpiresAt = p.ExpiresAt
			}
			if t.ExpiresAt.After(p.ExpiresAt) {
				return nil, fmt.Errorf("%w: ttl %s outlives the parent token, which expires in %s", ErrExceedsParent, ttl, p.ExpiresAt.Sub(now).Round(time.Second))
			}
			if t.MaxExpiresAt.After(p.MaxExpiresAt) {
				t.MaxExpiresAt = p.MaxExpiresAt
			}
		}
		if len(p.BoundEnvs) > 0 {
			if len(t.BoundEnvs) == 0 {
				t.BoundEnvs = slices.Clone(p.BoundEnvs)
			}
			for _, e := range t.BoundEnvs {
				if !EnvAllowed(p.BoundEnvs, envProject(e), envName(e)) {
					return nil, fmt.Errorf("%w: the parent token is not bound to environment %q", ErrExceedsParent, e)
				}
			}
		}
		if len(p.BoundCIDRs) > 0 {
			if len(t.BoundCIDRs) == 0 {
				t.BoundCIDRs = slices.Clone(p.BoundCIDRs)
			}
			for _, c := range t.BoundCIDRs {
				if !prefixWithin(c, p.BoundCIDRs) {
					return nil, fmt.Errorf("%w: CIDR %s is outside the parent token's", ErrExceedsParent, c)
				}
			}
		}
		if p.MaxUses > 0 && (t.MaxUses == 0 || t.MaxUses > p.MaxUses-p.Uses) {
			return nil, fmt.Errorf("%w: the parent token has a use limit; give the child --max-uses of at most %d", ErrExceedsParent, max(p.MaxUses-p.Uses, 0))
		}
		if !p.Rate.IsZero() {
			// A child is counted on its own, but never faster than its
			// parent may go: otherwise a rated token could mint itself an
			// unrated one.
			if t.Rate.IsZero() {
				t.Rate = p.Rate
			}
			if !t.Rate.Within(p.Rate) {
				return nil, fmt.Errorf("%w: rate %s is looser than the parent token's %s", ErrExceedsParent, t.Rate, p.Rate)
			}
		}
		if p.JKT != "" {
			// A child of a bound token is bound to the same key: otherwise
			// a stolen bound token could mint itself an unbound one.
			if t.JKT != "" && t.JKT != p.JKT {
				return nil, fmt.Errorf("%w: the parent token is bound to another key", ErrExceedsParent)
			}
			t.JKT = p.JKT
		}
	}
	if len(t.Policies) == 0 {
		return nil, fmt.Errorf("%w: a token needs at least one policy", ErrBadRequest)
	}
	return t, nil
}

// maxJKTLen bounds a key thumbprint (a SHA-256 one is 43 characters).
const maxJKTLen = 128

// Bounds on the meta a caller gives a child token.
const (
	MaxMetaEntries  = 16
	MaxMetaKeyLen   = 64  // characters of [A-Za-z0-9_.-], at least one
	MaxMetaValueLen = 512 // bytes of printable UTF-8
)

// checkMeta checks the meta a caller gives a child token. An error names
// the key at fault (quoted, cut to MaxMetaKeyLen), never a value.
func checkMeta(meta map[string]string) error {
	if len(meta) > MaxMetaEntries {
		return fmt.Errorf("%w: meta: %d entries, at most %d", ErrBadRequest, len(meta), MaxMetaEntries)
	}
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		if !validMetaKey(k) {
			return fmt.Errorf("%w: meta: key %q: want 1 to %d characters of A-Z a-z 0-9 _ . -", ErrBadRequest, cut(k, MaxMetaKeyLen), MaxMetaKeyLen)
		}
		if v := meta[k]; len(v) > MaxMetaValueLen {
			return fmt.Errorf("%w: meta: the value of key %q is %d bytes, at most %d", ErrBadRequest, k, len(v), MaxMetaValueLen)
		} else if !printable(v) {
			return fmt.Errorf("%w: meta: the value of key %q holds a control character or invalid UTF-8", ErrBadRequest, k)
		}
	}
	return nil
}

func validMetaKey(k string) bool {
	if k == "" || len(k) > MaxMetaKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// cut returns at most the first n bytes of s.
func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func envProject(e string) string {
	if p, _, ok := strings.Cut(e, "/"); ok {
		return p
	}
	return ""
}

func envName(e string) string {
	if _, n, ok := strings.Cut(e, "/"); ok {
		return n
	}
	return e
}

// EnvAllowed reports whether environment env of project is within bound,
// whose entries are "ENV" (that environment in any project) or
// "PROJECT/ENV". An empty bound allows everything.
func EnvAllowed(bound []string, project, env string) bool {
	if len(bound) == 0 {
		return true
	}
	for _, b := range bound {
		if p, e, ok := strings.Cut(b, "/"); ok {
			if e == env && (p == project || project == "") {
				return true
			}
		} else if b == env {
			return true
		}
	}
	return false
}

func prefixWithin(c netip.Prefix, outer []netip.Prefix) bool {
	for _, o := range outer {
		if o.Bits() <= c.Bits() && o.Contains(c.Addr()) {
			return true
		}
	}
	return false
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func unixOrZero(t time.Time) int64 {
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

func (s *Service) insert(ctx context.Context, tx storage.Tx, hash []byte, t *Token) error {
	pol, _ := json.Marshal(t.Policies)
	envs, _ := json.Marshal(t.BoundEnvs)
	cidrs, _ := json.Marshal(t.BoundCIDRs)
	meta, _ := json.Marshal(t.Meta)
	_, err := tx.Exec(ctx, `INSERT INTO tokens (hash, accessor, parent, principal, auth_method, policies, bound_envs, bound_cidrs, meta,
		ttl, max_uses, uses, created_at, expires_at, max_expires_at, revoked_at, cnf_jkt, rate)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $13, $14, 0, $15, $16)`,
		hash, t.Accessor, t.Parent, t.Principal, t.AuthMethod, string(pol), string(envs), string(cidrs), string(meta),
		int64(t.TTL), t.MaxUses, t.CreatedAt.UnixNano(), unixOrZero(t.ExpiresAt), unixOrZero(t.MaxExpiresAt), nullString(t.JKT), t.Rate.String())
	if err != nil {
		return fmt.Errorf("storing token: %w", err)
	}
	return nil
}

const columns = `hash, accessor, parent, principal, auth_method, policies, bound_envs, bound_cidrs, meta,
	ttl, max_uses, uses, created_at, expires_at, max_expires_at, revoked_at, cnf_jkt, rate`

// nullString stores "" as NULL (an unbound token has no cnf_jkt).
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

type scanner interface{ Scan(dest ...any) error }

func scanToken(row scanner) ([]byte, *Token, error) {
	var (
		hash                                  []byte
		t                                     Token
		pol, envs, cidrs, meta                string
		ttl, maxUses, uses                    int64
		created, expires, maxExpires, revoked int64
		jkt                                   sql.NullString
		rate                                  string
	)
	err := row.Scan(&hash, &t.Accessor, &t.Parent, &t.Principal, &t.AuthMethod, &pol, &envs, &cidrs, &meta,
		&ttl, &maxUses, &uses, &created, &expires, &maxExpires, &revoked, &jkt, &rate)
	if err != nil {
		return nil, nil, err
	}
	if t.Rate, err = ratelimit.ParseLimit(rate); err != nil {
		return nil, nil, fmt.Errorf("token %s: corrupt row: %w", t.Accessor, err)
	}
	if err := errors.Join(json.Unmarshal([]byte(pol), &t.Policies), json.Unmarshal([]byte(envs), &t.BoundEnvs),
		json.Unmarshal([]byte(cidrs), &t.BoundCIDRs), json.Unmarshal([]byte(meta), &t.Meta)); err != nil {
		return nil, nil, fmt.Errorf("token %s: corrupt row: %w", t.Accessor, err)
	}
	t.TTL, t.MaxUses, t.Uses = time.Duration(ttl), int(maxUses), int(uses)
	t.CreatedAt, t.ExpiresAt, t.MaxExpiresAt, t.RevokedAt = timeOrZero(created), timeOrZero(expires), timeOrZero(maxExpires), timeOrZero(revoked)
	t.JKT = jkt.String
	return hash, &t, nil
}

// Verify checks a presented token and returns it. The format and checksum
// are checked before anything else, so a typo costs no lookup. src is the
// client's address (for CIDR-bound tokens). A use-limited token spends one
// use.
func (s *Service) Verify(ctx context.Context, plaintext string, src netip.Addr) (*Token, error) {
	return s.verify(ctx, plaintext, src, true)
}

// Recheck is Verify for a token that passed Verify for a request still
// under way (a WebSocket session, a streamed answer): revocation, expiry
// and the address are checked again, but no use is spent; the request
// spent its one.
func (s *Service) Recheck(ctx context.Context, plaintext string, src netip.Addr) (*Token, error) {
	return s.verify(ctx, plaintext, src, false)
}

func (s *Service) verify(ctx context.Context, plaintext string, src netip.Addr, spend bool) (*Token, error) {
	if err := credential.ParseType(plaintext, credential.AccessToken); err != nil {
		return nil, err
	}
	key, ok := s.hashKey(plaintext)
	if !ok {
		return nil, ErrSealed
	}
	now := s.opts.Now()
	s.mu.RLock()
	t := s.cache[key]
	s.mu.RUnlock()
	if t == nil || t.Expired(now) {
		// A miss, or a cached token past its expiry: storage is the truth
		// (it may have been renewed on another node).
		var err error
		if t, err = s.load(ctx, key); err != nil {
			return nil, err
		}
	}
	if !t.RevokedAt.IsZero() {
		return nil, ErrRevoked
	}
	if t.Expired(now) {
		return nil, ErrExpired
	}
	if len(t.BoundCIDRs) > 0 && !addrAllowed(t.BoundCIDRs, src) {
		return nil, ErrSourceNotAllowed
	}
	if t.MaxUses > 0 && spend {
		return s.use(ctx, key, t)
	}
	return t, nil
}

func (s *Service) hashKey(plaintext string) (key [32]byte, ok bool) {
	if m, fast := s.mac.(mac32); fast {
		return m.MAC32("token", plaintext)
	}
	h := s.mac.MAC("token", []byte(plaintext))
	if h == nil {
		return key, false
	}
	copy(key[:], h)
	return key, true
}

func addrAllowed(cidrs []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, c := range cidrs {
		if c.Contains(a) {
			return true
		}
	}
	return false
}

// load reads a token by hash and caches it (unless it is use-limited).
func (s *Service) load(ctx context.Context, key [32]byte) (*Token, error) {
	var t *Token
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		var err error
		_, t, err = scanToken(tx.QueryRow(ctx, `SELECT `+columns+` FROM tokens WHERE hash = $1`, key[:]))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrInvalid
	}
	if err != nil {
		return nil, err
	}
	t.AccessorHMAC = s.accessorHMAC(t.Accessor)
	if t.MaxUses == 0 {
		s.put(key, t)
	}
	return t, nil
}

func (s *Service) put(key [32]byte, t *Token) {
	if s.OnFill != nil {
		s.OnFill(t)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= s.opts.CacheSize {
		// Evict an arbitrary tenth: map order is random enough, and a
		// reload costs one indexed read.
		n := 0
		for k, v := range s.cache {
			delete(s.cache, k)
			delete(s.byAccessor, v.Accessor)
			if n++; n >= s.opts.CacheSize/10+1 {
				break
			}
		}
	}
	s.cache[key] = t
	s.byAccessor[t.Accessor] = key
}

// use counts one use of a use-limited token in storage.
func (s *Service) use(ctx context.Context, key [32]byte, t *Token) (*Token, error) {
	var ok bool
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE tokens SET uses = uses + 1 WHERE hash = $1 AND uses < max_uses AND revoked_at = 0`, key[:])
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrUsesExhausted
	}
	c := *t
	c.Uses++
	return &c, nil
}

// Evict drops a token from this node's cache.
func (s *Service) Evict(accessor string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key, ok := s.byAccessor[accessor]; ok {
		delete(s.cache, key)
		delete(s.byAccessor, accessor)
	}
}

// Purge empties the cache (on seal).
func (s *Service) Purge() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.cache)
	clear(s.byAccessor)
}

// HandleEvent applies an event from another node.
func (s *Service) HandleEvent(e events.Event) {
	if e.Kind == EventRevoke || e.Kind == EventRenew {
		s.Evict(e.Key)
	}
}

// Lookup returns a token by accessor.
func (s *Service) Lookup(ctx context.Context, accessor string) (*Token, error) {
	return s.read(ctx, `accessor = $1`, accessor, ErrNotFound)
}

// read reads the one token where cond (on arg) holds, with its audit
// HMAC; notFound when there is none.
func (s *Service) read(ctx context.Context, cond string, arg any, notFound error) (*Token, error) {
	var t *Token
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		var err error
		_, t, err = scanToken(tx.QueryRow(ctx, `SELECT `+columns+` FROM tokens WHERE `+cond, arg))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	t.AccessorHMAC = s.accessorHMAC(t.Accessor)
	return t, nil
}

// Find returns the token whose plaintext is given, whatever its state
// (expired, revoked, out of uses), straight from storage: introspection
// reports on it and the token's holder revokes it. It counts no use and
// checks no address. A malformed or unknown token is ErrInvalid.
func (s *Service) Find(ctx context.Context, plaintext string) (*Token, error) {
	if err := credential.ParseType(plaintext, credential.AccessToken); err != nil {
		return nil, ErrInvalid
	}
	hash, err := s.Hash(plaintext)
	if err != nil {
		return nil, err
	}
	return s.read(ctx, `hash = $1`, hash, ErrInvalid)
}

// Active reports whether t would pass Verify at now (address bindings
// aside): not revoked, not expired, uses left.
func (t *Token) Active(now time.Time) bool {
	return t.RevokedAt.IsZero() && !t.Expired(now) && (t.MaxUses == 0 || t.Uses < t.MaxUses)
}

// Renew extends a token by increment (0: its own TTL), never past its
// maximum. It returns the renewed token.
func (s *Service) Renew(ctx context.Context, accessor string, increment time.Duration, audit AuditFunc) (*Token, error) {
	if increment < 0 {
		return nil, fmt.Errorf("%w: increment cannot be negative", ErrBadRequest)
	}
	var t *Token
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		var err error
		_, t, err = scanToken(tx.QueryRow(ctx, `SELECT `+columns+` FROM tokens WHERE accessor = $1`+tx.LockForUpdate(), accessor))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		now := s.opts.Now().UTC()
		switch {
		case !t.RevokedAt.IsZero():
			return ErrRevoked
		case t.Expired(now):
			return ErrExpired
		case t.ExpiresAt.IsZero():
			return nil // never expires: nothing to renew
		}
		inc := t.TTL
		if increment > 0 {
			inc = increment
		}
		exp := now.Add(inc)
		if !t.MaxExpiresAt.IsZero() && exp.After(t.MaxExpiresAt) {
			exp = t.MaxExpiresAt
		}
		if exp.After(t.ExpiresAt) {
			t.ExpiresAt = exp
		}
		if _, err := tx.Exec(ctx, `UPDATE tokens SET expires_at = $1 WHERE accessor = $2`, t.ExpiresAt.UnixNano(), accessor); err != nil {
			return err
		}
		if err := events.Append(ctx, tx, EventRenew, accessor); err != nil {
			return err
		}
		if audit != nil {
			return audit(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Evict(accessor)
	t.AccessorHMAC = s.accessorHMAC(t.Accessor)
	return t, nil
}

// Revoke revokes the token with accessor and all its descendants, and
// returns how many tokens it revoked.
func (s *Service) Revoke(ctx context.Context, accessor string, audit AuditFunc) (int, error) {
	return s.revokeWhere(ctx, func(tx storage.Tx) ([]string, error) {
		var exists int
		err := tx.QueryRow(ctx, `SELECT 1 FROM tokens WHERE accessor = $1`, accessor).Scan(&exists)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return []string{accessor}, err
	}, audit)
}

// RevokePrincipal revokes every token issued to principal (such as
// "user:alice") and all their descendants, whoever holds them, and returns
// how many it revoked. A principal with no live token is not an error.
func (s *Service) RevokePrincipal(ctx context.Context, principal string, audit AuditFunc) (int, error) {
	return s.revokeWhere(ctx, func(tx storage.Tx) ([]string, error) {
		return accessors(ctx, tx, `SELECT accessor FROM tokens WHERE principal = $1 AND revoked_at = 0`, principal)
	}, audit)
}

// revokeWhere revokes, in one transaction, the tokens roots returns and all
// their descendants, appends a revocation event for each (other nodes evict
// them from their caches) and evicts them here after the commit.
func (s *Service) revokeWhere(ctx context.Context, roots func(storage.Tx) ([]string, error), audit AuditFunc) (int, error) {
	var revoked []string
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		revoked = revoked[:0]
		queue, err := roots(tx)
		if err != nil {
			return err
		}
		now := s.opts.Now().UnixNano()
		seen := make(map[string]bool, len(queue))
		for _, a := range queue {
			seen[a] = true
		}
		for len(queue) > 0 {
			a := queue[0]
			queue = queue[1:]
			res, err := tx.Exec(ctx, `UPDATE tokens SET revoked_at = $1 WHERE accessor = $2 AND revoked_at = 0`, now, a)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				revoked = append(revoked, a)
				if err := events.Append(ctx, tx, EventRevoke, a); err != nil {
					return err
				}
			}
			children, err := accessors(ctx, tx, `SELECT accessor FROM tokens WHERE parent = $1`, a)
			if err != nil {
				return err
			}
			for _, c := range children {
				if !seen[c] {
					seen[c] = true
					queue = append(queue, c)
				}
			}
		}
		if audit != nil {
			return audit(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, a := range revoked {
		s.Evict(a)
	}
	return len(revoked), nil
}

// accessors returns the accessors query selects, given its one argument.
func accessors(ctx context.Context, tx storage.Tx, query, arg string) ([]string, error) {
	rows, err := tx.Query(ctx, query, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AdoptRoot stores the root token created at init, given its hash, unless it
// is already stored. It runs in the caller's transaction.
func (s *Service) AdoptRoot(ctx context.Context, tx storage.Tx, hash []byte) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM tokens WHERE hash = $1`, hash).Scan(&one)
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	t := &Token{Accessor: newAccessor(), Principal: "root", AuthMethod: "root", Policies: []string{RootPolicy},
		CreatedAt: s.opts.Now().UTC()}
	return s.insert(ctx, tx, hash, t)
}

// Tidy deletes tokens that expired or were revoked more than keep ago.
func (s *Service) Tidy(ctx context.Context, keep time.Duration) (int64, error) {
	cutoff := s.opts.Now().Add(-keep).UnixNano()
	var n int64
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM tokens WHERE (expires_at > 0 AND expires_at < $1) OR (revoked_at > 0 AND revoked_at < $1)`, cutoff)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// Holders is a group of live tokens (neither expired nor revoked) that share
// a principal, an auth method, policies and bound environments: who holds
// what, for access reviews.
type Holders struct {
	Principal  string   `json:"principal"`
	AuthMethod string   `json:"auth_method"`
	Policies   []string `json:"policies"`
	BoundEnvs  []string `json:"bound_envs,omitempty"`
	Count      int      `json:"count"`
}

// LiveHolders groups the live tokens by what they grant, largest group
// first (at most limit groups).
func (s *Service) LiveHolders(ctx context.Context, limit int) ([]Holders, error) {
	var out []Holders
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT principal, auth_method, policies, bound_envs, count(*) FROM tokens
			WHERE revoked_at = 0 AND (expires_at = 0 OR expires_at > $1)
			GROUP BY principal, auth_method, policies, bound_envs ORDER BY count(*) DESC, principal LIMIT $2`,
			s.opts.Now().UnixNano(), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h Holders
			var pol, envs string
			if err := rows.Scan(&h.Principal, &h.AuthMethod, &pol, &envs, &h.Count); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(pol), &h.Policies); err != nil {
				return fmt.Errorf("token policies of %s: %w", h.Principal, err)
			}
			if err := json.Unmarshal([]byte(envs), &h.BoundEnvs); err != nil {
				return fmt.Errorf("token bound environments of %s: %w", h.Principal, err)
			}
			out = append(out, h)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("token: live holders: %w", err)
	}
	return out, nil
}

// LongLived returns the live tokens (neither revoked nor expired) set to
// live longer than life from their creation — no expiry, or one further
// than life, as issued or renewed — up to limit, by accessor: the
// exceptions to short-lived tokens, for the inventory.
func (s *Service) LongLived(ctx context.Context, life time.Duration, limit int) ([]*Token, error) {
	var out []*Token
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM tokens
			WHERE revoked_at = 0 AND (expires_at = 0 OR expires_at > $1 AND expires_at - created_at > $2)
			ORDER BY accessor LIMIT $3`, s.opts.Now().UnixNano(), int64(life), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			_, t, err := scanToken(rows)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("token: long-lived tokens: %w", err)
	}
	return out, nil
}
