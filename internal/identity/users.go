package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// User is a human principal. It never carries the password hash or the TOTP
// secret.
type User struct {
	Name         string        `json:"name"`
	Policies     []string      `json:"policies"`
	TokenTTL     time.Duration `json:"token_ttl"`
	TokenMaxTTL  time.Duration `json:"token_max_ttl"`
	TOTPEnrolled bool          `json:"totp_enrolled"`
	Disabled     bool          `json:"disabled"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
}

// UserOptions are the settings of a new user.
type UserOptions struct {
	// Policies granted to the user.
	Policies []string
	// TokenTTL and TokenMaxTTL bound the user's tokens (0: the defaults).
	TokenTTL, TokenMaxTTL time.Duration
}

// userRow is a user as stored.
type userRow struct {
	User
	passwordHash string
	totpSecret   []byte // sealed
	totpDigits   int
	totpLastStep int64
}

const userColumns = `name, password_hash, policies, token_ttl, token_max_ttl,
	totp_secret, totp_digits, totp_last_step, disabled_at, created_at, updated_at`

func scanUser(sc interface{ Scan(...any) error }) (*userRow, error) {
	var (
		r                  userRow
		policies           string
		ttl, maxTTL        int64
		disabled           *int64
		created, updatedAt int64
	)
	if err := sc.Scan(&r.Name, &r.passwordHash, &policies, &ttl, &maxTTL,
		&r.totpSecret, &r.totpDigits, &r.totpLastStep, &disabled, &created, &updatedAt); err != nil {
		return nil, err
	}
	ps, err := unmarshalList[string](policies)
	if err != nil {
		return nil, err
	}
	r.Policies = ps
	r.TokenTTL, r.TokenMaxTTL = time.Duration(ttl), time.Duration(maxTTL)
	r.TOTPEnrolled = r.totpSecret != nil
	r.Disabled = disabled != nil
	r.CreatedAt, r.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updatedAt).UTC()
	return &r, nil
}

func getUserTx(ctx context.Context, tx storage.Tx, name string, lock bool) (*userRow, error) {
	q := `SELECT ` + userColumns + ` FROM identity_users WHERE name = $1`
	if lock {
		q += tx.LockForUpdate()
	}
	r, err := scanUser(tx.QueryRow(ctx, q, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: user %q", ErrNotFound, name)
	}
	return r, err
}

// CreateUser adds a user with a password.
func (m *Manager) CreateUser(ctx context.Context, name, password string, opts UserOptions) (*User, error) {
	if err := validName("name", name); err != nil {
		return nil, err
	}
	if err := checkNewPassword(password); err != nil {
		return nil, err
	}
	policies, err := cleanPolicies("policies", opts.Policies)
	if err != nil {
		return nil, err
	}
	ttl, maxTTL, err := m.ttls(opts.TokenTTL, opts.TokenMaxTTL)
	if err != nil {
		return nil, err
	}
	hash, err := m.hash(ctx, password)
	if err != nil {
		return nil, err
	}
	now := m.now().UTC()
	u := &User{Name: name, Policies: policies, TokenTTL: ttl, TokenMaxTTL: maxTTL, CreatedAt: now, UpdatedAt: now}
	err = m.store.Write(ctx, func(tx storage.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO identity_users (name, password_hash, policies, token_ttl, token_max_ttl,
			totp_digits, totp_last_step, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)`,
			name, hash, marshalList(policies), int64(ttl), int64(maxTTL), totpDigits, now.UnixNano())
		if errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("%w: user %q", ErrExists, name)
		}
		if err != nil {
			return err
		}
		return m.record(ctx, tx, "create", KindUser, name)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// GetUser returns the named user.
