package gateway

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/events"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
)

// EventChange is appended, keyed by name, by every change of an
// integration, so every node drops its compiled copy.
const EventChange = "integration.change"

// Errors of the integration store.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// AuditFunc appends the audit entry of a change inside its transaction.
type AuditFunc func(ctx context.Context, tx storage.Tx) error

// Service stores integrations and keeps their compiled forms in memory for
// the proxy; changes reach other nodes' copies through EventChange.
type Service struct {
	store storage.Store
	now   func() time.Time

	mu    sync.RWMutex
	cache map[string]*compiled
	gen   uint64 // bumped by every invalidation; a fill started before one is dropped
}

// NewService returns a Service on store. now is time.Now when nil.
func NewService(store storage.Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now, cache: map[string]*compiled{}}
}

const integrationColumns = `name, upstream, secret_ref, inject, methods, paths, timeout_ms, max_body_bytes, strip_headers, allow_private, created_at, created_by, updated_at, updated_by, rate, caller_rate, oauth2, websocket`

// Create stores a new integration (ErrExists when the name is taken) and
// returns it as stored: normalised, with defaults filled.
func (s *Service) Create(ctx context.Context, in Integration, by string, audit AuditFunc) (*Integration, error) {
	if _, err := in.Normalize(); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	in.CreatedAt, in.CreatedBy, in.UpdatedAt, in.UpdatedBy = now, by, now, by
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		args, err := rowArgs(&in)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO integrations (`+integrationColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`, args...); err != nil {
			if errors.Is(err, storage.ErrConflict) {
				return fmt.Errorf("integration %q: %w", in.Name, ErrExists)
			}
			return err
		}
		return s.changed(ctx, tx, in.Name, audit)
	})
	s.invalidate(in.Name)
	if err != nil {
		return nil, err
	}
	return &in, nil
}

// Update replaces every setting of an existing integration (ErrNotFound
// when there is none); the creation fields are kept.
func (s *Service) Update(ctx context.Context, in Integration, by string, audit AuditFunc) (*Integration, error) {
	if _, err := in.Normalize(); err != nil {
		return nil, err
	}
	var out *Integration
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		cur, err := scanIntegration(tx.QueryRow(ctx, `SELECT `+integrationColumns+` FROM integrations WHERE name = $1`+tx.LockForUpdate(), in.Name))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("integration %q: %w", in.Name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		in.CreatedAt, in.CreatedBy = cur.CreatedAt, cur.CreatedBy
		in.UpdatedAt, in.UpdatedBy = s.now().UTC(), by
		args, err := rowArgs(&in)
		if err != nil {
			return err
		}
		// The creation columns ($11, $12) are left as they are.
		args = append(args[:10], args[12:]...)
		if _, err := tx.Exec(ctx, `UPDATE integrations SET upstream = $2, secret_ref = $3, inject = $4, methods = $5, paths = $6, timeout_ms = $7, max_body_bytes = $8, strip_headers = $9, allow_private = $10, updated_at = $11, updated_by = $12, rate = $13, caller_rate = $14, oauth2 = $15, websocket = $16 WHERE name = $1`, args...); err != nil {
			return err
		}
		out = &in
		return s.changed(ctx, tx, in.Name, audit)
	})
	s.invalidate(in.Name)
	return out, err
}

// Delete removes an integration (ErrNotFound when there is none).
func (s *Service) Delete(ctx context.Context, name string, audit AuditFunc) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM integrations WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("integration %q: %w", name, ErrNotFound)
		}
		return s.changed(ctx, tx, name, audit)
	})
	s.invalidate(name)
	return err
}

// changed appends the invalidation event, then the audit entry (last: it
// locks the audit chain until commit).
func (s *Service) changed(ctx context.Context, tx storage.Tx, name string, audit AuditFunc) error {
	if err := events.Append(ctx, tx, EventChange, name); err != nil {
		return err
	}
	if audit != nil {
		return audit(ctx, tx)
	}
	return nil
}

// Get reads an integration from storage.
func (s *Service) Get(ctx context.Context, name string) (*Integration, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var in *Integration
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		var err error
		in, err = scanIntegration(tx.QueryRow(ctx, `SELECT `+integrationColumns+` FROM integrations WHERE name = $1`, name))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("integration %q: %w", name, ErrNotFound)
	}
	return in, err
}

