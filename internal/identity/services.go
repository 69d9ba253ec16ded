package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// Service accounts log in with a client id ("kwsvc-" + 16 hex digits,
// random, not secret) and a client secret (two crypto/rand.Text values: 52
// base32 characters, 260 bits). The secret is shown once; the database holds
// only HMAC-SHA256(client id ‖ 0x00 ‖ secret) under the barrier's key for
// macPurpose, so a stolen database cannot test guesses and a hash cannot be
// moved to another account.

const (
	macPurpose     = "identity/service-secret"
	clientIDPrefix = "kwsvc-"
	// MaxGrace caps how long a rotated-out secret stays valid.
	MaxGrace = 30 * 24 * time.Hour
	// MaxBoundCIDRs caps a service account's bound networks.
	MaxBoundCIDRs = 64
)

var clientIDRe = regexp.MustCompile(`^kwsvc-[0-9a-f]{16}$`)

// ServiceAccount is a non-human principal. It never carries its secret or
// the secret's hash.
type ServiceAccount struct {
	Name        string         `json:"name"`
	ClientID    string         `json:"client_id"`
	Policies    []string       `json:"policies"`
	TokenTTL    time.Duration  `json:"token_ttl"`
	TokenMaxTTL time.Duration  `json:"token_max_ttl"`
	BoundCIDRs  []netip.Prefix `json:"bound_cidrs,omitempty"`
	Disabled    bool           `json:"disabled"`
	// SecretCreatedAt is when the current secret was issued.
	SecretCreatedAt time.Time `json:"secret_created_at"`
	// PreviousSecretExpiresAt, when not zero, is when the secret replaced by
	// the last rotation stops working.
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero"`
	CreatedAt               time.Time `json:"created_at"`
	UpdatedAt               time.Time `json:"updated_at"`
	// LastLoginAt is when it last logged in (to the minute), zero: never.
	LastLoginAt time.Time `json:"last_login_at,omitzero"`
}

// ServiceOptions are the settings of a new service account.
type ServiceOptions struct {
	// Policies granted to the account.
	Policies []string
	// TokenTTL and TokenMaxTTL bound the account's tokens (0: the defaults).
	TokenTTL, TokenMaxTTL time.Duration
	// BoundCIDRs, when set, are the only networks the account may log in
	// from; they are also passed on in the Principal.
	BoundCIDRs []netip.Prefix
}

type serviceRow struct {
	ServiceAccount
	secretHash []byte
	prevHash   []byte
	prevExp    *int64
}

const serviceColumns = `name, client_id, secret_hash, secret_created_at, prev_secret_hash, prev_expires_at,
	policies, token_ttl, token_max_ttl, bound_cidrs, disabled_at, created_at, updated_at, last_login_at`

func scanService(sc interface{ Scan(...any) error }) (*serviceRow, error) {
	var (
		r                           serviceRow
		policies, cidrs             string
		ttl, maxTTL                 int64
		disabled                    *int64
		secretAt, created, updateAt int64
		lastLogin                   int64
	)
	if err := sc.Scan(&r.Name, &r.ClientID, &r.secretHash, &secretAt, &r.prevHash, &r.prevExp,
		&policies, &ttl, &maxTTL, &cidrs, &disabled, &created, &updateAt, &lastLogin); err != nil {
		return nil, err
	}
	var err error
	if r.Policies, err = unmarshalList[string](policies); err != nil {
		return nil, err
	}
	if r.BoundCIDRs, err = unmarshalList[netip.Prefix](cidrs); err != nil {
		return nil, err
	}
	if len(r.BoundCIDRs) == 0 {
		r.BoundCIDRs = nil
	}
	r.TokenTTL, r.TokenMaxTTL = time.Duration(ttl), time.Duration(maxTTL)
	r.Disabled = disabled != nil
	r.SecretCreatedAt = time.Unix(0, secretAt).UTC()
	r.PreviousSecretExpiresAt = timeOrZero(r.prevExp)
	r.CreatedAt, r.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updateAt).UTC()
	if lastLogin > 0 {
		r.LastLoginAt = time.Unix(0, lastLogin).UTC()
	}
	return &r, nil
}

func getServiceTx(ctx context.Context, tx storage.Tx, column, value string, lock bool) (*serviceRow, error) {
	q := `SELECT ` + serviceColumns + ` FROM identity_services WHERE ` + column + ` = $1`
	if lock {
		q += tx.LockForUpdate()
	}
	r, err := scanService(tx.QueryRow(ctx, q, value))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: service account %q", ErrNotFound, value)
	}
	return r, err
}

// newClientSecret returns a fresh client secret.
func newClientSecret() string { return rand.Text() + rand.Text() }

// secretMAC returns the stored form of secret for clientID.
func (m *Manager) secretMAC(clientID, secret string) ([]byte, error) {
	data := make([]byte, 0, len(clientID)+1+len(secret))
	data = append(append(append(data, clientID...), 0), secret...)
	h := m.mac.MAC(macPurpose, data)
	clear(data)
	if h == nil {
		return nil, ErrSealed
	}
	return h, nil
}

