package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyward/keyward/internal/storage"
)

// JWT workload identity: a workload (a CI job, a Kubernetes pod) presents a
// JWT signed by an issuer keyward trusts. The token must
//   - be at most MaxJWTLen bytes and signed with an algorithm on the issuer's
//     allow-list (never "none", never an HMAC algorithm);
//   - name in its header a key id present in the issuer's JWKS (inline, or
//     fetched from JWKSURL and cached);
//   - carry the issuer's iss, one of its audiences, an exp (required), and
//     nbf/iat that are not in the future, with jwtLeeway of clock skew;
//   - match every bound claim.
// Its policies are the issuer's Policies plus those of every PolicyMap rule
// whose claim matches.

// JWT limits and timings.
const (
	// MaxJWTLen caps a raw JWT; longer ones are refused before parsing.
	MaxJWTLen = 16 << 10
	// maxJWKSLen caps a JWKS document, inline or fetched.
	maxJWKSLen = 1 << 20

	jwtLeeway        = 60 * time.Second
	jwksFetchTimeout = 5 * time.Second
	jwksCacheFor     = 5 * time.Minute
	jwksRefetchEvery = 30 * time.Second // on an unknown kid
	jwksFailFor      = 5 * time.Second  // after a failed fetch, fail fast this long
	minRSABits       = 2048
	maxClaimValueLen = 1024
)

// allowedAlgorithms are the signature algorithms an issuer may allow: the
// asymmetric ones only, so a public key can never be used as an HMAC secret.
var allowedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// defaultAlgorithms are allowed when an issuer lists none.
var defaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// Issuer is a trusted JWT issuer and the rules that turn its tokens into a
// Principal.
type Issuer struct {
	// Name identifies the issuer in keyward (e.g. "github").
	Name string `json:"name"`
	// IssuerURL must equal the token's iss claim.
	IssuerURL string `json:"issuer_url"`
	// Audiences: the token's aud must contain one of them (required).
	Audiences []string `json:"audiences"`
	// JWKSURL is where the issuer publishes its keys (http or https).
	// Exactly one of JWKSURL and JWKS is set.
	JWKSURL string `json:"jwks_url,omitempty"`
	// JWKS is an inline key set of public keys.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// Algorithms allowed (default defaultAlgorithms; a subset of allowedAlgorithms).
	Algorithms []string `json:"algorithms,omitempty"`
	// BoundClaims: every claim named must be present and match one of its
	// values ("*" in a value matches any run of characters). At least one is
	// required; {"sub": ["*"]} accepts every subject.
	BoundClaims map[string][]string `json:"bound_claims"`
	// PolicyMap grants policies to tokens whose claim matches a value.
	PolicyMap []ClaimPolicy `json:"policy_map,omitempty"`
	// Policies are granted to every token of the issuer.
	Policies []string `json:"policies,omitempty"`
	// TokenTTL and TokenMaxTTL bound the tokens issued (0: the defaults).
	TokenTTL    time.Duration `json:"token_ttl"`
	TokenMaxTTL time.Duration `json:"token_max_ttl"`
	// SubjectClaim names the claim that identifies the workload (default "sub").
	SubjectClaim string `json:"subject_claim,omitempty"`
}

// ClaimPolicy grants Policies to a token whose Claim matches Value (a glob
// where "*" matches any run of characters).
type ClaimPolicy struct {
	Claim    string   `json:"claim"`
	Value    string   `json:"value"`
	Policies []string `json:"policies"`
}

const (
	maxAudiences   = 16
	maxBoundClaims = 32
	maxClaimValues = 64
	maxPolicyMap   = 128
	maxURLLen      = 2048
)