// List returns every integration, by name.
func (s *Service) List(ctx context.Context) ([]Integration, error) {
	var out []Integration
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+integrationColumns+` FROM integrations ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			in, err := scanIntegration(rows)
			if err != nil {
				return err
			}
			out = append(out, *in)
		}
		return rows.Err()
	})
	return out, err
}

// HandleEvent drops the compiled copy of a changed integration (events
// from this node or another; idempotent).
func (s *Service) HandleEvent(e events.Event) {
	if e.Kind == EventChange {
		s.invalidate(e.Key)
	}
}

// Purge drops every compiled integration (on seal).
func (s *Service) Purge() {
	s.mu.Lock()
	clear(s.cache)
	s.gen++
	s.mu.Unlock()
}

func (s *Service) invalidate(name string) {
	s.mu.Lock()
	delete(s.cache, name)
	s.gen++
	s.mu.Unlock()
}

// Limits returns the integration's rates: over all its calls, and per
// caller (zero when unset). A call that reaches the upstream otherwise
// than through the proxy (an operator's check) counts against them too.
func (s *Service) Limits(ctx context.Context, name string) (rate, callerRate ratelimit.Limit, err error) {
	c, err := s.lookup(ctx, name)
	if err != nil {
		return rate, callerRate, err
	}
	return c.rate, c.callerRate, nil
}

// lookup returns the compiled integration, from memory when it is there.
func (s *Service) lookup(ctx context.Context, name string) (*compiled, error) {
	s.mu.RLock()
	c, gen := s.cache[name], s.gen
	s.mu.RUnlock()
	if c != nil {
		return c, nil
	}
	in, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if c, err = in.Normalize(); err != nil {
		return nil, fmt.Errorf("integration %q as stored: %w", name, err)
	}
	s.mu.Lock()
	if s.gen == gen {
		if first := s.cache[name]; first != nil {
			// Another call compiled it meanwhile: share that copy (and its
			// credential and OAuth 2.0 token) rather than make a second.
			c = first
		} else {
			s.cache[name] = c
		}
	}
	s.mu.Unlock()
	return c, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanIntegration(row scanner) (*Integration, error) {
	var in Integration
	var methods, paths, strip, oauth2 string
	var timeoutMS, allowPrivate, created, updated, websocket int64
	if err := row.Scan(&in.Name, &in.Upstream, &in.Secret, &in.Inject, &methods, &paths, &timeoutMS, &in.MaxBodyBytes,
		&strip, &allowPrivate, &created, &in.CreatedBy, &updated, &in.UpdatedBy, &in.Rate, &in.CallerRate, &oauth2, &websocket); err != nil {
		return nil, err
	}
	if oauth2 != "" {
		in.OAuth2 = &OAuth2{}
		if err := json.Unmarshal([]byte(oauth2), in.OAuth2); err != nil {
			return nil, fmt.Errorf("integration %q: corrupt stored oauth2 settings: %w", in.Name, err)
		}
	}
	for _, f := range []struct {
		src string
		dst *[]string
	}{{methods, &in.Methods}, {paths, &in.Paths}, {strip, &in.StripResponseHeaders}} {
		if err := json.Unmarshal([]byte(f.src), f.dst); err != nil {
			return nil, fmt.Errorf("integration %q: corrupt stored list: %w", in.Name, err)
		}
	}
	in.Timeout = Duration(time.Duration(timeoutMS) * time.Millisecond)
	in.AllowPrivate = allowPrivate != 0
	in.WebSocket = websocket != 0
	in.CreatedAt, in.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return &in, nil
}

func rowArgs(in *Integration) ([]any, error) {
	methods, err1 := json.Marshal(in.Methods)
	paths, err2 := json.Marshal(in.Paths)
	strip, err3 := json.Marshal(in.StripResponseHeaders)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	allow := 0
	if in.AllowPrivate {
		allow = 1
	}
	ws := 0
	if in.WebSocket {
		ws = 1
	}
	oauth2 := ""
	if in.OAuth2 != nil {
		b, err := json.Marshal(in.OAuth2)
		if err != nil {
			return nil, err
		}
		oauth2 = string(b)
	}
	return []any{in.Name, in.Upstream, in.Secret, in.Inject, string(methods), string(paths),
		time.Duration(in.Timeout).Milliseconds(), in.MaxBodyBytes, string(strip), allow,
		in.CreatedAt.UnixNano(), in.CreatedBy, in.UpdatedAt.UnixNano(), in.UpdatedBy, in.Rate, in.CallerRate, oauth2, ws}, nil
}
