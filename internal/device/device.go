// Package device enrolls devices: each gets a key of its own and proves it
// holds it on every request.
//
// An operator creates an enrollment code (kwe_…) for a batch of devices,
// with the policies they get, how many devices may use it and for how long.
// A device generates a key pair in its secure element, and enrolls by
// sending the code with a DPoP proof (RFC 9449) signed by that key: keyward
// registers the device under the key's thumbprint (RFC 7638). From then on
// the device gets short-lived access tokens bound to its key by signing a
// proof for the token endpoint, and every call it makes carries a fresh
// proof, so a copied token is useless and no secret is shared between
// devices.
//
// Invariants:
//   - An enrollment code is stored as an HMAC only; its plaintext is shown
//     once. A code's uses are spent atomically: exactly Uses devices enroll.
//   - A key enrolls one device (the thumbprint is unique).
//   - Proofs are checked by the caller (internal/httpapi, with the node's
//     DPoP verifier); Device.HoldsKey compares thumbprints in constant time.
//
// It imports internal/storage and internal/credential only.
package device

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/storage"
)

// Limits and defaults.
const (
	DefaultCodeTTL = 24 * time.Hour
	MaxCodeTTL     = 30 * 24 * time.Hour
	MaxUses        = 1_000_000
	MaxPolicies    = 16
)

// Errors.
var (
	ErrInvalid  = errors.New("device: invalid request")
	ErrNotFound = errors.New("device: not found")
	// ErrCode: the enrollment code is unknown, expired, revoked or used up
	// (one error for all: a guesser learns nothing).
	ErrCode = errors.New("device: the enrollment code is invalid, expired, revoked or used up")
	// ErrKeyEnrolled: the key already belongs to an enrolled device.
	ErrKeyEnrolled = errors.New("device: this key is already enrolled")
	ErrSealed      = errors.New("device: keyward is sealed")
)

// MACer hashes enrollment codes (the barrier); nil result: sealed.
type MACer interface {
	MAC(purpose string, data []byte) []byte
}

