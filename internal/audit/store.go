package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// logColumns are audit_log's columns, in scanStored's order.
const logColumns = `seq, time, principal, entry, hash`

// head is the audit_head row.
type head struct {
	seq, checkpointSeq int64
	hash               []byte
}

// readHead reads the chain head; lock is tx.LockForUpdate() in appends.
func readHead(ctx context.Context, tx storage.Tx, lock string) (head, error) {
	var h head
	err := tx.QueryRow(ctx, `SELECT seq, hash, checkpoint_seq FROM audit_head WHERE id = 1`+lock).
		Scan(&h.seq, &h.hash, &h.checkpointSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("%w: the chain head row (audit_head) is missing", ErrTampered)
	}
	if err != nil {
		return h, fmt.Errorf("audit: read chain head: %w", err)
	}
	if len(h.hash) != HashSize || h.seq < 0 {
		return h, fmt.Errorf("%w: the chain head row (audit_head) is malformed", ErrTampered)
	}
	return h, nil
}

// writeRows extends the chain from the locked head with rows (setting their
// seq and hashes), inserts them and any checkpoint that falls due, and moves
// the head. It is the only code that appends.
func (l *Log) writeRows(ctx context.Context, tx storage.Tx, rows []*row) error {
	h, err := readHead(ctx, tx, tx.LockForUpdate())
	if err != nil {
		return err
	}
	seq, prev, cpSeq := h.seq, h.hash, h.checkpointSeq
	var buf []byte
	type checkpoint struct {
		seq, time int64
		hash, sig []byte
	}
	var cps []checkpoint
	every := int64(l.opts.CheckpointEvery)
	for _, r := range rows {
		seq++
		r.seq, r.prevHash = seq, prev
		r.hash, buf = r.computeHash(prev, buf)
		prev = r.hash
		if seq-cpSeq >= every {
			t := l.opts.Now().UnixNano()
			sig, err := l.signer.SignAudit(checkpointMessage(seq, prev, t))
			if err != nil {
				// Sealed, most likely: the entry matters more than the
				// checkpoint, which the next append retries.
				l.signFailures.Add(1)
				continue
			}
			cps = append(cps, checkpoint{seq: seq, time: t, hash: prev, sig: sig})
			cpSeq = seq
		}
	}
	if err := insertRows(ctx, tx, rows); err != nil {
		return err
	}
	for _, c := range cps {
		if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, signature, time) VALUES ($1, $2, $3, $4)`,
			c.seq, c.hash, c.sig, c.time); err != nil {
			return fmt.Errorf("audit: insert checkpoint %d: %w", c.seq, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE audit_head SET seq = $1, hash = $2, checkpoint_seq = $3 WHERE id = 1`,
		seq, prev, cpSeq); err != nil {
		return fmt.Errorf("audit: update chain head: %w", err)
	}
	return nil
}

// insertRows inserts rows: seq, time, principal, the entry text and hash
// (prev_hash is the previous row's hash, not stored). On PostgreSQL the
// whole batch travels as one array parameter per column (unnest), so the
// statement is one round trip whatever the batch size. On SQLite it is a
// multi-row VALUES statement of up to sqliteChunk rows, whose text depends
// only on the row count, so the store's statement cache keeps each size
// prepared. The entry texts of a batch are encoded into one string.
//
// Measured on the 2-core machine (BenchmarkWriteBatch: one transaction of
// 512 entries, synchronous=FULL, commit included; median of 5): 8.2 µs of
// CPU and 7.8 allocations per entry for these five columns and one index,
// against 13.5 µs and 18.6 for the seventeen columns and two indexes of
// audit_entries (migration 0003). On PostgreSQL (wall time, the server's
// work included): 12.6 µs per entry against 18.4 µs. An index on time
// would add about 1 µs per entry on SQLite.
//
// Earlier, measured on the 2-core machine with the seventeen columns of
// audit_entries (CPU per entry, batches of 64, synchronous=FULL, commit
// included): 11.9 µs prepared against 17–20 µs for one statement over
// jsonb_each (parsed on every batch, then a JSON lookup per value) and
// 13.5 µs for one prepared INSERT per row.
//
// Most of what remains is the pages a batch dirties, each written to the
// WAL at commit: the principal index adds one page per distinct principal
// in the batch (with 50 principals, over 3× the writes of no such index).
func insertRows(ctx context.Context, tx storage.Tx, rows []*row) error {
	if len(rows) == 0 {
		return nil
	}
	texts := entryTexts(rows)
	var err error
	switch tx.Backend() {
	case storage.Postgres:
		n := len(rows)
		seq, tm, principal, hash := make([]int64, n), make([]int64, n), make([]string, n), make([][]byte, n)
		for i, r := range rows {
			seq[i], tm[i], principal[i], hash[i] = r.seq, r.time, r.principal, r.hash
		}
		_, err = tx.Exec(ctx, insertPostgres, seq, tm, principal, texts, hash)
	default:
		args := make([]any, 0, min(len(rows), sqliteChunk)*logColumnCount)
		for done := 0; done < len(rows) && err == nil; {
			n := min(len(rows)-done, sqliteChunk)
			args = args[:0]
			for i, r := range rows[done : done+n] {
				args = append(args, r.seq, r.time, r.principal, texts[done+i], r.hash)
			}
			_, err = tx.Exec(ctx, sqliteInsert(n), args...)
			done += n
		}
	}
	if err != nil {
		return fmt.Errorf("audit: insert entries %d-%d: %w", rows[0].seq, rows[len(rows)-1].seq, err)
	}
	return nil
}

