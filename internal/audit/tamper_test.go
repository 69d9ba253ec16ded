package audit

import (
	"errors"
	"testing"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// Each case edits a log of 50 entries (checkpoints every 10) by raw SQL, as
// someone with write access to the database would, and names what Verify
// must report. Cases run one after the other on one store per backend: the
// log is reset by raw SQL between them (the Log keeps no head in memory).
func TestTamperDetected(t *testing.T) {
	cases := []struct {
		name     string
		tamper   func(t *testing.T, st storage.Store)
		firstBad int64
		problem  string
	}{
		{
			name: "one byte of a field",
			tamper: func(t *testing.T, st storage.Store) {
				r := rawRow(t, st, 17)
				b := []byte(r.resource)
				b[len(b)-1] ^= 1
				r.resource = string(b)
				rawUpdate(t, st, &r)
			},
			firstBad: 17, problem: "entry 17: hash does not match its content chained to entry 16",
		},
		{
			name: "status",
			tamper: func(t *testing.T, st storage.Store) {
				r := rawRow(t, st, 17)
				r.status = 403
				rawUpdate(t, st, &r)
			},
			firstBad: 17, problem: "entry 17: hash does not match its content chained to entry 16",
		},
		{
			name: "time",
			tamper: func(t *testing.T, st storage.Store) {
				r := rawRow(t, st, 17)
				r.time++
				rawUpdate(t, st, &r)
			},
			firstBad: 17, problem: "entry 17: hash does not match its content chained to entry 16",
		},
		{
			name: "detail",
			tamper: func(t *testing.T, st storage.Store) {
				r := rawRow(t, st, 17)
				r.detail = `{"version": "17"}` // same map, other text
				rawUpdate(t, st, &r)
			},
			firstBad: 17, problem: "entry 17: hash does not match its content chained to entry 16",
		},
		{
			name: "a field changed inside the entry text",
			tamper: func(t *testing.T, st storage.Store) {
				rawExec(t, st, `UPDATE audit_blocks SET entries = replace(entries, '"read"', '"write"') WHERE seq = 17`)
			},
			firstBad: 17, problem: "entry 17: hash does not match its content chained to entry 16",
		},
		{
			name: "entry text cut short",
			tamper: func(t *testing.T, st storage.Store) {
				rawExec(t, st, `UPDATE audit_blocks SET entries = '[[1,"app"]]' WHERE seq = 17`)
			},
			firstBad: 17, problem: "entry 17: malformed entry text: byte 9 (request_id): the array ends after 2 values, want 14",
		},
		{
			name: "entry text with a value of the wrong type",
			tamper: func(t *testing.T, st storage.Store) {
				rawExec(t, st, `UPDATE audit_blocks SET entries = replace(entries, ',200,', ',"200",') WHERE seq = 17`)
			},
			firstBad: 17, problem: "entry 17: malformed entry text: byte 158 (status): want an integer",
		},
		{
			name: "entry text followed by more",
			tamper: func(t *testing.T, st storage.Store) {
				rawExec(t, st, `UPDATE audit_blocks SET entries = entries || '[]' WHERE seq = 17`)
			},
			firstBad: 17, problem: "entry 17: malformed entry text: byte 190: data after the array",
		},
		{
			name: "entry text not JSON",
			tamper: func(t *testing.T, st storage.Store) {
				rawExec(t, st, `UPDATE audit_blocks SET entries = 'req-17' WHERE seq = 17`)
			},
			firstBad: 17, problem: "entry 17: malformed entry text: byte 0: want '[' (a block)",
		},
		{
			name: "one byte of the stored hash",
			tamper: func(t *testing.T, st storage.Store) {
				r := rawRow(t, st, 17)
				r.hash[0] ^= 0x80
				rawExec(t, st, `UPDATE audit_blocks SET hashes = $1 WHERE seq = 17`, r.hash)
			},
			firstBad: 17, problem: "entry 17: hash does not match its content chained to entry 16",
		},
		{
			name: "entry rehashed after an edit",
			tamper: func(t *testing.T, st storage.Store) {
				r := rawRow(t, st, 17)
				r.outcome = OutcomeDenied
				r.hash, _ = r.computeHash(r.prevHash, nil)
				rawUpdate(t, st, &r)
			},
			firstBad: 18, problem: "entry 18: hash does not match its content chained to entry 17",
		},
		{
			name:     "deleted entry",
			tamper:   func(t *testing.T, st storage.Store) { rawExec(t, st, `DELETE FROM audit_blocks WHERE seq = 20`) },
			firstBad: 20, problem: "entry 20 missing (seq jumps from 19 to 21)",
		},
		{
			name:     "deleted first entry",
			tamper:   func(t *testing.T, st storage.Store) { rawExec(t, st, `DELETE FROM audit_blocks WHERE seq = 1`) },
			firstBad: 1, problem: "entry 1 missing (the log starts at 2)",
		},
		{
			name: "swapped entries",
			tamper: func(t *testing.T, st storage.Store) {
				rawExec(t, st, `UPDATE audit_blocks SET seq = -1 WHERE seq = 30`)
				rawExec(t, st, `UPDATE audit_blocks SET seq = 30 WHERE seq = 31`)
				rawExec(t, st, `UPDATE audit_blocks SET seq = 31 WHERE seq = -1`)
			},
			firstBad: 30, problem: "entry 30: hash does not match its content chained to entry 29",
		},
		{
			name: "forged entry after the head",
			tamper: func(t *testing.T, st storage.Store) {
				last := rawRow(t, st, 50)
				f := last
				f.seq, f.requestID, f.prevHash = 51, "forged", last.hash
				f.hash, _ = f.computeHash(f.prevHash, nil)
				insertRaw(t, st, &f)
			},
			firstBad: 51, problem: "entry 51: lies beyond the chain head (entry 50)",
		},
		{
			name: "forged entry inserted in the middle",
			tamper: func(t *testing.T, st storage.Store) {
				// Shift 26..50 up by one and put a well-formed entry at 26.
				rawExec(t, st, `UPDATE audit_blocks SET seq = -seq WHERE seq >= 26`)
				rawExec(t, st, `UPDATE audit_blocks SET seq = 1 - seq WHERE seq < 0`)
				rawExec(t, st, `UPDATE audit_head SET seq = 51`)
				prev := rawRow(t, st, 25)
				f := prev
				f.seq, f.requestID, f.prevHash = 26, "forged", prev.hash
				f.hash, _ = f.computeHash(f.prevHash, nil)
				insertRaw(t, st, &f)
			},
			firstBad: 27, problem: "entry 27: hash does not match its content chained to entry 26",
		},
		{
			name: "chain rewritten from an entry on",
			tamper: func(t *testing.T, st storage.Store) {
				// Everything recomputed (entries and head) except the
				// signatures, which need the barrier's key.
				prev := rawRow(t, st, 24).hash
				for seq := int64(25); seq <= 50; seq++ {
					r := rawRow(t, st, seq)
					if seq == 25 {
						r.principal = "someone-else"
					}
					r.prevHash = prev
					r.hash, _ = r.computeHash(prev, nil)
					prev = r.hash
					rawUpdate(t, st, &r)
				}
				rawExec(t, st, `UPDATE audit_head SET hash = $1`, prev)
			},
			firstBad: 30, problem: "checkpoint at 30: its signed hash does not match entry 30 (an entry in 21..30 was rewritten and the chain recomputed)",
		},
		{
			name: "checkpoint signature",
			tamper: func(t *testing.T, st storage.Store) {
				rawExec(t, st, `UPDATE audit_checkpoints SET signature = $1 WHERE seq = 20`, make([]byte, 64))
			},
			firstBad: 20, problem: "checkpoint at 20: bad signature",
		},
		{
			name: "checkpoint moved",
			tamper: func(t *testing.T, st storage.Store) {
				rawExec(t, st, `UPDATE audit_checkpoints SET seq = 21 WHERE seq = 20`)
			},
			firstBad: 21, problem: "checkpoint at 21: bad signature",
		},
		{
			name: "tail truncated",
			tamper: func(t *testing.T, st storage.Store) {
				r := rawRow(t, st, 44)
				rawExec(t, st, `DELETE FROM audit_blocks WHERE seq > 44`)
				rawExec(t, st, `UPDATE audit_head SET seq = 44, hash = $1`, r.hash)
			},
			firstBad: 45, problem: "checkpoint at 50: entry 45 is missing (the log ends at 44)",
		},
		{
			name:     "tail truncated, head left",
			tamper:   func(t *testing.T, st storage.Store) { rawExec(t, st, `DELETE FROM audit_blocks WHERE seq > 48`) },
			firstBad: 49, problem: "checkpoint at 50: entry 49 is missing (the log ends at 48)",
		},
		{
			name: "first problem wins",
			tamper: func(t *testing.T, st storage.Store) {
				rawExec(t, st, `DELETE FROM audit_blocks WHERE seq = 40`)
				rawExec(t, st, `UPDATE audit_checkpoints SET signature = $1 WHERE seq = 30`, make([]byte, 64))
				r := rawRow(t, st, 12)
				r.principal = "x"
				rawUpdate(t, st, &r)
			},
			firstBad: 12, problem: "entry 12: hash does not match its content chained to entry 11",
		},
	}
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		signer := newSigner(t)
		l := openLog(t, st, signer, Options{CheckpointEvery: 10})
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				resetLog(t, st)
				appendN(t, l, 50)
				mustVerify(t, l, 50)
				c.tamper(t, st)
				res, err := l.Verify(t.Context())
				if !errors.Is(err, ErrTampered) {
					t.Fatalf("Verify after tampering = %+v, %v; want ErrTampered", res, err)
				}
				if res.FirstBad != c.firstBad || res.Problem != c.problem {
					t.Errorf("Verify = FirstBad %d %q\n  want FirstBad %d %q", res.FirstBad, res.Problem, c.firstBad, c.problem)
				}
				if res.Entries != c.firstBad-1 && c.firstBad != 30 {
					t.Errorf("Verify counted %d good entries before entry %d", res.Entries, c.firstBad)
				}
			})
		}
	})
}

// resetLog empties the audit tables by raw SQL.
func resetLog(t *testing.T, st storage.Store) {
	t.Helper()
	rawExec(t, st, `DELETE FROM audit_blocks`)
	rawExec(t, st, `DELETE FROM audit_principals`)
	rawExec(t, st, `DELETE FROM audit_checkpoints`)
	rawExec(t, st, `UPDATE audit_head SET seq = 0, hash = $1, checkpoint_seq = 0`, zeroHash)
}
