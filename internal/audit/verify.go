package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"

	"github.com/keyward/keyward/internal/storage"
)

// VerifyResult is what Verify found.
type VerifyResult struct {
	// Entries is how many entries verified before the first problem (all
	// of them when the log is intact).
	Entries int64
	// Checkpoints is how many signed checkpoints verified.
	Checkpoints int
	// FirstBad is the seq of the first entry found bad (missing, altered,
	// out of chain, beyond the head), 0 when the log is intact.
	FirstBad int64
	// Problem describes the first problem, "" when the log is intact.
	Problem string
}

// Verify reads the whole log in seq order, in one read transaction (a
// consistent snapshot) and without holding it in memory, recomputes every
// entry's hash and its link to the previous entry, checks every checkpoint's
// signature against the signer's public key and its hash against its entry,
// checks the prune anchor's signature, and checks the chain head against the
// last entry. It stops at the first problem, which is the one with the
// lowest seq.
//
// When the log does not verify, Verify returns the result and an error
// wrapping ErrTampered (whose text is the Problem); other errors (storage,
// sealed signer) come with a nil result.
func (l *Log) Verify(ctx context.Context) (*VerifyResult, error) {
	pub, err := l.signer.AuditPublicKey()
	if err != nil {
		return nil, fmt.Errorf("audit: verify: public key: %w", err)
	}
	var res VerifyResult
	err = l.st.Read(ctx, func(tx storage.Tx) error {
		v := verifier{pub: pub}
		if err := v.load(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+blockColumns+` FROM audit_blocks ORDER BY seq`)
		if err != nil {
			return err
		}
		defer rows.Close()
		var b storedBlock
		var es []row
		for !v.failed() && rows.Next() {
			if err := scanBlock(rows, &b, false); err != nil {
				return err
			}
			if es, err = b.entries(es); err != nil {
				v.entry(&row{seq: b.first()}, err)
				continue
			}
			for i := 0; i < len(es) && !v.failed(); i++ {
				v.entry(&es[i], nil)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		v.finish()
		res = v.res
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	if res.Problem != "" {
		return &res, fmt.Errorf("%w: %s", ErrTampered, res.Problem)
	}
	return &res, nil
}

type storedCheckpoint struct {
	seq, time int64
	hash, sig []byte
}

// verifier walks the chain; the first call to fail fixes the result.
type verifier struct {
	pub ed25519.PublicKey
	res VerifyResult

	head       head
	headOK     bool
	anchorSeq  int64
	cps        []storedCheckpoint // ascending seq, after the anchor
	next       int                // index into cps
	expect     int64              // seq the next entry must have
	prev       []byte             // hash the next entry must chain to
	buf        []byte
	lastSeq    int64
	lastCP     int64 // seq of the last good checkpoint (or the anchor)
	anchorName string
}

func (v *verifier) failed() bool { return v.res.Problem != "" }

func (v *verifier) fail(seq int64, format string, args ...any) {
	if v.failed() {
		return
	}
	v.res.FirstBad = max(seq, 1)
	v.res.Problem = fmt.Sprintf(format, args...)
}

// load reads the head, the anchor and the checkpoints (a small table: one
// row per CheckpointEvery entries).
func (v *verifier) load(ctx context.Context, tx storage.Tx) error {
	var err error
	v.head, err = readHead(ctx, tx, "")
	switch {
	case err == nil:
		v.headOK = true
	case errors.Is(err, ErrTampered):
		// Reported after the entries, where the head is compared.
	default:
		return err
	}

	var aHash, aSig []byte
	var aTime int64
	err = tx.QueryRow(ctx, `SELECT seq, hash, signature, time FROM audit_anchor WHERE id = 1`).
		Scan(&v.anchorSeq, &aHash, &aSig, &aTime)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		v.fail(1, "the prune anchor row (audit_anchor) is missing")
	case err != nil:
		return err
	case v.anchorSeq == 0:
		if !bytes.Equal(aHash, zeroHash) || len(aSig) != 0 {
			v.fail(1, "the prune anchor is altered (seq 0 must have a zero hash and no signature)")
		}
	case v.anchorSeq < 0 || len(aHash) != HashSize:
		v.fail(1, "the prune anchor is malformed")
	case !ed25519.Verify(v.pub, anchorMessage(v.anchorSeq, aHash, aTime), aSig):
		v.fail(v.anchorSeq, "prune anchor at %d: bad signature", v.anchorSeq)
	}
	v.expect = v.anchorSeq + 1
	v.prev = aHash
	v.lastSeq = v.anchorSeq
	v.lastCP = v.anchorSeq
	v.anchorName = "the prune anchor"
	if v.anchorSeq == 0 {
		v.anchorName = "the start of the log (zero hash)"
	}

	rows, err := tx.Query(ctx, `SELECT seq, hash, signature, time FROM audit_checkpoints WHERE seq > $1 ORDER BY seq`, v.anchorSeq)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var c storedCheckpoint
		if err := rows.Scan(&c.seq, &c.hash, &c.sig, &c.time); err != nil {
			return err
		}
		v.cps = append(v.cps, c)
	}
	return rows.Err()
}

// entry checks one entry, in ascending seq order; textErr is what
// decoding its block returned (r then holds only the seq of the block's
// first entry). Its prev hash is the hash of the entry
// before (or the anchor's), which the walk carries: it is not stored.
func (v *verifier) entry(r *row, textErr error) {
	switch {
	case r.seq <= v.anchorSeq:
		v.fail(r.seq, "entry %d: lies at or before the prune anchor (entry %d)", r.seq, v.anchorSeq)
		return
	case r.seq != v.expect:
		// Checkpoints inside the gap have no entry; the gap is the problem.
		if v.expect == v.anchorSeq+1 {
			v.fail(v.expect, "entry %d missing (the log starts at %d)", v.expect, r.seq)
		} else {
			v.fail(v.expect, "entry %d missing (seq jumps from %d to %d)", v.expect, v.expect-1, r.seq)
		}
		return
	case v.headOK && r.seq > v.head.seq:
		v.fail(r.seq, "entry %d: lies beyond the chain head (entry %d)", r.seq, v.head.seq)
		return
	case textErr != nil:
		v.fail(r.seq, "entry %d: %v", r.seq, textErr)
		return
	}
	var sum [HashSize]byte
	sum, v.buf = r.sum(v.prev, v.buf)
	if !bytes.Equal(sum[:], r.hash) {
		// The entry was changed, or its stored hash, or the entry before
		// it was rewritten with a recomputed hash: without a stored
		// prev_hash these look alike.
		if r.seq == v.anchorSeq+1 {
			v.fail(r.seq, "entry %d: hash does not match its content chained to %s", r.seq, v.anchorName)
		} else {
			v.fail(r.seq, "entry %d: hash does not match its content chained to entry %d", r.seq, r.seq-1)
		}
		return
	}
	for v.next < len(v.cps) && v.cps[v.next].seq == r.seq {
		c := v.cps[v.next]
		v.next++
		if !ed25519.Verify(v.pub, checkpointMessage(c.seq, c.hash, c.time), c.sig) {
			v.fail(c.seq, "checkpoint at %d: bad signature", c.seq)
			return
		}
		if !bytes.Equal(c.hash, r.hash) {
			v.fail(c.seq, "checkpoint at %d: its signed hash does not match entry %d (an entry in %d..%d was rewritten and the chain recomputed)",
				c.seq, c.seq, v.lastCP+1, c.seq)
			return
		}
		v.res.Checkpoints++
		v.lastCP = c.seq
	}
	v.res.Entries++
	v.prev = r.hash
	v.lastSeq = r.seq
	v.expect = r.seq + 1
}

// finish checks what follows the last entry: checkpoints beyond it and the
// chain head.
func (v *verifier) finish() {
	if v.failed() {
		return
	}
	if v.next < len(v.cps) {
		c := v.cps[v.next]
		v.fail(v.expect, "checkpoint at %d: entry %d is missing (the log ends at %d)", c.seq, v.expect, v.lastSeq)
		return
	}
	switch {
	case !v.headOK:
		v.fail(v.expect, "the chain head row (audit_head) is missing or malformed")
	case v.head.seq > v.lastSeq:
		v.fail(v.expect, "entry %d missing (the log ends at %d but the chain head is at %d)", v.expect, v.lastSeq, v.head.seq)
	case v.head.seq < v.lastSeq:
		// Unreachable: entry() rejects entries beyond the head.
		v.fail(v.head.seq+1, "entry %d: lies beyond the chain head (entry %d)", v.head.seq+1, v.head.seq)
	case !bytes.Equal(v.head.hash, v.prev):
		v.fail(v.lastSeq, "entry %d: does not match the chain head's hash", v.lastSeq)
	}
}