// entryTexts returns the entry texts of rows, slices of one string (one
// allocation for the batch, not one per row).
func entryTexts(rows []*row) []string {
	size := 0
	for _, r := range rows {
		size += r.entryTextSize()
	}
	b := make([]byte, 0, size)
	texts := make([]string, len(rows))
	ends := make([]int, len(rows))
	for i, r := range rows {
		b = r.appendEntryText(b)
		ends[i] = len(b)
	}
	all := string(b)
	start := 0
	for i, end := range ends {
		texts[i] = all[start:end]
		start = end
	}
	return texts
}

const (
	logColumnCount = 5
	// sqliteChunk rows per SQLite INSERT: 32 × 5 = 160 parameters, well
	// under SQLite's limit (32766), and at most 32 distinct texts cached.
	sqliteChunk = 32
)

// sqliteInserts[n-1] is the INSERT of n rows. Its parameters are
// anonymous (?), not $n: SQLite finds the name of a numbered parameter by
// a linear search, which made binding the 544 of the seventeen-column row
// quadratic (a third of the batch's CPU).
var sqliteInserts = func() (q [sqliteChunk]string) {
	var b strings.Builder
	for n := 1; n <= sqliteChunk; n++ {
		b.Reset()
		b.WriteString("INSERT INTO audit_log (" + logColumns + ") VALUES ")
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for j := range logColumnCount {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteByte('?')
			}
			b.WriteByte(')')
		}
		q[n-1] = b.String()
	}
	return q
}()

func sqliteInsert(n int) string { return sqliteInserts[n-1] }

const insertPostgres = `INSERT INTO audit_log (` + logColumns + `)
	SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bytea[])`

// appendJSONString appends s as a JSON string, for the detail text: every
// control character as \u00xx. (The entry text spells some of them shorter;
// the detail text keeps this spelling because it is hashed as stored.)
func appendJSONString(b []byte, s string) []byte { return appendQuoted(b, s, false) }

// appendQuoted appends s as a JSON string. s is valid UTF-8 (clean made it
// so), which JSON carries as is; only '"', '\\' and control characters are
// escaped, the latter as \b \t \n \f \r when short, else as \u00xx.
func appendQuoted(b []byte, s string, short bool) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case short && shortEscape[c] != 0:
			b = append(b, '\\', shortEscape[c])
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// shortEscape is the letter of JSON's two-character escape of a control
// character, 0 when it has none.
var shortEscape = [0x20]byte{'\b': 'b', '\t': 't', '\n': 'n', '\f': 'f', '\r': 'r'}

// finalCheckpoint signs the chain head unless a checkpoint already covers it.
func (l *Log) finalCheckpoint(ctx context.Context) error {
	err := l.st.Write(ctx, func(tx storage.Tx) error {
		h, err := readHead(ctx, tx, tx.LockForUpdate())
		if err != nil || h.seq == h.checkpointSeq {
			return err
		}
		t := l.opts.Now().UnixNano()
		sig, err := l.signer.SignAudit(checkpointMessage(h.seq, h.hash, t))
		if err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, signature, time) VALUES ($1, $2, $3, $4)`,
			h.seq, h.hash, sig, t); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE audit_head SET checkpoint_seq = $1 WHERE id = 1`, h.seq)
		return err
	})
	if err != nil {
		return fmt.Errorf("audit: final checkpoint: %w", err)
	}
	return nil
}

// scanStored reads one row selected with logColumns (followed by the prev
// hash when prev is not nil) into r, and its entry text into text, which
// the caller decodes (r.decodeEntryText).
func scanStored(rows *sql.Rows, r *row, text *string, prev *[]byte) error {
	if prev != nil {
		return rows.Scan(&r.seq, &r.time, &r.principal, text, &r.hash, prev)
	}
	return rows.Scan(&r.seq, &r.time, &r.principal, text, &r.hash)
}

