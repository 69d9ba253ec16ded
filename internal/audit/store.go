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
	"sync"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// blockColumns are audit_blocks' columns, in scanBlock's order.
const blockColumns = `seq, n, time_max, entries, hashes`

// blockMax is the most entries a block holds. A reader relies on it to
// find the block holding an entry by seq (the block's seq is its last
// entry's, at most blockMax-1 above).
const blockMax = 64

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
	hashes := make([]byte, 0, len(rows)*HashSize) // one allocation for the batch's
	for _, r := range rows {
		seq++
		r.seq, r.prevHash = seq, prev
		var sum [HashSize]byte
		sum, buf = r.sum(prev, buf)
		hashes = append(hashes, sum[:]...)
		r.hash = hashes[len(hashes)-HashSize : len(hashes) : len(hashes)]
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
	if err := insertRows(ctx, tx, rows, hashes); err != nil {
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

// insertRows inserts rows (consecutive seqs) as blocks of up to blockMax
// entries: seq (the last entry's), n, time_max, the entry texts as one
// JSON array and the hashes side by side; and each block's principals
// into audit_principals. On PostgreSQL each table's rows travel as one
// array parameter per column (unnest): one round trip a table whatever
// the batch size. On SQLite they are multi-row VALUES statements whose
// text depends only on the row count, so the store's statement cache
// keeps each size prepared.
//
// Measured on the 2-core machine (BenchmarkWriteBatch: one transaction of
// 512 entries, synchronous=FULL, commit included, CPU per entry): blocks
// 2.5-2.8 µs against 4.3-5.9 µs for one row and one index entry per entry
// (audit_log, migration 0018) with one principal, 5.6-6.2 µs with three.
// A block's row is one B-tree insert (its text spilling to overflow
// pages) where each entry was two.
//
// Earlier (audit_log, one row an entry): 8.2 µs of CPU and 7.8
// allocations per entry for five columns and one index, against 13.5 µs
// and 18.6 for the seventeen columns and two indexes of audit_entries
// (migration 0003); prepared multi-row VALUES against 17-20 µs for one
// statement over jsonb_each and 13.5 µs for one prepared INSERT per row.
//
// hashes, when not nil, are rows' hashes side by side (writeRows has them
// so), which the blocks then share.
func insertRows(ctx context.Context, tx storage.Tx, rows []*row, hashes []byte) error {
	if len(rows) == 0 {
		return nil
	}
	blocks := makeBlocks(rows, hashes)
	var principals []blockPrincipal
	for i := range blocks {
		principals = blocks[i].appendPrincipals(principals)
	}
	var err error
	switch tx.Backend() {
	case storage.Postgres:
		n := len(blocks)
		seq, count, tmax, texts, hashes := make([]int64, n), make([]int64, n), make([]int64, n), make([]string, n), make([][]byte, n)
		for i, b := range blocks {
			seq[i], count[i], tmax[i], texts[i], hashes[i] = b.seq, int64(len(b.rows)), b.timeMax, b.text, b.hashes
		}
		if _, err = tx.Exec(ctx, insertBlocksPostgres, seq, count, tmax, texts, hashes); err == nil {
			names, seqs := make([]string, len(principals)), make([]int64, len(principals))
			for i, p := range principals {
				names[i], seqs[i] = p.principal, p.seq
			}
			_, err = tx.Exec(ctx, insertPrincipalsPostgres, names, seqs)
		}
	default:
		args := make([]any, 0, max(min(len(blocks), sqliteChunk)*blockColumnCount, min(len(principals), sqliteChunk)*2))
		for done := 0; done < len(blocks) && err == nil; {
			n := min(len(blocks)-done, sqliteChunk)
			args = args[:0]
			for _, b := range blocks[done : done+n] {
				args = append(args, b.seq, int64(len(b.rows)), b.timeMax, b.text, b.hashes)
			}
			_, err = tx.Exec(ctx, sqliteInsertBlocks[n-1], args...)
			done += n
		}
		for done := 0; done < len(principals) && err == nil; {
			n := min(len(principals)-done, sqliteChunk)
			args = args[:0]
			for _, p := range principals[done : done+n] {
				args = append(args, p.principal, p.seq)
			}
			_, err = tx.Exec(ctx, sqliteInsertPrincipals[n-1], args...)
			done += n
		}
	}
	if err != nil {
		return fmt.Errorf("audit: insert entries %d-%d: %w", rows[0].seq, rows[len(rows)-1].seq, err)
	}
	return nil
}

// newBlock is a block being written.
type newBlock struct {
	rows    []*row
	seq     int64 // the last entry's
	timeMax int64
	text    string
	hashes  []byte
}

// blockPrincipal is a row of audit_principals.
type blockPrincipal struct {
	principal string
	seq       int64
}

// makeBlocks cuts rows (seq and hashes set) into blocks of up to
// blockMax, their texts slices of one string and their hashes of one
// slice: hashes, rows' hashes side by side, or when nil a copy (an
// allocation each for the batch, not one a block). The texts are written
// in a recycled buffer (textBufs), then copied into their string.
func makeBlocks(rows []*row, hashes []byte) []newBlock {
	blocks := make([]newBlock, 0, (len(rows)+blockMax-1)/blockMax)
	size := 0
	for _, r := range rows {
		size += r.entryTextSize() + 1
	}
	buf, _ := textBufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	text := slices.Grow((*buf)[:0], size+2*cap(blocks))
	if hashes == nil {
		hashes = make([]byte, 0, len(rows)*HashSize)
		for _, r := range rows {
			hashes = append(hashes, r.hash...)
		}
	}
	ends := make([]int, 0, cap(blocks))
	for start := 0; start < len(rows); start += blockMax {
		end := min(start+blockMax, len(rows))
		part := rows[start:end]
		b := newBlock{rows: part, seq: part[len(part)-1].seq, timeMax: part[0].time,
			hashes: hashes[start*HashSize : end*HashSize : end*HashSize]}
		for _, r := range part {
			b.timeMax = max(b.timeMax, r.time)
		}
		text = appendBlockText(text, part)
		ends = append(ends, len(text))
		blocks = append(blocks, b)
	}
	all := string(text)
	if cap(text) <= maxTextBuf {
		*buf = text[:0]
		textBufs.Put(buf)
	}
	from := 0
	for i, end := range ends {
		blocks[i].text = all[from:end]
		from = end
	}
	return blocks
}

// textBufs recycles makeBlocks' buffers (*[]byte) of at most maxTextBuf
// bytes: a batch's texts cost one allocation, their string.
var textBufs sync.Pool

const maxTextBuf = 1 << 20

// appendPrincipals appends b's distinct principals to ps.
func (b *newBlock) appendPrincipals(ps []blockPrincipal) []blockPrincipal {
	first := len(ps)
next:
	for _, r := range b.rows {
		for _, p := range ps[first:] {
			if p.principal == r.principal {
				continue next
			}
		}
		ps = append(ps, blockPrincipal{principal: r.principal, seq: b.seq})
	}
	return ps
}

const (
	blockColumnCount = 5
	// sqliteChunk rows per SQLite INSERT: 32 blocks × 5 = 160 parameters,
	// well under SQLite's limit (32766), and at most 32 distinct texts
	// cached per table.
	sqliteChunk = 32
)

// sqliteInsertBlocks[n-1] and sqliteInsertPrincipals[n-1] insert n rows.
// Their parameters are anonymous (?), not $n: SQLite finds the name of a
// numbered parameter by a linear search, which made binding hundreds of
// them quadratic.
var (
	sqliteInsertBlocks     = sqliteInserts("audit_blocks ("+blockColumns+")", blockColumnCount)
	sqliteInsertPrincipals = sqliteInserts("audit_principals (principal, seq)", 2)
)

func sqliteInserts(table string, columns int) (q [sqliteChunk]string) {
	var b strings.Builder
	for n := 1; n <= sqliteChunk; n++ {
		b.Reset()
		b.WriteString("INSERT INTO " + table + " VALUES ")
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for j := range columns {
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
}

const (
	insertBlocksPostgres = `INSERT INTO audit_blocks (` + blockColumns + `)
	SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bytea[])`
	insertPrincipalsPostgres = `INSERT INTO audit_principals (principal, seq) SELECT * FROM unnest($1::text[], $2::bigint[])`
)

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

// storedBlock is a row of audit_blocks as read.
type storedBlock struct {
	seq, n, timeMax int64
	text            string
	hashes          []byte
	// prev is the hash the block's first entry chains to, when selected
	// (selectWithPrev): the previous block's hashes (the last is the one)
	// or the prune anchor's hash; nil when neither exists, in a log that
	// does not verify.
	prev []byte
}

// scanBlock reads one row selected with blockColumns (followed by the prev
// hashes when withPrev) into b.
func scanBlock(rows *sql.Rows, b *storedBlock, withPrev bool) error {
	b.prev = nil
	if withPrev {
		return rows.Scan(&b.seq, &b.n, &b.timeMax, &b.text, &b.hashes, &b.prev)
	}
	return rows.Scan(&b.seq, &b.n, &b.timeMax, &b.text, &b.hashes)
}

// blocksAfter reads up to limit blocks holding entries after seq, in seq
// order; withPrev also selects the hash each block's first entry chains to
// (selectWithPrev).
func blocksAfter(ctx context.Context, tx storage.Tx, seq int64, limit int, withPrev bool) ([]storedBlock, error) {
	q := `SELECT ` + blockColumns + ` FROM audit_blocks WHERE seq > $1 ORDER BY seq LIMIT $2`
	if withPrev {
		q = selectWithPrev + ` WHERE a.seq > $1 ORDER BY a.seq LIMIT $2`
	}
	rows, err := tx.Query(ctx, q, seq, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedBlock
	for rows.Next() {
		var b storedBlock
		if err := scanBlock(rows, &b, withPrev); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// first is the seq of b's first entry (b.seq when n does not make sense).
func (b *storedBlock) first() int64 {
	if b.n < 1 || b.n > b.seq {
		return b.seq
	}
	return b.seq - b.n + 1
}

// entries decodes b's entries into out (reused), with their seq, hash and
// prev hash set. A block that does not decode (edited in the database) is
// an error, which callers report as tampering at b.first().
func (b *storedBlock) entries(out []row) ([]row, error) {
	if b.n < 1 || b.n > b.seq || int64(len(b.hashes)) != b.n*HashSize {
		return out[:0], fmt.Errorf("malformed block: %d entries ending at %d with %d bytes of hashes",
			b.n, b.seq, len(b.hashes))
	}
	out = slices.Grow(out[:0], int(b.n))[:b.n]
	clear(out)
	if err := decodeBlockText(b.text, out); err != nil {
		return out[:0], err
	}
	prev := b.prev
	if len(prev) >= HashSize {
		prev = prev[len(prev)-HashSize:]
	} else {
		prev = nil
	}
	for i := range out {
		r := &out[i]
		r.seq = b.seq - b.n + 1 + int64(i)
		r.hash = b.hashes[i*HashSize : (i+1)*HashSize : (i+1)*HashSize]
		r.prevHash = prev
		prev = r.hash
	}
	return out, nil
}

// selectWithPrev selects blockColumns of audit_blocks a and the hash its
// first entry chains to: the previous block's hashes, or the prune
// anchor's hash when the anchor ends right before it (NULL when neither
// exists, in a log that does not verify).
const selectWithPrev = `SELECT a.seq, a.n, a.time_max, a.entries, a.hashes,
	coalesce(p.hashes, (SELECT hash FROM audit_anchor WHERE id = 1 AND seq = a.seq - a.n))
	FROM audit_blocks a LEFT JOIN audit_blocks p ON p.seq = a.seq - a.n`

// selectWithPrevOf is selectWithPrev of the blocks holding entries of one
// principal (x.principal), walked through audit_principals' key.
const selectWithPrevOf = `SELECT a.seq, a.n, a.time_max, a.entries, a.hashes,
	coalesce(p.hashes, (SELECT hash FROM audit_anchor WHERE id = 1 AND seq = a.seq - a.n))
	FROM audit_principals x CROSS JOIN audit_blocks a LEFT JOIN audit_blocks p ON p.seq = a.seq - a.n
	WHERE a.seq = x.seq AND`

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

// listPage is how many blocks List reads per query (up to 64 entries
// each) while it filters entries in Go.
const listPage = 16

// List returns the entries matching f in ascending seq order: the oldest
// Limit of them, or with f.Newest the newest (walking seq downwards). An entry
// whose predecessor is missing (a log that does not verify) has a nil
// PrevHash; an entry whose stored text does not decode is an error
// wrapping ErrTampered.
//
// SQL picks the blocks: by seq, by principal (through audit_principals'
// key) and by their latest time for Since; Go filters their entries on
// every field, reading page after page until limit entries match. There
// is no index on time: a filter on Since starts its walk at the last
// checkpoint signed before Since (sinceStart), one on Until alone walks seq
// from AfterSeq.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
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
		at := after // where the walk is: going up, the last block's seq
		if f.Newest {
			at = int64(math.MaxInt64) // going down, the last block's first seq
			if f.BeforeSeq > 0 {
				at = f.BeforeSeq
			}
		}
		var buf []row
		for {
			q, args := f.listQuery(at, after)
			n, err := scanPage(ctx, tx, q, args, &buf, f.Newest, func(b *storedBlock, r *row) (bool, error) {
				if f.Newest {
					at = b.first()
				} else {
					at = b.seq
				}
				if r.seq <= after || f.BeforeSeq > 0 && r.seq >= f.BeforeSeq || !f.matches(r) {
					return true, nil
				}
				d, err := decodeDetail(r.detail)
				if err != nil {
					return false, fmt.Errorf("%w: entry %d: %w", ErrTampered, r.seq, err)
				}
				out = append(out, r.entry(d))
				return len(out) < limit, nil
			})
			if err != nil || len(out) == limit || n < listPage {
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

// listQuery is List's query of the next page of blocks: going up, the
// blocks after at; going down (Newest), those holding an entry below at.
// Either way only blocks holding an entry after after, before f.BeforeSeq,
// not older than f.Since and, when f.Principal is set, one of its entries.
func (f *Filter) listQuery(at, after int64) (string, []any) {
	var q strings.Builder
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	col := "a.seq"
	if f.Principal != "" {
		q.WriteString(selectWithPrevOf + " x.principal = " + arg(f.Principal) + " AND ")
		col = "x.seq" // audit_principals' key: (principal, seq)
	} else {
		q.WriteString(selectWithPrev + " WHERE ")
	}
	// A block's seq is its last entry's; it holds an entry below s when
	// its first entry is below s, i.e. seq-n < s-1, and then seq < s+blockMax-1.
	below := func(s int64) {
		q.WriteString(col + " < " + arg(satAdd(s, blockMax-1)) + " AND a.seq - a.n < " + arg(s-1))
	}
	order := " ORDER BY " + col
	if f.Newest {
		below(at)
		q.WriteString(" AND " + col + " > " + arg(after))
		order += " DESC"
	} else {
		q.WriteString(col + " > " + arg(at))
		if f.BeforeSeq > 0 {
			q.WriteString(" AND ")
			below(f.BeforeSeq)
		}
	}
	if !f.Since.IsZero() {
		q.WriteString(" AND a.time_max >= " + arg(f.Since.UnixNano()))
	}
	q.WriteString(order + " LIMIT " + arg(listPage))
	return q.String(), args
}

// satAdd is a+b (b >= 0), at most math.MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
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

// matches reports whether r passes f's filters on an entry's fields (seq
// bounds aside).
func (f *Filter) matches(r *row) bool {
	return (f.Principal == "" || r.principal == f.Principal) &&
		(f.Since.IsZero() || r.time >= f.Since.UnixNano()) &&
		(f.Until.IsZero() || r.time < f.Until.UnixNano()) &&
		(f.Outcome == "" || r.outcome == f.Outcome) && strings.HasPrefix(r.resource, f.ResourcePrefix)
}

// scanPage runs one List query (selectWithPrev's columns) and hands each
// entry of each block, in seq order (descending when down), to fn until fn
// returns false or an error; it returns how many blocks it read. buf is
// scratch space for a block's entries.
func scanPage(ctx context.Context, tx storage.Tx, q string, args []any, buf *[]row, down bool,
	fn func(*storedBlock, *row) (bool, error)) (int, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	var b storedBlock
	for rows.Next() {
		n++
		if err := scanBlock(rows, &b, true); err != nil {
			return n, err
		}
		es, err := b.entries(*buf)
		*buf = es
		if err != nil {
			return n, fmt.Errorf("%w: entry %d: %w", ErrTampered, b.first(), err)
		}
		for i := range es {
			r := &es[i]
			if down {
				r = &es[len(es)-1-i]
			}
			more, err := fn(&b, r)
			if err != nil || !more {
				return n, err
			}
		}
	}
	return n, rows.Err()
}

// Prune deletes the oldest entries — the longest prefix of whole blocks
// whose entries are all older than before — and records a signed anchor (seq and
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
		// The cut: the first block holding an entry not older than
		// before; the blocks before it go. time is not monotonic along
		// seq (an entry carries its request's start time and is appended
		// when the request ends), so this walks seq, reading about as
		// many blocks as it deletes; there is no time index to maintain
		// on every append. A block's older entries wait for the prune
		// after its newest is old enough.
		var cut int64
		var last sql.NullInt64
		var hashes []byte
		err = tx.QueryRow(ctx, `SELECT seq FROM audit_blocks WHERE time_max >= $1 ORDER BY seq LIMIT 1`,
			before.UnixNano()).Scan(&cut)
		switch {
		case err == nil:
			err = tx.QueryRow(ctx, `SELECT seq, hashes FROM audit_blocks WHERE seq < $1 ORDER BY seq DESC LIMIT 1`, cut).
				Scan(&last, &hashes)
		case errors.Is(err, sql.ErrNoRows):
			// Every entry is older: prune them all.
			err = tx.QueryRow(ctx, `SELECT seq, hashes FROM audit_blocks ORDER BY seq DESC LIMIT 1`).Scan(&last, &hashes)
		}
		if errors.Is(err, sql.ErrNoRows) || err == nil && last.Int64 <= anchorSeq {
			return nil
		}
		if err != nil {
			return err
		}
		if len(hashes) < HashSize {
			return fmt.Errorf("%w: the block ending at entry %d has no hash", ErrTampered, last.Int64)
		}
		hash := hashes[len(hashes)-HashSize:]
		var n sql.NullInt64
		if err := tx.QueryRow(ctx, `SELECT sum(n) FROM audit_blocks WHERE seq <= $1`, last.Int64).Scan(&n); err != nil {
			return err
		}
		deleted = n.Int64
		t := l.opts.Now().UnixNano()
		sig, err := l.signer.SignAudit(anchorMessage(last.Int64, hash, t))
		if err != nil {
			return fmt.Errorf("sign anchor: %w", err)
		}
		for _, table := range []string{"audit_blocks", "audit_principals", "audit_checkpoints"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE seq <= $1`, last.Int64); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE audit_anchor SET seq = $1, hash = $2, signature = $3, time = $4 WHERE id = 1`,
			last.Int64, hash, sig, t)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("audit: prune: %w", err)
	}
	return deleted, nil
}
