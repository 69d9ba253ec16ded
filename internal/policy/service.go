package policy

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// AuditFunc appends the audit entry of a change inside the change's
// transaction, so that the change and its record commit or fail together.
// It may also append the event other nodes poll to reload their Sets.
type AuditFunc func(ctx context.Context, tx storage.Tx) error

// Service stores policies in the policies table (their canonical YAML) and
// keeps the compiled Set of what is stored. Set is lock-free; changes are
// serialised by a mutex so the Set never goes back in time on this node.
// Another node's changes arrive with Load (the caller runs it when the
// events table says policies changed).
type Service struct {
	store storage.Store
	now   func() time.Time
	set   atomic.Pointer[Set]
	mu    sync.Mutex // held by Load, Put and Delete
}

// Record is a stored policy with who changed it last, and when.
type Record struct {
	Policy    *Policy
	UpdatedAt time.Time
	UpdatedBy string
}

// NewService returns a Service over st whose Set holds only root until Load.
func NewService(st storage.Store) *Service {
	s := &Service{store: st, now: time.Now}
	s.set.Store(Empty())
	return s
}

// Set returns the current compiled Set (never nil).
func (s *Service) Set() *Set { return s.set.Load() }

// Load reads every stored policy, compiles them and swaps the Set. On error
// the Set is left as it was.
func (s *Service) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := s.Records(ctx)
	if err != nil {
		return err
	}
	ps := make([]*Policy, len(recs))
	for i, r := range recs {
		ps[i] = r.Policy
	}
	set, err := Compile(ps)
	if err != nil {
		return fmt.Errorf("policy: compile stored policies: %w", err)
	}
	s.set.Store(set)
	return nil
}

// Put validates p and stores its canonical document. When the stored
// document is already identical it writes nothing, does not call audit and
// returns changed=false. Otherwise audit runs in the same transaction (its
// error rolls the change back) and, after the commit, the Set is updated.
// Put must not be called inside another storage Write.
func (s *Service) Put(ctx context.Context, p *Policy, by string, audit AuditFunc) (changed bool, err error) {
	if p == nil {
		return false, &Error{Msg: "policy is nil"}
	}
	if p.Name == RootName {
		return false, ErrReserved
	}
	if err := p.Validate(); err != nil {
		return false, err
	}
	p = p.Clone()
	doc := p.Canonical()

	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.store.Write(ctx, func(tx storage.Tx) error {
		changed = false
		var old string
		err := tx.QueryRow(ctx, `SELECT document FROM policies WHERE name = $1`+tx.LockForUpdate(), p.Name).Scan(&old)
		switch {
		case err == nil && bytes.Equal([]byte(old), doc):
			return nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO policies (name, document, updated_at, updated_by) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			p.Name, string(doc), s.now().UnixNano(), by); err != nil {
			return err
		}
		if audit != nil {
			if err := audit(ctx, tx); err != nil {
				return err
			}
		}
		changed = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("policy: put %q: %w", p.Name, err)
	}
	if changed {
		s.replace(p.Name, p)
	}
	return changed, nil
}

// replace swaps in a Set with the named policy replaced by p (removed when
// p is nil). The caller holds s.mu.
func (s *Service) replace(name string, p *Policy) {
	cur := s.set.Load()
	ps := make([]*Policy, 0, len(cur.policies))
	for _, q := range cur.policies {
		if q.Name != name && q.Name != RootName {
			ps = append(ps, q)
		}
	}
	if p != nil {
		ps = append(ps, p)
	}
	set, err := Compile(ps)
	if err != nil {
		// Unreachable: every policy in ps was validated. Keep serving the
		// old Set rather than none; the next Load repairs it.
		return
	}
	s.set.Store(set)
}

// Get returns the stored policy called name, or ErrNotFound. The built-in
// root policy is returned for RootName.
func (s *Service) Get(ctx context.Context, name string) (*Policy, error) {
	if name == RootName {
		return Root(), nil
	}
	var doc string
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT document FROM policies WHERE name = $1`, name).Scan(&doc)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, printable(name))
	}
	if err != nil {
		return nil, fmt.Errorf("policy: get %q: %w", printable(name), err)
	}
	return parseStored(name, doc)
}

// List returns the stored policies sorted by name. The built-in root policy
// is not stored and not listed (Set().Get(RootName) has it).
func (s *Service) List(ctx context.Context) ([]*Policy, error) {
	recs, err := s.Records(ctx)
	if err != nil {
		return nil, err
	}
	ps := make([]*Policy, len(recs))
	for i, r := range recs {
		ps[i] = r.Policy
	}
	return ps, nil
}

// Records returns the stored policies with their last change, sorted by name.
func (s *Service) Records(ctx context.Context) ([]Record, error) {
	type row struct {
		name, doc, by string
		at            int64
	}
	var rows []row
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		rs, err := tx.Query(ctx, `SELECT name, document, updated_at, updated_by FROM policies ORDER BY name`)
		if err != nil {
			return err
		}
		defer rs.Close()
		rows = rows[:0]
		for rs.Next() {
			var r row
			if err := rs.Scan(&r.name, &r.doc, &r.at, &r.by); err != nil {
				return err
			}
			rows = append(rows, r)
		}
		return rs.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("policy: list: %w", err)
	}
	recs := make([]Record, len(rows))
	for i, r := range rows {
		p, err := parseStored(r.name, r.doc)
		if err != nil {
			return nil, err
		}
		recs[i] = Record{Policy: p, UpdatedAt: time.Unix(0, r.at).UTC(), UpdatedBy: r.by}
	}
	return recs, nil
}

func parseStored(name, doc string) (*Policy, error) {
	p, err := Parse([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("policy: stored policy %q does not parse: %w", printable(name), err)
	}
	if p.Name != name {
		return nil, fmt.Errorf("policy: stored policy %q holds a document named %q", printable(name), p.Name)
	}
	return p, nil
}

// Delete removes the stored policy called name (ErrNotFound when there is
// none; ErrReserved for root), calling audit in the same transaction, and
// updates the Set after the commit.
func (s *Service) Delete(ctx context.Context, name string, audit AuditFunc) error {
	if name == RootName {
		return ErrReserved
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM policies WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: %q", ErrNotFound, printable(name))
		}
		if audit != nil {
			return audit(ctx, tx)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return err
		}
		return fmt.Errorf("policy: delete %q: %w", printable(name), err)
	}
	s.replace(name, nil)
	return nil
}