// selectWithPrev selects logColumns of audit_log a and the prev hash: the
// hash of entry seq-1, or the prune anchor's when seq-1 is the anchor
// (NULL when neither exists, in a log that does not verify).
const selectWithPrev = `SELECT a.seq, a.time, a.principal, a.entry, a.hash,
	coalesce(p.hash, (SELECT hash FROM audit_anchor WHERE id = 1 AND seq = a.seq - 1))
	FROM audit_log a LEFT JOIN audit_log p ON p.seq = a.seq - 1`

// List limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Filter selects entries for List. Zero fields do not filter.
type Filter struct {
	// Since and Until bound Time: Since <= Time < Until.
	Since, Until time.Time
	// Principal must equal the entry's principal.
	Principal string
	// ResourcePrefix must begin the entry's resource.
	ResourcePrefix string
	// Outcome must equal the entry's outcome.
	Outcome string
	// AfterSeq returns only entries with a greater seq (for paging: pass
	// the last seq of the previous page).
	AfterSeq int64
	// BeforeSeq, when above 0, returns only entries with a smaller seq
	// (for paging back with Newest: pass the first seq of the page).
	BeforeSeq int64
	// Newest returns the newest Limit matching entries instead of the
	// oldest, still in ascending seq order (a page reads like a tail).
	Newest bool
	// Limit caps the entries returned: DefaultListLimit when 0, at most
	// MaxListLimit.
	Limit int
}

// listPage is how many rows List reads per query while it filters on
// values inside the entry text, which only Go can read.
const listPage = 500

