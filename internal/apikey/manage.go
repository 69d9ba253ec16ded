package apikey

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/keyward/keyward/internal/events"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/keyward/keyward/internal/storage"
)

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

// lockedKey reads key id of project/env, locking its row for tx;
// ErrNotFound when there is none.
func lockedKey(ctx context.Context, tx storage.Tx, project, env, id string) (*Key, error) {
	_, k, err := scanKey(tx.QueryRow(ctx, `SELECT `+columns+from+`WHERE k.id = $1`+lockKey(tx), id))
	if errors.Is(err, sql.ErrNoRows) || err == nil && (k.Project != project || k.Env != env) {
		return nil, ErrNotFound
	}
	return k, err
}

// countingOn lists the keys whose rate and quota count on counter's row:
// counter itself and the keys still in a rotation's grace before it.
func countingOn(ctx context.Context, tx storage.Tx, counter string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT id FROM api_keys WHERE counter_id = $1`, counter)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
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
		if k, err = lockedKey(ctx, tx, project, env, id); err != nil {
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
			return audit(ctx, tx, id)
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
		if old, err = lockedKey(ctx, tx, project, env, id); err != nil {
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
		case !old.DisabledAt.IsZero():
			return fmt.Errorf("%w: enable it before rotating it, or revoke it", ErrDisabled)
		}
		next = &Key{
			ID: newID(), Project: old.Project, Env: old.Env, Kind: old.Kind, Name: old.Name, Owner: old.Owner, Scopes: old.Scopes,
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
		if changed, err = countingOn(ctx, tx, old.ID); err != nil {
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
			return audit(ctx, tx, next.ID)
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
		// Networks forgotten, and those of keys gone.
		if _, err := tx.Exec(ctx, `DELETE FROM api_key_networks WHERE last_seen < $1
			OR NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.id = api_key_networks.key_id)`, s.opts.Now().Add(-NetworkMemory).UnixNano()); err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// ByID returns key id, whatever its project and environment (for the
// server's own use, such as revoking a key credential monitoring flagged).
func (s *Service) ByID(ctx context.Context, id string) (*Key, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	return s.loadID(ctx, id)
}

// UpdateRequest changes some of a key's settings without issuing a new
// key; a nil field stays as it is.
type UpdateRequest struct {
	Name, Owner *string
	Scopes      []string        // nil: unchanged; otherwise at least one
	Meta        json.RawMessage // nil: unchanged; {} removes it
	CIDRs       []netip.Prefix  // nil: unchanged; empty: any network
	TTL         *time.Duration  // the key expires this long from now; 0: never
	Rate        *ratelimit.Limit
	// Quota changes the quota (0: unlimited); what is left of it moves by
	// the same amount (never below 0), unless Remaining sets it.
	Quota     *int64
	Remaining *int64
	// Refill changes the refill (Period "": none). Without it, a refill
	// amount that was the old quota follows the new one.
	Refill *Refill
	// Disabled suspends the key (true) or lets it work again (false).
	Disabled *bool
}

// Update changes the settings req names of key id of project/env, in one
// transaction with its audit entry, and drops the key from every node's
// cache (within a second on the others). A revoked key, and a rotated one
// (its successor holds the settings that count), cannot be changed; an
// expired one can, to extend it. It returns the key as it now is.
func (s *Service) Update(ctx context.Context, project, env, id string, req UpdateRequest, audit AuditFunc) (*Key, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	var k *Key
	var evict []string
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		var err error
		if k, err = lockedKey(ctx, tx, project, env, id); err != nil {
			return err
		}
		now := s.opts.Now().UTC().Truncate(time.Microsecond)
		switch {
		case k.RotatedTo != "":
			return fmt.Errorf("%w: update its successor %s instead", ErrAlreadyRotated, k.RotatedTo)
		case k.Revoked(now):
			return ErrRevoked
		}
		if err := s.apply(k, req, now); err != nil {
			return err
		}
		scopes, _ := json.Marshal(k.Scopes)
		cidrs, _ := json.Marshal(k.CIDRs)
		meta := "{}"
		if k.Meta != nil {
			meta = string(k.Meta)
		}
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET name = $1, owner = $2, scopes = $3, meta = $4, cidrs = $5, expires_at = $6,
			rate_count = $7, rate_period = $8, rate_burst = $9, quota = $10, remaining = $11, refill = $12, refill_amount = $13,
			refilled_at = $14, disabled_at = $15 WHERE id = $16`,
			k.Name, k.Owner, string(scopes), meta, string(cidrs), nanosOrZero(k.ExpiresAt), k.Rate.Count, int64(k.Rate.Period),
			k.Rate.Burst, k.Quota, k.Remaining, k.Refill.Period, k.Refill.Amount, nanosOrZero(k.RefilledAt),
			nanosOrZero(k.DisabledAt), id); err != nil {
			return fmt.Errorf("updating API key: %w", err)
		}
		// The key, and the keys still in a rotation's grace that count
		// against it, are read again on every node.
		if evict, err = countingOn(ctx, tx, id); err != nil {
			return err
		}
		for _, cid := range evict {
			if err := events.Append(ctx, tx, EventChange, cid); err != nil {
				return err
			}
		}
		if audit != nil {
			return audit(ctx, tx, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, cid := range evict {
		s.evictID(cid)
	}
	k.IDHMAC = s.idHMAC(k.ID)
	return k, nil
}

// apply validates req against k and applies it; k is left half changed on
// error.
func (s *Service) apply(k *Key, req UpdateRequest, now time.Time) error {
	oldQuota, oldRefill := k.Quota, k.Refill
	merged := CreateRequest{Name: k.Name, Owner: k.Owner, Scopes: k.Scopes, Meta: k.Meta, CIDRs: k.CIDRs, Rate: k.Rate,
		Quota: k.Quota, Refill: k.Refill}
	if req.Name != nil {
		merged.Name = *req.Name
	}
	if req.Owner != nil {
		merged.Owner = *req.Owner
	}
	if req.Scopes != nil {
		merged.Scopes = req.Scopes
	}
	if req.Meta != nil {
		merged.Meta = req.Meta
	}
	if req.CIDRs != nil {
		merged.CIDRs = req.CIDRs
	}
	if req.Rate != nil {
		merged.Rate = *req.Rate
	}
	if req.Quota != nil {
		merged.Quota = *req.Quota
	}
	if req.TTL != nil {
		merged.TTL = *req.TTL
	}
	switch {
	case req.Refill != nil:
		merged.Refill = *req.Refill
	case merged.Quota == 0:
		merged.Refill = Refill{} // no quota, nothing to refill
	case oldRefill.Amount == oldQuota:
		merged.Refill.Amount = merged.Quota
	}
	plan, err := s.plan(merged) // validates, dedups scopes, masks networks
	if err != nil {
		return err
	}
	if req.TTL != nil {
		k.ExpiresAt = plan.ExpiresAt // from now, as at creation; zero: never
	}
	k.Name, k.Owner, k.Scopes, k.Meta, k.CIDRs, k.Rate = plan.Name, plan.Owner, plan.Scopes, plan.Meta, plan.CIDRs, plan.Rate
	k.Quota, k.Refill = plan.Quota, plan.Refill
	switch {
	case k.Quota == 0:
		k.Remaining = 0
	case oldQuota == 0:
		k.Remaining = k.Quota
	default:
		k.Remaining = min(max(k.Remaining+k.Quota-oldQuota, 0), k.Quota)
	}
	if req.Remaining != nil {
		switch {
		case k.Quota == 0:
			return fmt.Errorf("%w: remaining needs a quota, and the key has none (unlimited)", ErrInvalid)
		case *req.Remaining < 0 || *req.Remaining > k.Quota:
			return fmt.Errorf("%w: remaining must be between 0 and the key's quota (%d)", ErrInvalid, k.Quota)
		}
		k.Remaining = *req.Remaining
	}
	switch {
	case req.Disabled == nil:
	case *req.Disabled && k.DisabledAt.IsZero():
		k.DisabledAt = now
	case !*req.Disabled:
		k.DisabledAt = time.Time{}
	}
	if k.Refill.Period != oldRefill.Period {
		k.RefilledAt = time.Time{}
		if k.Refill.Period != "" {
			k.RefilledAt = periodStart(k.Refill.Period, now)
		}
	}
	return nil
}