// checkIssuer validates iss in place (defaults filled, lists cleaned).
func (m *Manager) checkIssuer(iss *Issuer) error {
	if err := validName("name", iss.Name); err != nil {
		return err
	}
	if iss.IssuerURL == "" || len(iss.IssuerURL) > maxURLLen {
		return invalid("issuer_url", "required, at most %d bytes", maxURLLen)
	}
	if len(iss.Audiences) == 0 || len(iss.Audiences) > maxAudiences {
		return invalid("audiences", "give between 1 and %d audiences", maxAudiences)
	}
	for _, a := range iss.Audiences {
		if a == "" || len(a) > maxClaimValueLen {
			return invalid("audiences", "an audience is empty or too long")
		}
	}
	if (iss.JWKSURL == "") == (len(iss.JWKS) == 0) {
		return invalid("jwks_url", "set exactly one of jwks_url and jwks")
	}
	if iss.JWKSURL != "" {
		u, err := url.Parse(iss.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(iss.JWKSURL) > maxURLLen {
			return invalid("jwks_url", "must be an absolute http(s) URL")
		}
	} else {
		keys, err := parseJWKS(iss.JWKS, true)
		if err != nil {
			return invalid("jwks", "%v", err)
		}
		if len(keys.Keys) == 0 {
			return invalid("jwks", "holds no usable public signing key")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, iss.JWKS); err != nil {
			return invalid("jwks", "not JSON")
		}
		iss.JWKS = buf.Bytes()
	}
	if len(iss.Algorithms) == 0 {
		iss.Algorithms = slices.Clone(defaultAlgorithms)
	}
	for _, a := range iss.Algorithms {
		if !slices.Contains(allowedAlgorithms, a) {
			return invalid("algorithms", "%q is not allowed (allowed: %s)", a, strings.Join(allowedAlgorithms, ", "))
		}
	}
	slices.Sort(iss.Algorithms)
	iss.Algorithms = slices.Compact(iss.Algorithms)
	if len(iss.BoundClaims) == 0 {
		return invalid("bound_claims", `at least one is required; use {"sub": ["*"]} to accept every subject`)
	}
	if len(iss.BoundClaims) > maxBoundClaims {
		return invalid("bound_claims", "at most %d claims", maxBoundClaims)
	}
	for c, vs := range iss.BoundClaims {
		if err := checkClaimName("bound_claims", c); err != nil {
			return err
		}
		if len(vs) == 0 || len(vs) > maxClaimValues {
			return invalid("bound_claims", "claim %q needs between 1 and %d values", c, maxClaimValues)
		}
		for _, v := range vs {
			if v == "" || len(v) > maxClaimValueLen {
				return invalid("bound_claims", "claim %q has an empty or too long value", c)
			}
		}
	}
	if len(iss.PolicyMap) > maxPolicyMap {
		return invalid("policy_map", "at most %d rules", maxPolicyMap)
	}
	for i := range iss.PolicyMap {
		r := &iss.PolicyMap[i]
		if err := checkClaimName("policy_map", r.Claim); err != nil {
			return err
		}
		if r.Value == "" || len(r.Value) > maxClaimValueLen {
			return invalid("policy_map", "rule %d: value is empty or too long", i)
		}
		ps, err := cleanPolicies("policy_map", r.Policies)
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			return invalid("policy_map", "rule %d grants no policy", i)
		}
		r.Policies = ps
	}
	ps, err := cleanPolicies("policies", iss.Policies)
	if err != nil {
		return err
	}
	iss.Policies = ps
	if iss.TokenTTL, iss.TokenMaxTTL, err = m.ttls(iss.TokenTTL, iss.TokenMaxTTL); err != nil {
		return err
	}
	if iss.SubjectClaim == "" {
		iss.SubjectClaim = "sub"
	}
	return checkClaimName("subject_claim", iss.SubjectClaim)
}

func checkClaimName(field, c string) error {
	if c == "" || len(c) > 128 || !utf8.ValidString(c) {
		return invalid(field, "a claim name is empty, too long or not UTF-8")
	}
	return nil
}