// List returns the entries matching f in ascending seq order: the oldest
// Limit of them, or with f.Newest the newest (walking seq downwards). An entry
// whose predecessor is missing (a log that does not verify) has a nil
// PrevHash; an entry whose stored text does not decode is an error
// wrapping ErrTampered.
//
// Seq, time and principal are filtered in SQL (principal through the
// (principal, seq) index); resource and outcome, which live in the entry
// text, in Go, reading page after page until limit entries match. There
// is no index on time: a filter on Since starts its walk at the last
// checkpoint signed before Since (sinceStart), one on Until alone walks seq
// from AfterSeq.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	// $1 is where the walk is: the lower bound going up; going down
	// (Newest), the upper bound, and $2 the lower. Both are set per page.
	where, order := " WHERE a.seq > $1", " ORDER BY a.seq"
	args := []any{int64(0)}
	switch {
	case f.Newest:
		where, order = " WHERE a.seq < $1 AND a.seq > $2", " ORDER BY a.seq DESC"
		args = append(args, int64(0))
	case f.BeforeSeq > 0:
		where += " AND a.seq < $2"
		args = append(args, f.BeforeSeq)
	}
	var q strings.Builder
	q.WriteString(selectWithPrev + where)
	add := func(cond string, v any) {
		args = append(args, v)
		q.WriteString(" AND " + strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1))
	}
	if !f.Since.IsZero() {
		add("a.time >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("a.time < ?", f.Until.UnixNano())
	}
	if f.Principal != "" {
		add("a.principal = ?", f.Principal)
	}
	inGo := f.ResourcePrefix != "" || f.Outcome != ""
	page := limit
	if inGo {
		page = max(limit, listPage)
	}
	args = append(args, page)
	q.WriteString(order + " LIMIT $" + strconv.Itoa(len(args)))

	var out []Entry
	err := l.st.Read(ctx, func(tx storage.Tx) error {
		out = out[:0]
		after := f.AfterSeq
		if !f.Since.IsZero() {
			start, err := sinceStart(ctx, tx, f.Since)
			if err != nil {
				return err
			}
			after = max(after, start)
		}
		at := after // where the walk is: going up, the last seq read
		if f.Newest {
			args[1] = after // the lower bound
			at = int64(math.MaxInt64)
			if f.BeforeSeq > 0 {
				at = f.BeforeSeq
			}
		}
		for {
			args[0] = at
			n, err := scanPage(ctx, tx, q.String(), args, func(r *row) (bool, error) {
				at = r.seq
				if !f.matchesText(r) {
					return true, nil
				}
				d, err := decodeDetail(r.detail)
				if err != nil {
					return false, fmt.Errorf("%w: entry %d: %w", ErrTampered, r.seq, err)
				}
				out = append(out, r.entry(d))
				return len(out) < limit, nil
			})
			if err != nil || len(out) == limit || n < page {
				return err
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	if f.Newest {
		slices.Reverse(out)
	}
	return out, nil
}

// clockSlack is how far apart the clocks of nodes sharing a log may be for
// List's Since to find every entry (sinceStart). Other checks already need
// them closer: a DPoP proof's iat window, a token's expiry.
const clockSlack = 2 * time.Minute

// sinceStart returns a seq at or before which no entry is stamped at or
// after since, so List's walk can start after it: the last checkpoint
// signed before since, less clockSlack (0 when there is none). An entry's
// time is fixed before the transaction that gives it its seq, and a
// checkpoint is signed in the transaction of the entry it covers, after
// its time was fixed; so every entry up to a checkpoint is stamped before
// the checkpoint was signed, give or take the skew of two nodes' clocks.
// Checkpoints come every Options.CheckpointEvery entries: the walk reads at
// most those, and those of clockSlack, before since.
func sinceStart(ctx context.Context, tx storage.Tx, since time.Time) (int64, error) {
	var seq int64
	err := tx.QueryRow(ctx, `SELECT seq FROM audit_checkpoints WHERE time <= $1 ORDER BY seq DESC LIMIT 1`,
		since.Add(-clockSlack).UnixNano()).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return seq, err
}

// matchesText reports whether r passes f's filters on values inside the
// entry text.
func (f *Filter) matchesText(r *row) bool {
	return (f.Outcome == "" || r.outcome == f.Outcome) && strings.HasPrefix(r.resource, f.ResourcePrefix)
}

// scanPage runs one List query and hands each row to fn until fn returns
// false or an error; it returns how many rows it read.
func scanPage(ctx context.Context, tx storage.Tx, q string, args []any, fn func(*row) (bool, error)) (int, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		var r row
		var text string
		if err := scanStored(rows, &r, &text, &r.prevHash); err != nil {
			return n, err
		}
		if err := r.decodeEntryText(text); err != nil {
			return n, fmt.Errorf("%w: entry %d: %w", ErrTampered, r.seq, err)
		}
		more, err := fn(&r)
		if err != nil || !more {
			return n, err
		}
	}
	return n, rows.Err()
}

// Prune deletes the oldest entries — the longest prefix of the chain whose
// entries are all older than before — and records a signed anchor (seq and
// hash of the last deleted entry) from which Verify starts, so the rest of
// the chain stays verifiable. Checkpoints of deleted entries go too. It
// returns how many entries were deleted. It needs the signer (unsealed).
func (l *Log) Prune(ctx context.Context, before time.Time) (int64, error) {
	var deleted int64
	err := l.st.Write(ctx, func(tx storage.Tx) error {
		deleted = 0
		var anchorSeq int64
		err := tx.QueryRow(ctx, `SELECT seq FROM audit_anchor WHERE id = 1`+tx.LockForUpdate()).Scan(&anchorSeq)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: the prune anchor row (audit_anchor) is missing", ErrTampered)
		}
		if err != nil {
			return err
		}
		// The cut: the first entry not older than before. time is not
		// monotonic along seq (an entry carries its request's start time
		// and is appended when the request ends), so this walks seq,
		// reading about as many rows as are deleted; there is no time
		// index to maintain on every append.
		var last int64
		err = tx.QueryRow(ctx, `SELECT seq FROM audit_log WHERE time >= $1 ORDER BY seq LIMIT 1`,
			before.UnixNano()).Scan(&last)
		switch {
		case err == nil:
			last--
		case errors.Is(err, sql.ErrNoRows):
			// Every entry is older: prune them all.
			var max sql.NullInt64
			if err := tx.QueryRow(ctx, `SELECT max(seq) FROM audit_log`).Scan(&max); err != nil {
				return err
			}
			last = max.Int64
		default:
			return err
		}
		if last <= anchorSeq {
			return nil
		}
		var hash []byte
		err = tx.QueryRow(ctx, `SELECT hash FROM audit_log WHERE seq = $1`, last).Scan(&hash)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: entry %d is missing", ErrTampered, last)
		}
		if err != nil {
			return err
		}
		t := l.opts.Now().UnixNano()
		sig, err := l.signer.SignAudit(anchorMessage(last, hash, t))
		if err != nil {
			return fmt.Errorf("sign anchor: %w", err)
		}
		res, err := tx.Exec(ctx, `DELETE FROM audit_log WHERE seq <= $1`, last)
		if err != nil {
			return err
		}
		if deleted, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM audit_checkpoints WHERE seq <= $1`, last); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE audit_anchor SET seq = $1, hash = $2, signature = $3, time = $4 WHERE id = 1`,
			last, hash, sig, t)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("audit: prune: %w", err)
	}
	return deleted, nil
}
