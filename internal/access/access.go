// Package access keeps just-in-time access requests: a principal asks for
// policies it does not hold, for a while and a reason; another principal
// allowed to grant them approves or denies; once approved, the requester
// exchanges the request for a token holding those policies for that while.
//
// Invariants:
//   - Four eyes: a request is never decided by its requester, and only the
//     requester exchanges it for a token, once.
//   - A pending request expires after PendingFor, an approved one that was
//     not exchanged after ClaimFor: stale approvals grant nothing.
//   - Every change is one transaction that checks the state it changes
//     (pending → approved | denied, approved → issued), so two deciders or
//     two exchanges cannot both succeed.
//
// The package stores requests; it does not decide who may approve (the
// caller checks the decider's policies) nor issue tokens (Claim hands the
// request over inside the transaction that marks it issued, and the caller
// issues the token there). It imports internal/storage and
// internal/credential (for its ids) only.
package access

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/storage"
)

// States of a request.
const (
	Pending  = "pending"
	Approved = "approved"
	Denied   = "denied"
	Issued   = "issued"
	Expired  = "expired" // pending or approved for too long (computed, not stored)
)

// Limits.
const (
	MinTTL     = time.Minute
	MaxTTL     = 12 * time.Hour
	DefaultTTL = time.Hour
	// PendingFor is how long a request waits for a decision.
	PendingFor = 24 * time.Hour
	// ClaimFor is how long an approval waits for the requester.
	ClaimFor = time.Hour
	// MaxPolicies, MaxReason and MaxNote bound a request's fields.
	MaxPolicies = 16
	MaxReason   = 500
	MaxNote     = 500
)

// Errors.
var (
	ErrInvalid  = errors.New("access: invalid request")
	ErrNotFound = errors.New("access: no such request")
	// ErrState: the request is not in the state the change needs (decided,
	// issued, expired).
	ErrState = errors.New("access: the request cannot change so")
	// ErrSelf: the requester tried to decide its own request.
	ErrSelf = errors.New("access: a request cannot be decided by its requester")
	// ErrNotRequester: someone other than the requester tried to claim it.
	ErrNotRequester = errors.New("access: only the requester can claim the request")
)

// Request is one access request.
type Request struct {
	ID        string        `json:"id"`
	Requester string        `json:"requester"` // principal
	Policies  []string      `json:"policies"`
	TTL       time.Duration `json:"-"`
	Reason    string        `json:"reason"`
	State     string        `json:"state"`
	CreatedAt time.Time     `json:"created_at"`
	DecidedBy string        `json:"decided_by,omitempty"`
	DecidedAt time.Time     `json:"decided_at,omitzero"`
	Note      string        `json:"note,omitempty"`
	// Accessor is the token the request was exchanged for.
	Accessor string `json:"accessor,omitempty"`
}

// MarshalJSON adds ttl as a duration string and expires_at, the moment the
// request expires in its current state (zero once decided for good).
func (r Request) MarshalJSON() ([]byte, error) {
	type plain Request
	var exp time.Time
	switch r.State {
	case Pending:
		exp = r.CreatedAt.Add(PendingFor)
	case Approved:
		exp = r.DecidedAt.Add(ClaimFor)
	}
	return json.Marshal(struct {
		plain
		TTL       string    `json:"ttl"`
		ExpiresAt time.Time `json:"expires_at,omitzero"`
	}{plain(r), r.TTL.String(), exp})
}

// Service stores requests.
type Service struct {
	st  storage.Store
	now func() time.Time
}

// New returns a Service over st; now may be nil (time.Now).
func New(st storage.Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{st: st, now: now}
}