func cleanCIDRs(cidrs []netip.Prefix) ([]netip.Prefix, error) {
	if len(cidrs) > MaxBoundCIDRs {
		return nil, invalid("bound_cidrs", "at most %d networks", MaxBoundCIDRs)
	}
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, p := range cidrs {
		if !p.IsValid() {
			return nil, invalid("bound_cidrs", "invalid network")
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(0, p.Bits()-96))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// CreateService adds a service account and returns it with its client
// secret, which is shown only this once.
func (m *Manager) CreateService(ctx context.Context, name string, opts ServiceOptions) (svc *ServiceAccount, clientSecret string, err error) {
	if err := validName("name", name); err != nil {
		return nil, "", err
	}
	policies, err := cleanPolicies("policies", opts.Policies)
	if err != nil {
		return nil, "", err
	}
	ttl, maxTTL, err := m.ttls(opts.TokenTTL, opts.TokenMaxTTL)
	if err != nil {
		return nil, "", err
	}
	cidrs, err := cleanCIDRs(opts.BoundCIDRs)
	if err != nil {
		return nil, "", err
	}
	clientID := clientIDPrefix + randomHex(8)
	secret := newClientSecret()
	h, err := m.secretMAC(clientID, secret)
	if err != nil {
		return nil, "", err
	}
	now := m.now().UTC()
	svc = &ServiceAccount{
		Name: name, ClientID: clientID, Policies: policies, TokenTTL: ttl, TokenMaxTTL: maxTTL,
		SecretCreatedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	if len(cidrs) > 0 {
		svc.BoundCIDRs = cidrs
	}
	err = m.store.Write(ctx, func(tx storage.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO identity_services (name, client_id, secret_hash, secret_created_at,
			policies, token_ttl, token_max_ttl, bound_cidrs, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $4, $4)`,
			name, clientID, h, now.UnixNano(), marshalList(policies), int64(ttl), int64(maxTTL), marshalList(cidrs))
		if errors.Is(err, storage.ErrConflict) {
			// A client id collision (2^-64) would also land here; the name
			// is by far the likelier cause.
			return fmt.Errorf("%w: service account %q", ErrExists, name)
		}
		if err != nil {
			return err
		}
		return m.record(ctx, tx, "create", KindService, name)
	})
	if err != nil {
		return nil, "", err
	}
	return svc, secret, nil
}

// GetService returns the named service account.
func (m *Manager) GetService(ctx context.Context, name string) (*ServiceAccount, error) {
	if err := validName("name", name); err != nil {
		return nil, err
	}
	var r *serviceRow
	err := m.store.Read(ctx, func(tx storage.Tx) (err error) {
		r, err = getServiceTx(ctx, tx, "name", name, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r.ServiceAccount, nil
}

// ListServices returns a page of service accounts: up to limit (1 to
// MaxListLimit) whose names sort after cursor ("" for the first page), by
// name.
func (m *Manager) ListServices(ctx context.Context, limit int, cursor string) ([]ServiceAccount, error) {
	if err := checkPage(limit, cursor); err != nil {
		return nil, err
	}
	var out []ServiceAccount
	err := m.store.Read(ctx, func(tx storage.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT `+serviceColumns+` FROM identity_services WHERE name > $1 ORDER BY name LIMIT $2`, cursor, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanService(rows)
			if err != nil {
				return err
			}
			out = append(out, r.ServiceAccount)
		}
		return rows.Err()
	})
	return out, err
}

// DisableService stops the account from logging in. Disabling twice is not
// an error.
func (m *Manager) DisableService(ctx context.Context, name string) error {
	return m.setServiceDisabled(ctx, name, true)
}

// EnableService lets a disabled account log in again.
func (m *Manager) EnableService(ctx context.Context, name string) error {
	return m.setServiceDisabled(ctx, name, false)
}

func (m *Manager) setServiceDisabled(ctx context.Context, name string, disabled bool) error {
	if err := validName("name", name); err != nil {
		return err
	}
	now := m.now().UnixNano()
	var at *int64
	op := "enable"
	if disabled {
		at, op = &now, "disable"
	}
	return m.store.Write(ctx, func(tx storage.Tx) error {
		r, err := getServiceTx(ctx, tx, "name", name, true)
		if err != nil {
			return err
		}
		if r.Disabled == disabled {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE identity_services SET disabled_at = $1, updated_at = $2 WHERE name = $3`,
			at, now, name); err != nil {
			return err
		}
		return m.record(ctx, tx, op, KindService, name)
	})
}

// RotateServiceSecret issues a new client secret. The current secret stays
// valid until now+grace (grace 0 ends it at once); a secret rotated out
// earlier stops working immediately.
func (m *Manager) RotateServiceSecret(ctx context.Context, name string, grace time.Duration) (newSecret string, err error) {
	if err := validName("name", name); err != nil {
		return "", err
	}
	if grace < 0 || grace > MaxGrace {
		return "", invalid("grace", "must be between 0 and %v", MaxGrace)
	}
	secret := newClientSecret()
	now := m.now()
	err = m.store.Write(ctx, func(tx storage.Tx) error {
		r, err := getServiceTx(ctx, tx, "name", name, true)
		if err != nil {
			return err
		}
		if r.Disabled {
			return fmt.Errorf("%w: service account %q", ErrDisabled, name)
		}
		h, err := m.secretMAC(r.ClientID, secret)
		if err != nil {
			return err
		}
		var prev []byte
		var prevExp *int64
		if grace > 0 {
			exp := now.Add(grace).UnixNano()
			prev, prevExp = r.secretHash, &exp
		}
		if _, err := tx.Exec(ctx, `UPDATE identity_services SET secret_hash = $1, secret_created_at = $2,
			prev_secret_hash = $3, prev_expires_at = $4, updated_at = $2 WHERE name = $5`,
			h, now.UnixNano(), prev, prevExp, name); err != nil {
			return err
		}
		return m.record(ctx, tx, "rotate_secret", KindService, name)
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// ServiceLogin authenticates a service account by client id and secret.
// Every failure is ErrInvalidCredentials, apart from a lockout
// (*ThrottledError) and internal errors (ErrSealed, storage).
func (m *Manager) ServiceLogin(ctx context.Context, clientID, clientSecret string, src netip.Addr) (*Principal, error) {
	validID := clientIDRe.MatchString(clientID)
	principalKey := ""
	if validID { // junk ids do not get throttle entries of their own
		principalKey = KindService + ":" + clientID
	}
	keys := throttleKeys(principalKey, src)
	if err := m.checkThrottle(keys); err != nil {
		return nil, err
	}
	if len(clientSecret) > maxSecretLen {
		clientSecret = clientSecret[:maxSecretLen]
		validID = false
	}
	if !validID {
		clientID = clientIDPrefix // bounded work for junk input
	}
	h, err := m.secretMAC(clientID, clientSecret)
	if err != nil {
		return nil, err
	}
	var r *serviceRow
	if validID {
		err := m.store.Read(ctx, func(tx storage.Tx) (err error) {
			r, err = getServiceTx(ctx, tx, "client_id", clientID, false)
			return err
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	if r == nil {
		// Same comparisons as for a real account.
		dummy := make([]byte, len(h))
		subtle.ConstantTimeCompare(h, dummy)
		subtle.ConstantTimeCompare(h, dummy)
		return nil, m.fail(keys, ErrInvalidCredentials)
	}
	cur := subtle.ConstantTimeCompare(h, r.secretHash)
	prev := 0
	if r.prevHash != nil {
		prev = subtle.ConstantTimeCompare(h, r.prevHash)
		if r.prevExp == nil || m.now().UnixNano() >= *r.prevExp {
			prev = 0
		}
	}
	if cur|prev != 1 || r.Disabled || !srcAllowed(r.BoundCIDRs, src) {
		return nil, m.fail(keys, ErrInvalidCredentials)
	}
	m.throttle.Success("principal:" + principalKey)
	m.noteServiceLogin(ctx, r)
	return &Principal{
		Kind:        KindService,
		Name:        r.Name,
		Policies:    r.Policies,
		TokenTTL:    r.TokenTTL,
		TokenMaxTTL: r.TokenMaxTTL,
		BoundCIDRs:  r.BoundCIDRs,
		Metadata:    map[string]string{"client_id": r.ClientID},
	}, nil
}

// srcAllowed reports whether src lies in one of cidrs (any src when none).
func srcAllowed(cidrs []netip.Prefix, src netip.Addr) bool {
	if len(cidrs) == 0 {
		return true
	}
	if !src.IsValid() {
		return false
	}
	src = src.Unmap().WithZone("")
	for _, p := range cidrs {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// loginNoteEvery is how stale a service account's recorded last login may
// get: a login within it of the last one recorded writes nothing.
const loginNoteEvery = time.Minute

// noteServiceLogin records r's login now, at most once a loginNoteEvery.
// It is best effort: the login does not fail for it (the token it leads
// to needs storage anyway).
func (m *Manager) noteServiceLogin(ctx context.Context, r *serviceRow) {
	now := m.now()
	if now.Sub(r.LastLoginAt) < loginNoteEvery {
		return
	}
	err := m.store.Write(ctx, func(tx storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE identity_services SET last_login_at = $1 WHERE name = $2 AND last_login_at < $3`,
			now.UnixNano(), r.Name, now.Add(-loginNoteEvery).UnixNano())
		return err
	})
	if err != nil && m.onError != nil {
		m.onError(fmt.Errorf("identity: recording service account %q's last login: %w", r.Name, err))
	}
}