// Enrollment is an enrollment code's settings (never the code).
type Enrollment struct {
	ID        string    `json:"id"`
	Label     string    `json:"label,omitempty"`
	Policies  []string  `json:"policies"`
	Uses      int       `json:"uses"`
	Remaining int       `json:"remaining"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	ExpiresAt time.Time `json:"expires_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Device is an enrolled device.
type Device struct {
	ID           string    `json:"id"`
	Name         string    `json:"name,omitempty"`
	JKT          string    `json:"jkt"` // its key's thumbprint
	Policies     []string  `json:"policies"`
	EnrollmentID string    `json:"enrollment_id"`
	CreatedAt    time.Time `json:"created_at"`
	DisabledAt   time.Time `json:"disabled_at,omitzero"`
	// LastTokenAt is when it last got a token (to the minute), zero: never.
	LastTokenAt time.Time `json:"last_token_at,omitzero"`
}

// Principal is the device's principal in tokens and the audit log.
func (d *Device) Principal() string { return "device:" + d.ID }

// Service stores enrollments and devices.
type Service struct {
	st  storage.Store
	mac MACer
	now func() time.Time
}

// New returns a Service; now may be nil (time.Now).
func New(st storage.Store, mac MACer, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{st: st, mac: mac, now: now}
}

// AuditFunc runs inside the transaction of a change; an error rolls it back.
type AuditFunc func(ctx context.Context, tx storage.Tx) error

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ValidID reports whether id has the shape of a device or enrollment id.
func ValidID(id string) bool {
	return len(id) == 28 && (id[:4] == "dev_" || id[:4] == "enr_") && credentialChars(id[4:])
}

func credentialChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func (s *Service) codeHash(code string) (string, error) {
	h := s.mac.MAC("device-enrollment", []byte(code))
	if h == nil {
		return "", ErrSealed
	}
	return hex.EncodeToString(h), nil
}

// CreateEnrollment makes an enrollment code for uses devices (0: 1),
// valid for ttl (0: DefaultCodeTTL), giving them policies. It returns the
// code, shown once. known, when set, says which policies exist.
func (s *Service) CreateEnrollment(ctx context.Context, label string, policies []string, uses int, ttl time.Duration, by string, known func(string) bool, audit AuditFunc) (string, *Enrollment, error) {
	if uses == 0 {
		uses = 1
	}
	if ttl == 0 {
		ttl = DefaultCodeTTL
	}
	policies = slices.Compact(slices.Sorted(slices.Values(policies)))
	switch {
	case label != "" && !labelRE.MatchString(label):
		return "", nil, invalid("label: 1 to 64 of A-Z a-z 0-9 . _ -")
	case len(policies) == 0 || len(policies) > MaxPolicies:
		return "", nil, invalid("policies: want 1 to %d", MaxPolicies)
	case uses < 1 || uses > MaxUses:
		return "", nil, invalid("uses: want 1 to %d", MaxUses)
	case ttl < time.Minute || ttl > MaxCodeTTL:
		return "", nil, invalid("ttl: want 1m to %s", MaxCodeTTL)
	}
	for _, p := range policies {
		if p == "root" {
			return "", nil, invalid("policies: devices never get root")
		}
		if known != nil && !known(p) {
			return "", nil, invalid("policies: %q does not exist", p)
		}
	}
	code := credential.New(credential.Enrollment)
	hash, err := s.codeHash(code)
	if err != nil {
		return "", nil, err
	}
	now := s.now().UTC()
	e := &Enrollment{ID: "enr_" + credential.RandomBase62(24), Label: label, Policies: policies, Uses: uses, Remaining: uses,
		CreatedAt: now, CreatedBy: by, ExpiresAt: now.Add(ttl)}
	pol, _ := json.Marshal(policies)
	err = s.st.Write(ctx, func(tx storage.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO device_enrollments (id, code_hash, label, policies, uses, remaining, created_at, created_by, expires_at, revoked_at)
			VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, 0)`,
			e.ID, hash, e.Label, string(pol), e.Uses, now.UnixNano(), by, e.ExpiresAt.UnixNano()); err != nil {
			return err
		}
		if audit != nil {
			return audit(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("device: create enrollment: %w", err)
	}
	return code, e, nil
}

const enrollmentColumns = `id, label, policies, uses, remaining, created_at, created_by, expires_at, revoked_at`

func scanEnrollment(row interface{ Scan(...any) error }) (*Enrollment, error) {
	var e Enrollment
	var pol string
	var created, expires, revoked int64
	if err := row.Scan(&e.ID, &e.Label, &pol, &e.Uses, &e.Remaining, &created, &e.CreatedBy, &expires, &revoked); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(pol), &e.Policies); err != nil {
		return nil, fmt.Errorf("device: enrollment %s: policies: %w", e.ID, err)
	}
	e.CreatedAt, e.ExpiresAt = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC()
	if revoked != 0 {
		e.RevokedAt = time.Unix(0, revoked).UTC()
	}
	return &e, nil
}

// Enrollments lists enrollment codes, newest first.
func (s *Service) Enrollments(ctx context.Context) ([]*Enrollment, error) {
	out := []*Enrollment{}
	err := s.st.Read(ctx, func(tx storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+enrollmentColumns+` FROM device_enrollments ORDER BY created_at DESC, id LIMIT 1000`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEnrollment(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("device: list enrollments: %w", err)
	}
	return out, nil
}

// RevokeEnrollment ends enrollment id's code (devices enrolled stay).
func (s *Service) RevokeEnrollment(ctx context.Context, id string, audit AuditFunc) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	return s.st.Write(ctx, func(tx storage.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE device_enrollments SET revoked_at = $1 WHERE id = $2 AND revoked_at = 0`, s.now().UnixNano(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			if err := tx.QueryRow(ctx, `SELECT 1 FROM device_enrollments WHERE id = $1`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
		}
		if audit != nil {
			return audit(ctx, tx)
		}
		return nil
	})
}

// CheckCode reports whether code is live (ErrCode when not), without
// spending a use: callers check it before they spend anything else on a
// request (a DPoP replay-cache slot).
func (s *Service) CheckCode(ctx context.Context, code string) error {
	if credential.ParseType(code, credential.Enrollment) != nil {
		return ErrCode
	}
	hash, err := s.codeHash(code)
	if err != nil {
		return err
	}
	var one int
	err = s.st.Read(ctx, func(tx storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT 1 FROM device_enrollments WHERE code_hash = $1 AND remaining > 0 AND revoked_at = 0 AND expires_at > $2`,
			hash, s.now().UnixNano()).Scan(&one)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ErrCode
	}
	if err != nil {
		return fmt.Errorf("device: check code: %w", err)
	}
	return nil
}

// Enroll registers a device holding the key of thumbprint jkt (which the
// caller checked with a DPoP proof) with code, spending one of its uses.
func (s *Service) Enroll(ctx context.Context, code, jkt, name string, audit func(ctx context.Context, tx storage.Tx, d *Device) error) (*Device, error) {
	if credential.ParseType(code, credential.Enrollment) != nil {
		return nil, ErrCode
	}
	if name != "" && !labelRE.MatchString(name) {
		return nil, invalid("name: 1 to 64 of A-Z a-z 0-9 . _ -")
	}
	if jkt == "" || len(jkt) > 128 {
		return nil, invalid("the device key's thumbprint is missing")
	}
	hash, err := s.codeHash(code)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	d := &Device{ID: "dev_" + credential.RandomBase62(24), Name: name, JKT: jkt, CreatedAt: now}
	err = s.st.Write(ctx, func(tx storage.Tx) error {
		var pol string
		// Spend a use of a live code, atomically: exactly Uses devices enroll.
		err := tx.QueryRow(ctx, `UPDATE device_enrollments SET remaining = remaining - 1
			WHERE code_hash = $1 AND remaining > 0 AND revoked_at = 0 AND expires_at > $2 RETURNING id, policies`,
			hash, now.UnixNano()).Scan(&d.EnrollmentID, &pol)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrCode
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(pol), &d.Policies); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO devices (id, name, jkt, policies, enrollment_id, created_at, disabled_at) VALUES ($1, $2, $3, $4, $5, $6, 0)`,
			d.ID, d.Name, d.JKT, pol, d.EnrollmentID, now.UnixNano()); err != nil {
			if errors.Is(err, storage.ErrConflict) {
				return ErrKeyEnrolled
			}
			return err
		}
		if audit != nil {
			return audit(ctx, tx, d)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrCode) || errors.Is(err, ErrKeyEnrolled) || errors.Is(err, ErrInvalid) {
			return nil, err
		}
		return nil, fmt.Errorf("device: enroll: %w", err)
	}
	return d, nil
}

const deviceColumns = `id, name, jkt, policies, enrollment_id, created_at, disabled_at, last_token_at`

func scanDevice(row interface{ Scan(...any) error }) (*Device, error) {
	var d Device
	var pol string
	var created, disabled, lastToken int64
	if err := row.Scan(&d.ID, &d.Name, &d.JKT, &pol, &d.EnrollmentID, &created, &disabled, &lastToken); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(pol), &d.Policies); err != nil {
		return nil, fmt.Errorf("device: %s: policies: %w", d.ID, err)
	}
	d.CreatedAt = time.Unix(0, created).UTC()
	if disabled != 0 {
		d.DisabledAt = time.Unix(0, disabled).UTC()
	}
	if lastToken != 0 {
		d.LastTokenAt = time.Unix(0, lastToken).UTC()
	}
	return &d, nil
}

