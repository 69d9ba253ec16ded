package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// sharedReplay claims accepted DPoP proofs in the database the nodes of a
// cluster share (dpop.ReplayStore; table dpop_proofs), so that a proof one
// node accepted is refused by every other. It is used on PostgreSQL; a
// SQLite database has one node, whose in-memory replay cache is enough.
type sharedReplay struct {
	st  storage.Store
	log *slog.Logger
	now func() time.Time
}

// claimTimeout bounds a claim: the gateway's requests carry no deadline,
// and a database that does not answer must not hold them.
const claimTimeout = 2 * time.Second

// An expired row is claimed again (the jti of a proof whose window ended
// may come back in a new proof without being a replay of the old one).
const claimProof = `INSERT INTO dpop_proofs (key, expires) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE dpop_proofs.expires <= $3`

func (s sharedReplay) Claim(ctx context.Context, key [16]byte, expires time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	// One statement, its own transaction: one round trip.
	var n int64
	res, err := s.st.Exec(ctx, claimProof, key[:], expires.UnixNano(), s.now().UnixNano())
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		s.log.Error("recording a DPoP proof against replay failed; the proof is refused", "err", err)
		return false, err
	}
	return n == 1, nil
}

// sweep deletes the claims whose proofs can no longer be accepted.
func (s sharedReplay) sweep(ctx context.Context) (int64, error) {
	res, err := s.st.Exec(ctx, `DELETE FROM dpop_proofs WHERE expires <= $1`, s.now().UnixNano())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// sweepEvery runs sweep every period until ctx ends.
func (s sharedReplay) sweepEvery(ctx context.Context, period time.Duration) {
	every(ctx, period, func() {
		if _, err := s.sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sweeping expired DPoP proof claims failed", "err", err)
		}
	})
}