// PutIssuer creates or replaces an issuer.
func (m *Manager) PutIssuer(ctx context.Context, iss Issuer) (*Issuer, error) {
	if err := m.checkIssuer(&iss); err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(iss)
	if err != nil {
		return nil, fmt.Errorf("identity: encode issuer: %w", err)
	}
	now := m.now().UnixNano()
	err = m.store.Write(ctx, func(tx storage.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO identity_jwt_issuers (name, config, created_at, updated_at)
			VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at`,
			iss.Name, string(cfg), now); err != nil {
			return err
		}
		return m.record(ctx, tx, "put", "issuer", iss.Name)
	})
	if err != nil {
		return nil, err
	}
	m.forgetJWKS(iss.Name)
	return &iss, nil
}

// GetIssuer returns the named issuer.
func (m *Manager) GetIssuer(ctx context.Context, name string) (*Issuer, error) {
	if err := validName("name", name); err != nil {
		return nil, err
	}
	var iss *Issuer
	err := m.store.Read(ctx, func(tx storage.Tx) error {
		var cfg string
		err := tx.QueryRow(ctx, `SELECT config FROM identity_jwt_issuers WHERE name = $1`, name).Scan(&cfg)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: issuer %q", ErrNotFound, name)
		}
		if err != nil {
			return err
		}
		iss, err = decodeIssuer(cfg)
		return err
	})
	return iss, err
}

func decodeIssuer(cfg string) (*Issuer, error) {
	var iss Issuer
	if err := json.Unmarshal([]byte(cfg), &iss); err != nil {
		return nil, fmt.Errorf("identity: corrupt issuer row: %w", err)
	}
	return &iss, nil
}

// ListIssuers returns every issuer, sorted by name.
func (m *Manager) ListIssuers(ctx context.Context) ([]Issuer, error) {
	var out []Issuer
	err := m.store.Read(ctx, func(tx storage.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT config FROM identity_jwt_issuers ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var cfg string
			if err := rows.Scan(&cfg); err != nil {
				return err
			}
			iss, err := decodeIssuer(cfg)
			if err != nil {
				return err
			}
			out = append(out, *iss)
		}
		return rows.Err()
	})
	return out, err
}

// DeleteIssuer removes an issuer; its tokens no longer log in.
func (m *Manager) DeleteIssuer(ctx context.Context, name string) error {
	if err := validName("name", name); err != nil {
		return err
	}
	err := m.store.Write(ctx, func(tx storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM identity_jwt_issuers WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: issuer %q", ErrNotFound, name)
		}
		return m.record(ctx, tx, "delete", "issuer", name)
	})
	if err == nil {
		m.forgetJWKS(name)
	}
	return err
}

// jwtFail is a failed JWT login: it is ErrInvalidCredentials, with a fixed
// reason that never quotes the token or a claim value.
func jwtFail(reason string) error {
	return fmt.Errorf("%w: jwt: %s", ErrInvalidCredentials, reason)
}

// JWTLogin authenticates a workload by a JWT from the named issuer. Failures
// are ErrInvalidCredentials (with a reason that never quotes the token),
// ErrJWKSUnavailable when the issuer's keys cannot be fetched, or a
// *ThrottledError while the source address is locked out.
func (m *Manager) JWTLogin(ctx context.Context, issuerName, rawJWT string, src netip.Addr) (*Principal, error) {
	keys := throttleKeys("", src)
	if err := m.checkThrottle(keys); err != nil {
		return nil, err
	}
	p, err := m.jwtLogin(ctx, issuerName, rawJWT)
	if errors.Is(err, ErrInvalidCredentials) {
		m.throttle.Fail(keys...)
	}
	return p, err
}

func (m *Manager) jwtLogin(ctx context.Context, issuerName, raw string) (*Principal, error) {
	if len(raw) > MaxJWTLen {
		return nil, jwtFail("token too large")
	}
	if !nameRe.MatchString(issuerName) {
		return nil, jwtFail("unknown issuer")
	}
	iss, err := m.GetIssuer(ctx, issuerName)
	if errors.Is(err, ErrNotFound) {
		return nil, jwtFail("unknown issuer")
	}
	if err != nil {
		return nil, err
	}
	return m.verifyJWT(ctx, iss, raw)
}

// ExchangeLogin authenticates an app's user by the ID token (or other JWT)
// the company's identity provider gave them, for the token exchange of RFC
// 8693. The issuer is the trusted issuer whose issuer_url equals the token's
// iss; when several are configured with that URL (say, one per audience),
// the first by name that accepts the token wins. Every check of JWTLogin
// applies, and so does its throttle. The Principal's CredentialExpiresAt is
// the token's exp: what is issued in exchange must not outlive it.
func (m *Manager) ExchangeLogin(ctx context.Context, rawJWT string, src netip.Addr) (*Principal, error) {
	keys := throttleKeys("", src)
	if err := m.checkThrottle(keys); err != nil {
		return nil, err
	}
	p, err := m.exchangeLogin(ctx, rawJWT)
	if errors.Is(err, ErrInvalidCredentials) {
		m.throttle.Fail(keys...)
	}
	return p, err
}

func (m *Manager) exchangeLogin(ctx context.Context, raw string) (*Principal, error) {
	if len(raw) > MaxJWTLen {
		return nil, jwtFail("token too large")
	}
	algs := make([]jose.SignatureAlgorithm, len(allowedAlgorithms))
	for i, a := range allowedAlgorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	tok, err := jwt.ParseSigned(raw, algs)
	if err != nil {
		return nil, jwtFail("malformed token or algorithm not allowed")
	}
	// iss only picks the issuer whose keys and rules then verify the token.
	var unverified struct {
		Iss string `json:"iss"`
	}
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil || unverified.Iss == "" {
		return nil, jwtFail("iss missing")
	}
	issuers, err := m.ListIssuers(ctx)
	if err != nil {
		return nil, err
	}
	var first error
	for i := range issuers {
		if issuers[i].IssuerURL != unverified.Iss {
			continue
		}
		p, err := m.verifyJWT(ctx, &issuers[i], raw)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, ErrInvalidCredentials) {
			return nil, err // JWKS unavailable, storage: not the token's fault
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		return nil, jwtFail("no trusted issuer has this iss")
	}
	return nil, first
}

// verifyJWT checks raw against iss and returns the principal it names.
func (m *Manager) verifyJWT(ctx context.Context, iss *Issuer, raw string) (*Principal, error) {
	algs := make([]jose.SignatureAlgorithm, 0, len(iss.Algorithms))
	for _, a := range iss.Algorithms {
		if slices.Contains(allowedAlgorithms, a) { // re-checked: rows outlive code
			algs = append(algs, jose.SignatureAlgorithm(a))
		}
	}
	if len(algs) == 0 {
		return nil, jwtFail("issuer allows no algorithm")
	}
	tok, err := jwt.ParseSigned(raw, algs)
	if err != nil {
		return nil, jwtFail("malformed token or algorithm not allowed")
	}
	if len(tok.Headers) != 1 {
		return nil, jwtFail("want exactly one signature")
	}
	hdr := tok.Headers[0]
	if hdr.KeyID == "" {
		return nil, jwtFail("no key id (kid) in the header")
	}
	cands, err := m.issuerKeys(ctx, iss, hdr.KeyID)
	if err != nil {
		return nil, err
	}
	var payload json.RawMessage
	verified := false
	for _, k := range cands {
		if k.Algorithm != "" && k.Algorithm != hdr.Algorithm {
			continue
		}
		if err := tok.Claims(k.Key, &payload); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, jwtFail("signature does not verify with the issuer's key")
	}

	var std jwt.Claims
	if err := json.Unmarshal(payload, &std); err != nil {
		return nil, jwtFail("malformed registered claims")
	}
	claims := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, jwtFail("malformed claims")
	}
	if std.Expiry == nil {
		return nil, jwtFail("exp is required")
	}
	err = std.ValidateWithLeeway(jwt.Expected{
		Issuer:      iss.IssuerURL,
		AnyAudience: jwt.Audience(iss.Audiences),
		Time:        m.now(),
	}, jwtLeeway)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, jwtFail("iss does not match the issuer")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, jwtFail("aud holds none of the issuer's audiences")
	case errors.Is(err, jwt.ErrExpired):
		return nil, jwtFail("token expired")
	case errors.Is(err, jwt.ErrNotValidYet):
		return nil, jwtFail("token not valid yet (nbf)")
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return nil, jwtFail("token issued in the future (iat)")
	default:
		return nil, jwtFail("claims rejected")
	}

	sub, ok := claims[iss.SubjectClaim].(string)
	if !ok || sub == "" || len(sub) > maxClaimValueLen || !printable(sub) {
		return nil, jwtFail("subject claim missing or not a printable string")
	}
	meta := map[string]string{"issuer": iss.Name, "sub": sub}
	for _, c := range slices.Sorted(maps.Keys(iss.BoundClaims)) {
		if !claimMatches(claims[c], iss.BoundClaims[c]) {
			return nil, jwtFail(fmt.Sprintf("bound claim %q does not match", c))
		}
		addMeta(meta, c, claims[c])
	}
	policies := slices.Clone(iss.Policies)
	for _, r := range iss.PolicyMap {
		if claimMatches(claims[r.Claim], []string{r.Value}) {
			policies = append(policies, r.Policies...)
			addMeta(meta, r.Claim, claims[r.Claim])
		}
	}
	slices.Sort(policies)
	policies = slices.Compact(policies)
	return &Principal{
		Kind:                KindJWT,
		Name:                iss.Name + "/" + sub,
		Policies:            policies,
		TokenTTL:            iss.TokenTTL,
		TokenMaxTTL:         iss.TokenMaxTTL,
		Metadata:            meta,
		CredentialExpiresAt: std.Expiry.Time(),
	}, nil
}

// claimStrings returns the string forms of a claim value: a string, a number
// or a bool as one value; an array as its scalar elements.
func claimStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case json.Number:
		return []string{v.String()}
	case bool:
		return []string{strconv.FormatBool(v)}
	case []any:
		var out []string
		for _, e := range v {
			if _, nested := e.([]any); nested {
				continue
			}
			out = append(out, claimStrings(e)...)
		}
		return out
	}
	return nil
}

// claimMatches reports whether some string form of v matches some pattern.
func claimMatches(v any, patterns []string) bool {
	for _, s := range claimStrings(v) {
		if len(s) > maxClaimValueLen {
			continue
		}
		for _, p := range patterns {
			if globMatch(p, s) {
				return true
			}
		}
	}
	return false
}

// addMeta records a scalar claim value in the principal's metadata.
func addMeta(meta map[string]string, claim string, v any) {
	if _, ok := v.([]any); ok {
		return
	}
	if ss := claimStrings(v); len(ss) == 1 && len(ss[0]) <= maxClaimValueLen && printable(ss[0]) {
		meta[claim] = ss[0]
	}
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// globMatch reports whether s matches pattern, where "*" matches any run of
// characters (including "/") and every other byte matches itself. It runs in
// O(len(pattern)·len(s)) at worst.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := 0, 0
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			c := pattern[px]
			if c == '*' {
				nextPx, nextSx = px, sx+1
				px++
				continue
			}
			if sx < len(s) && s[sx] == c {
				px++
				sx++
				continue
			}
		}
		if 0 < nextSx && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// jwksEntry caches one issuer's fetched key set.
type jwksEntry struct {
	mu          sync.Mutex // held during a fetch: one fetch at a time
	url         string
	keys        *jose.JSONWebKeySet
	fetchedAt   time.Time
	attemptedAt time.Time
	failed      bool // the last attempt failed
}

func (m *Manager) forgetJWKS(name string) {
	m.jwksMu.Lock()
	delete(m.jwks, name)
	m.jwksMu.Unlock()
}

func (m *Manager) jwksEntryFor(iss *Issuer) *jwksEntry {
	m.jwksMu.Lock()
	defer m.jwksMu.Unlock()
	e := m.jwks[iss.Name]
	if e == nil || e.url != iss.JWKSURL {
		e = &jwksEntry{url: iss.JWKSURL}
		m.jwks[iss.Name] = e
	}
	return e
}

// issuerKeys returns the issuer's keys with key id kid, refetching the JWKS
// when the cache is stale or (at most every jwksRefetchEvery) kid is unknown.
func (m *Manager) issuerKeys(ctx context.Context, iss *Issuer, kid string) ([]jose.JSONWebKey, error) {
	if iss.JWKSURL == "" {
		set, err := parseJWKS(iss.JWKS, false)
		if err != nil {
			return nil, fmt.Errorf("identity: issuer %q has a corrupt inline JWKS: %w", iss.Name, err)
		}
		if ks := set.Key(kid); len(ks) > 0 {
			return ks, nil
		}
		return nil, jwtFail("key id (kid) not in the issuer's JWKS")
	}
	e := m.jwksEntryFor(iss)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := m.now()
	if e.keys == nil || now.Sub(e.fetchedAt) >= jwksCacheFor {
		if err := m.refresh(ctx, e, now); err != nil {
			return nil, err
		}
	}
	if ks := e.keys.Key(kid); len(ks) > 0 {
		return ks, nil
	}
	if now.Sub(e.attemptedAt) >= jwksRefetchEvery {
		if err := m.refresh(ctx, e, now); err != nil {
			return nil, err
		}
		if ks := e.keys.Key(kid); len(ks) > 0 {
			return ks, nil
		}
	}
	return nil, jwtFail("key id (kid) not in the issuer's JWKS")
}

// refresh fetches e's JWKS. After a failure it fails fast for jwksFailFor
// rather than let every login wait on a dead endpoint. e.mu is held.
func (m *Manager) refresh(ctx context.Context, e *jwksEntry, now time.Time) error {
	if e.failed && now.Sub(e.attemptedAt) < jwksFailFor {
		return ErrJWKSUnavailable
	}
	e.attemptedAt = now
	set, err := m.fetchJWKS(ctx, e.url)
	if err != nil {
		e.failed = true
		return fmt.Errorf("%w: %v", ErrJWKSUnavailable, err)
	}
	e.failed = false
	e.keys, e.fetchedAt = set, now
	return nil
}

func (m *Manager) fetchJWKS(ctx context.Context, u string) (*jose.JSONWebKeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, errors.New("bad JWKS URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := m.http.Do(req)
	if err != nil {
		return nil, errors.New("JWKS request failed")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS endpoint answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSLen+1))
	if err != nil {
		return nil, errors.New("reading the JWKS failed")
	}
	set, err := parseJWKS(body, false)
	if err != nil {
		return nil, err
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("the JWKS holds no usable public signing key")
	}
	return set, nil
}

// parseJWKS decodes a JWK set and keeps the usable keys: asymmetric public
// signing keys with a key id (RSA of at least 2048 bits, ECDSA, Ed25519).
// Keys of other kinds are skipped, or refused when strict (inline sets,
// where a private or symmetric key is a configuration mistake to report).
func parseJWKS(b []byte, strict bool) (*jose.JSONWebKeySet, error) {
	if len(b) > maxJWKSLen {
		return nil, errors.New("JWKS too large")
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, errors.New("JWKS is not a JSON key set")
	}
	set := &jose.JSONWebKeySet{}
	for i, kb := range raw.Keys {
		var k jose.JSONWebKey
		err := k.UnmarshalJSON(kb)
		usable := err == nil && k.KeyID != "" && (k.Use == "" || k.Use == "sig") && usableKey(k.Key)
		if !usable {
			if strict {
				return nil, fmt.Errorf("key %d is not a public RSA (>= %d bits), ECDSA or Ed25519 signing key with a kid", i, minRSABits)
			}
			continue
		}
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

func usableKey(k any) bool {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return true
	}
	return false
}