// Get returns device id.
func (s *Service) Get(ctx context.Context, id string) (*Device, error) {
	if !ValidID(id) || id[:4] != "dev_" {
		return nil, ErrNotFound
	}
	var d *Device
	err := s.st.Read(ctx, func(tx storage.Tx) error {
		var err error
		d, err = scanDevice(tx.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = $1`, id))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("device: get: %w", err)
	}
	return d, nil
}

// List returns up to limit devices with ids after cursor, by id.
func (s *Service) List(ctx context.Context, limit int, cursor string) ([]*Device, error) {
	out := []*Device{}
	err := s.st.Read(ctx, func(tx storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id > $1 ORDER BY id LIMIT $2`, cursor, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDevice(rows)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("device: list: %w", err)
	}
	return out, nil
}

// SetDisabled disables (or enables again) device id. A disabled device gets
// no token; the caller revokes the ones it holds.
func (s *Service) SetDisabled(ctx context.Context, id string, disabled bool, audit AuditFunc) (*Device, error) {
	d, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	at := int64(0)
	if disabled {
		at = s.now().UnixNano()
	}
	err = s.st.Write(ctx, func(tx storage.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE devices SET disabled_at = $1 WHERE id = $2`, at, id); err != nil {
			return err
		}
		if audit != nil {
			return audit(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("device: disable: %w", err)
	}
	d.DisabledAt = time.Time{}
	if disabled {
		d.DisabledAt = time.Unix(0, at).UTC()
	}
	return d, nil
}

// Delete removes device id (its key may enroll again with a new code).
func (s *Service) Delete(ctx context.Context, id string, audit AuditFunc) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	return s.st.Write(ctx, func(tx storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM devices WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if audit != nil {
			return audit(ctx, tx)
		}
		return nil
	})
}

// Enabled reports whether d may get tokens.
func (d *Device) Enabled() bool { return d.DisabledAt.IsZero() }

// HoldsKey reports, in constant time, whether jkt is the thumbprint of d's
// key (the key of a DPoP proof it sent).
func (d *Device) HoldsKey(jkt string) bool {
	return subtle.ConstantTimeCompare([]byte(d.JKT), []byte(jkt)) == 1
}

// tokenNoteEvery is how stale a device's recorded last token may get.
const tokenNoteEvery = time.Minute

// NoteToken records, in the caller's transaction (the token's own), that
// device d got a token at now; nothing when the record is fresher than
// tokenNoteEvery.
func NoteToken(ctx context.Context, tx storage.Tx, d *Device, now time.Time) error {
	if now.Sub(d.LastTokenAt) < tokenNoteEvery {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE devices SET last_token_at = $1 WHERE id = $2 AND last_token_at < $3`,
		now.UnixNano(), d.ID, now.Add(-tokenNoteEvery).UnixNano())
	return err
}