func (m *Manager) GetUser(ctx context.Context, name string) (*User, error) {
	if err := validName("name", name); err != nil {
		return nil, err
	}
	var r *userRow
	err := m.store.Read(ctx, func(tx storage.Tx) (err error) {
		r, err = getUserTx(ctx, tx, name, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r.User, nil
}

// ListUsers returns a page of users: up to limit (1 to MaxListLimit) whose
// names sort after cursor ("" for the first page), by name.
func (m *Manager) ListUsers(ctx context.Context, limit int, cursor string) ([]User, error) {
	if err := checkPage(limit, cursor); err != nil {
		return nil, err
	}
	var out []User
	err := m.store.Read(ctx, func(tx storage.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT `+userColumns+` FROM identity_users WHERE name > $1 ORDER BY name LIMIT $2`, cursor, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanUser(rows)
			if err != nil {
				return err
			}
			out = append(out, r.User)
		}
		return rows.Err()
	})
	return out, err
}

// DisableUser stops the user from logging in. Disabling twice is not an error.
func (m *Manager) DisableUser(ctx context.Context, name string) error {
	return m.setUserDisabled(ctx, name, true)
}

// EnableUser lets a disabled user log in again.
func (m *Manager) EnableUser(ctx context.Context, name string) error {
	return m.setUserDisabled(ctx, name, false)
}

func (m *Manager) setUserDisabled(ctx context.Context, name string, disabled bool) error {
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
		r, err := getUserTx(ctx, tx, name, true)
		if err != nil {
			return err
		}
		if r.Disabled == disabled {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE identity_users SET disabled_at = $1, updated_at = $2 WHERE name = $3`,
			at, now, name); err != nil {
			return err
		}
		return m.record(ctx, tx, op, KindUser, name)
	})
}

// SetPassword replaces the user's password.
func (m *Manager) SetPassword(ctx context.Context, name, password string) error {
	if err := validName("name", name); err != nil {
		return err
	}
	if err := checkNewPassword(password); err != nil {
		return err
	}
	if _, err := m.GetUser(ctx, name); err != nil { // fail before the costly hash
		return err
	}
	hash, err := m.hash(ctx, password)
	if err != nil {
		return err
	}
	return m.updateUser(ctx, name, "set_password", `password_hash = $1`, hash)
}

// EnrollTOTP gives the user a new TOTP secret, replacing any previous one,
// and returns it (base32) with its otpauth:// URL. Both are shown once; from
// then on every password login of the user needs a code.
func (m *Manager) EnrollTOTP(ctx context.Context, name string) (secretBase32, otpauthURLStr string, err error) {
	if err := validName("name", name); err != nil {
		return "", "", err
	}
	secret, secretB32 := newTOTPSecret()
	sealed, err := m.sealer.Encrypt(totpAAD(name), secret)
	if err != nil {
		return "", "", fmt.Errorf("identity: seal TOTP secret: %w", err)
	}
	if err := m.updateUser(ctx, name, "enroll_totp",
		`totp_secret = $1, totp_digits = $2, totp_last_step = 0`, sealed, totpDigits); err != nil {
		return "", "", err
	}
	return secretB32, otpauthURL(m.totpIssuer, name, secretB32, totpDigits), nil
}

// RemoveTOTP removes the user's TOTP enrolment (an operator's recovery step
// when the authenticator is lost).
func (m *Manager) RemoveTOTP(ctx context.Context, name string) error {
	if err := validName("name", name); err != nil {
		return err
	}
	return m.updateUser(ctx, name, "remove_totp", `totp_secret = NULL, totp_last_step = 0`)
}

// updateUser sets columns (whose placeholders are $1..$n) of an enabled user.
func (m *Manager) updateUser(ctx context.Context, name, op, set string, args ...any) error {
	now := m.now().UnixNano()
	n := len(args)
	args = append(args, now, name)
	return m.store.Write(ctx, func(tx storage.Tx) error {
		r, err := getUserTx(ctx, tx, name, true)
		if err != nil {
			return err
		}
		if r.Disabled {
			return fmt.Errorf("%w: user %q", ErrDisabled, name)
		}
		q := fmt.Sprintf(`UPDATE identity_users SET %s, updated_at = $%d WHERE name = $%d`, set, n+1, n+2)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return err
		}
		return m.record(ctx, tx, op, KindUser, name)
	})
}

// hash hashes a password, waiting for a hashing slot.
func (m *Manager) hash(ctx context.Context, password string) (string, error) {
	release, err := m.acquireHash(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return hashPassword(password, m.params), nil
}

// verify checks a password against a stored hash, waiting for a slot.
func (m *Manager) verify(ctx context.Context, password, encoded string) (bool, error) {
	release, err := m.acquireHash(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return verifyPassword(password, encoded)
}

// dummy returns a hash of a random password with the current parameters;
// unknown users are checked against it so they cost as much as known ones.
func (m *Manager) dummy() string {
	m.dummyOnce.Do(func() {
		pw, _ := newTOTPSecret()
		m.dummyHash = hashPassword(string(pw), m.params)
	})
	return m.dummyHash
}

// PasswordLogin authenticates a user by password and, when the user is
// enrolled, a TOTP code. Every failure is ErrInvalidCredentials, except a
// missing code after a correct password (ErrTOTPRequired), a lockout
// (*ThrottledError) and internal errors.
func (m *Manager) PasswordLogin(ctx context.Context, name, password, totpCode string, src netip.Addr) (*Principal, error) {
	validName := nameRe.MatchString(name)
	principalKey := ""
	if validName { // junk names do not get throttle entries of their own
		principalKey = KindUser + ":" + name
	}
	keys := throttleKeys(principalKey, src)
	if err := m.checkThrottle(keys); err != nil {
		return nil, err
	}
	var r *userRow
	if validName {
		err := m.store.Read(ctx, func(tx storage.Tx) (err error) {
			r, err = getUserTx(ctx, tx, name, false)
			return err
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	hash := m.dummy()
	if r != nil {
		hash = r.passwordHash
	}
	if len(password) > MaxPasswordLen {
		password = password[:MaxPasswordLen] // still do the work; it cannot match
		r = nil
	}
	ok, err := m.verify(ctx, password, hash)
	if err != nil && !errors.Is(err, errBadHash) {
		return nil, err
	}
	if !ok || r == nil || r.Disabled {
		return nil, m.fail(keys, ErrInvalidCredentials)
	}
	if r.totpSecret != nil {
		if totpCode == "" {
			return nil, ErrTOTPRequired
		}
		if err := m.checkTOTP(ctx, r, totpCode); err != nil {
			if errors.Is(err, ErrInvalidCredentials) {
				return nil, m.fail(keys, err)
			}
			return nil, err
		}
	}
	m.throttle.Success("principal:" + principalKey)
	m.upgradeHash(ctx, r.Name, r.passwordHash, password)
	return &Principal{
		Kind:        KindUser,
		Name:        r.Name,
		Policies:    r.Policies,
		TokenTTL:    r.TokenTTL,
		TokenMaxTTL: r.TokenMaxTTL,
	}, nil
}

// checkTOTP verifies code and consumes its step, so it cannot be replayed.
func (m *Manager) checkTOTP(ctx context.Context, r *userRow, code string) error {
	secret, err := m.sealer.Decrypt(totpAAD(r.Name), r.totpSecret)
	if err != nil {
		return fmt.Errorf("identity: open TOTP secret: %w", err)
	}
	step, ok := matchTOTP(secret, m.now(), r.totpDigits, code)
	clear(secret)
	if !ok || int64(step) <= r.totpLastStep {
		return ErrInvalidCredentials
	}
	// The conditional update makes two concurrent logins with one code race
	// for the step: exactly one of them wins.
	return m.store.Write(ctx, func(tx storage.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE identity_users SET totp_last_step = $1
			WHERE name = $2 AND totp_last_step < $1 AND disabled_at IS NULL`, int64(step), r.Name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return ErrInvalidCredentials
		}
		return nil
	})
}

// upgradeHash rehashes a password whose stored hash uses other parameters
// than the current ones, now that the plaintext is at hand. It is best
// effort: a failure leaves the old (still valid) hash, and the update only
// applies if the hash was not changed meanwhile (by SetPassword).
func (m *Manager) upgradeHash(ctx context.Context, name, old, password string) {
	p, _, _, err := decodePHC(old)
	if err != nil || p == m.params {
		return
	}
	h, err := m.hash(ctx, password)
	if err != nil {
		return
	}
	_ = m.store.Write(ctx, func(tx storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE identity_users SET password_hash = $1 WHERE name = $2 AND password_hash = $3`,
			h, name, old)
		return err
	})
}