// AuditFunc runs inside the transaction of a change, after it, with the
// request as changed (an audit entry, say). An error rolls the change back.
type AuditFunc func(ctx context.Context, tx storage.Tx, r *Request) error

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Create records a pending request of requester for policies, lasting ttl
// (0: DefaultTTL) once granted, with a reason. known, when set, says which
// policies exist: asking for one that does not is refused.
func (s *Service) Create(ctx context.Context, requester string, policies []string, ttl time.Duration, reason string, known func(string) bool, audit AuditFunc) (*Request, error) {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	reason = strings.TrimSpace(reason)
	policies = slices.Compact(slices.Sorted(slices.Values(policies)))
	switch {
	case requester == "":
		return nil, invalid("no requester")
	case len(policies) == 0 || len(policies) > MaxPolicies:
		return nil, invalid("policies: want 1 to %d", MaxPolicies)
	case ttl < MinTTL || ttl > MaxTTL:
		return nil, invalid("ttl: want %s to %s", MinTTL, MaxTTL)
	case reason == "":
		return nil, invalid("reason: say why the access is needed (a ticket, an incident)")
	case utf8.RuneCountInString(reason) > MaxReason || !utf8.ValidString(reason):
		return nil, invalid("reason: at most %d characters of UTF-8", MaxReason)
	}
	for _, p := range policies {
		if p == "" || p == "root" {
			return nil, invalid("policies: %q cannot be requested", p)
		}
		if known != nil && !known(p) {
			return nil, invalid("policies: %q does not exist", p)
		}
	}
	r := &Request{ID: "acr_" + credential.RandomBase62(24), Requester: requester, Policies: policies, TTL: ttl,
		Reason: reason, State: Pending, CreatedAt: s.now().UTC()}
	pol, _ := json.Marshal(policies)
	err := s.st.Write(ctx, func(tx storage.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO access_requests (id, requester, policies, ttl, reason, state, created_at, decided_by, decided_at, note, accessor)
			VALUES ($1, $2, $3, $4, $5, $6, $7, '', 0, '', '')`,
			r.ID, r.Requester, string(pol), int64(r.TTL), r.Reason, r.State, r.CreatedAt.UnixNano()); err != nil {
			return err
		}
		if audit != nil {
			return audit(ctx, tx, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("access: create: %w", err)
	}
	return r, nil
}

const columns = `id, requester, policies, ttl, reason, state, created_at, decided_by, decided_at, note, accessor`

type scanner interface{ Scan(dest ...any) error }

func (s *Service) scan(row scanner) (*Request, error) {
	var r Request
	var pol string
	var ttl, created, decided int64
	if err := row.Scan(&r.ID, &r.Requester, &pol, &ttl, &r.Reason, &r.State, &created, &r.DecidedBy, &decided, &r.Note, &r.Accessor); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(pol), &r.Policies); err != nil {
		return nil, fmt.Errorf("access: request %s: policies: %w", r.ID, err)
	}
	r.TTL, r.CreatedAt = time.Duration(ttl), time.Unix(0, created).UTC()
	if decided != 0 {
		r.DecidedAt = time.Unix(0, decided).UTC()
	}
	s.expire(&r)
	return &r, nil
}

// expire turns a request that waited too long in its state into Expired.
func (s *Service) expire(r *Request) {
	now := s.now()
	if r.State == Pending && !now.Before(r.CreatedAt.Add(PendingFor)) || r.State == Approved && !now.Before(r.DecidedAt.Add(ClaimFor)) {
		r.State = Expired
	}
}

// Get returns request id.
func (s *Service) Get(ctx context.Context, id string) (*Request, error) {
	var r *Request
	err := s.st.Read(ctx, func(tx storage.Tx) error {
		var err error
		r, err = s.scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM access_requests WHERE id = $1`, id))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("access: get: %w", err)
	}
	return r, nil
}

// List returns up to limit requests created since since, newest first.
func (s *Service) List(ctx context.Context, since time.Time, limit int) ([]*Request, error) {
	var out []*Request
	err := s.st.Read(ctx, func(tx storage.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM access_requests WHERE created_at >= $1 ORDER BY created_at DESC, id LIMIT $2`,
			since.UnixNano(), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := s.scan(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("access: list: %w", err)
	}
	return out, nil
}

// change runs fn on request id, read and locked in a write transaction, and
// stores what fn made of it.
func (s *Service) change(ctx context.Context, id string, fn func(tx storage.Tx, r *Request) error, audit AuditFunc) (*Request, error) {
	var r *Request
	err := s.st.Write(ctx, func(tx storage.Tx) error {
		var err error
		r, err = s.scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM access_requests WHERE id = $1`+tx.LockForUpdate(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := fn(tx, r); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE access_requests SET state = $1, decided_by = $2, decided_at = $3, note = $4, accessor = $5 WHERE id = $6`,
			r.State, r.DecidedBy, unixOrZero(r.DecidedAt), r.Note, r.Accessor, r.ID); err != nil {
			return err
		}
		if audit != nil {
			return audit(ctx, tx, r)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrState) || errors.Is(err, ErrSelf) || errors.Is(err, ErrNotRequester) || errors.Is(err, ErrInvalid) {
			return nil, err
		}
		return nil, fmt.Errorf("access: %w", err)
	}
	return r, nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Decide approves or denies pending request id on behalf of decider, with
// an optional note. The caller has checked that decider may grant the
// request's policies.
func (s *Service) Decide(ctx context.Context, id, decider string, approve bool, note string, audit AuditFunc) (*Request, error) {
	note = strings.TrimSpace(note)
	if utf8.RuneCountInString(note) > MaxNote || !utf8.ValidString(note) {
		return nil, invalid("note: at most %d characters of UTF-8", MaxNote)
	}
	return s.change(ctx, id, func(_ storage.Tx, r *Request) error {
		switch {
		case r.State != Pending:
			return fmt.Errorf("%w: it is %s", ErrState, r.State)
		case r.Requester == decider:
			return ErrSelf
		}
		r.State, r.DecidedBy, r.DecidedAt, r.Note = Denied, decider, s.now().UTC(), note
		if approve {
			r.State = Approved
		}
		return nil
	}, audit)
}

// Claim marks approved request id issued for requester, calling issue
// inside the same transaction to make the token (it returns the token's
// accessor): the request is exchanged once, or not at all.
func (s *Service) Claim(ctx context.Context, id, requester string, issue func(tx storage.Tx, r *Request) (string, error), audit AuditFunc) (*Request, error) {
	return s.change(ctx, id, func(tx storage.Tx, r *Request) error {
		switch {
		case r.Requester != requester:
			return ErrNotRequester
		case r.State != Approved:
			return fmt.Errorf("%w: it is %s", ErrState, r.State)
		}
		acc, err := issue(tx, r)
		if err != nil {
			return err
		}
		r.State, r.Accessor = Issued, acc
		return nil
	}, audit)
}
