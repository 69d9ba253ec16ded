package audit

import (
	"database/sql"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/postgres"
	"github.com/keyward/keyward/internal/storage/sqlite"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// Migration 0018 moves audit_entries (seventeen columns, prev_hash stored)
// into audit_log (five columns), and 0025 audit_log into audit_blocks (a
// block of one entry a row). A log written through the 0017 schema, as
// the writer of that schema wrote it — awkward values, checkpoints, a
// pruned prefix — still verifies after the migrations, lists the same
// entries, and goes on growing; and the block texts the databases' JSON
// functions wrote are byte for byte what appendBlockText writes.
func TestMigrationsKeepTheLog(t *testing.T) {
	t.Run(storage.SQLite, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keyward.db")
		db, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate&_busy_timeout=5000")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		testMigration0018(t, db, storage.SQLite, sqlite.Migrations(), func() storage.Store {
			db.Close()
			st, err := sqlite.Open(t.Context(), path, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
	t.Run(storage.Postgres, func(t *testing.T) {
		u, schema := storagetest.PostgresSchema(t)
		db, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		testMigration0018(t, db, storage.Postgres, postgres.Migrations(), func() storage.Store {
			db.Close()
			st, err := postgres.Open(t.Context(), u, storage.Options{Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
}

// migrationsBefore returns the migrations of all numbered below version.
func migrationsBefore(t *testing.T, all fs.FS, version int) fs.FS {
	t.Helper()
	entries, err := fs.ReadDir(all, ".")
	if err != nil {
		t.Fatal(err)
	}
	out := fstest.MapFS{}
	for _, e := range entries {
		v, err := strconv.Atoi(e.Name()[:4])
		if err != nil {
			t.Fatalf("migration %q: %v", e.Name(), err)
		}
		if v >= version {
			continue
		}
		b, err := fs.ReadFile(all, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = &fstest.MapFile{Data: b}
	}
	return out
}

// awkwardEntries are entries whose values exercise the entry text: every
// control character, quotes and backslashes, non-ASCII text, fields at
// their size limit, empty fields, extreme integers, details that need
// escaping twice.
func awkwardEntries() []*Entry {
	var ctl strings.Builder
	for c := 1; c < 0x20; c++ {
		ctl.WriteByte(byte(c))
	}
	ctl.WriteString("\x7f")
	es := []*Entry{
		{RequestID: ctl.String(), Principal: "user:\x01", AuthMethod: `"quoted"`, AccessorHMAC: `back\slash\`,
			Action: "read", Resource: `secret/{"a":[1]}/\u0041`, Environment: "é😀\u2028\u2029\uFFFD\u00a0\u0085",
			SourceAddr: "[::1]:443", UserAgent: "evil\x00agent\xff", Outcome: OutcomeDenied, Status: -1,
			LatencyUS: math.MinInt64, Detail: map[string]string{"k\n\"": ctl.String(), `\`: "/é"}},
		{Outcome: OutcomeAllowed, Status: math.MaxInt64, LatencyUS: math.MaxInt64},
		{RequestID: strings.Repeat("é", MaxFieldBytes), UserAgent: strings.Repeat(`\"`, MaxFieldBytes),
			Outcome: OutcomeError, Status: 0, Detail: map[string]string{}},
		{RequestID: "r", Principal: "", Outcome: OutcomeAllowed, Status: 200, Detail: map[string]string{"": ""}},
	}
	return es
}

func testMigration0018(t *testing.T, db *sql.DB, backend string, all fs.FS, open func() storage.Store) {
	ctx := t.Context()
	if err := storage.Migrate(ctx, db, backend, migrationsBefore(t, all, 18)); err != nil {
		t.Fatalf("migrate to 0017: %v", err)
	}
	signer := newSigner(t)
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var entries []*Entry
	for i := range 60 {
		e := testEntry(i)
		// Times go back now and then: entries carry their request's start.
		e.Time = t0.Add(time.Duration(i*7%11) * time.Second).Add(time.Duration(i) * time.Minute)
		entries = append(entries, e)
	}
	for i, e := range awkwardEntries() {
		e.Time = t0.Add(time.Duration(61+i) * time.Minute)
		entries = append(entries, e)
	}
	for i := range 15 {
		entries = append(entries, testEntry(100+i))
	}
	want := writeOld0017(t, db, signer, entries, 10, 12)

	st := open()
	l := openLog(t, st, signer, Options{CheckpointEvery: 10})
	res := mustVerify(t, l, int64(len(want)))
	if res.Checkpoints != 6 { // 20, 30, ..., 70
		t.Errorf("%d checkpoints verified, want 6", res.Checkpoints)
	}
	got, err := l.List(ctx, Filter{Limit: MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("List returned %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("entry %d after migration:\n got %+v\nwant %+v", want[i].Seq, got[i], want[i])
		}
	}
	for _, f := range []Filter{
		{Principal: "user:\x01"},
		{Principal: "user-2", Limit: 3},
		{Outcome: OutcomeDenied},
		{ResourcePrefix: "secret/app/1", Limit: 4},
		{Since: t0.Add(30 * time.Minute), Until: t0.Add(40 * time.Minute)},
	} {
		got, err := l.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if w := filterEntries(want, f); !reflect.DeepEqual(got, w) {
			t.Errorf("List(%+v) = %d entries, want %d", f, len(got), len(w))
		}
	}

	// The texts the databases wrote are the ones the log writes.
	err = st.Read(ctx, func(tx storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+blockColumns+` FROM audit_blocks ORDER BY seq`)
		if err != nil {
			return err
		}
		defer rows.Close()
		var b storedBlock
		for rows.Next() {
			if err := scanBlock(rows, &b, false); err != nil {
				return err
			}
			es, err := b.entries(nil)
			if err != nil || len(es) != 1 || b.timeMax != es[0].time {
				return fmt.Errorf("block %d: %d entries, time_max %d: %v", b.seq, len(es), b.timeMax, err)
			}
			if ours := string(appendBlockText(nil, []*row{&es[0]})); ours != b.text {
				t.Errorf("entry %d: migrated text differs from the writer's:\n%q\n%q", b.seq, b.text, ours)
			}
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	checkAuditSchema(t, st)

	// The chain goes on from the migrated entries.
	appendN(t, l, 3)
	mustVerify(t, l, int64(len(want)+3))
}

// filterEntries applies f to es the way List does, in Go.
func filterEntries(es []Entry, f Filter) []Entry {
	limit := f.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	var out []Entry
	for _, e := range es {
		if (f.Principal == "" || e.Principal == f.Principal) && (f.Outcome == "" || e.Outcome == f.Outcome) &&
			strings.HasPrefix(e.Resource, f.ResourcePrefix) && e.Seq > f.AfterSeq && (f.BeforeSeq == 0 || e.Seq < f.BeforeSeq) &&
			(f.Since.IsZero() || !e.Time.Before(f.Since)) && (f.Until.IsZero() || e.Time.Before(f.Until)) &&
			(f.Newest || len(out) < limit) {
			out = append(out, e)
		}
	}
	if f.Newest && len(out) > limit {
		out = out[len(out)-limit:] // the newest, still in ascending order
	}
	return out
}

// checkAuditSchema checks that audit_entries and audit_log are gone and
// that the audit tables have no index besides their primary keys.
func checkAuditSchema(t *testing.T, st storage.Store) {
	t.Helper()
	var q string
	switch st.Backend() {
	case storage.SQLite:
		// INTEGER PRIMARY KEY is the rowid: no index of its own.
		q = `SELECT tbl_name || '.' || name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'audit%' ORDER BY 1`
	default:
		q = `SELECT tablename || '.' || indexname FROM pg_indexes WHERE schemaname = current_schema()
			AND tablename LIKE 'audit%' AND indexname NOT LIKE '%_pkey' ORDER BY 1`
	}
	got := column[string](t, st, q)
	if len(got) != 0 {
		t.Errorf("audit indexes = %q, want none but the primary keys", got)
	}
	for _, table := range []string{"audit_entries", "audit_log"} {
		err := st.Read(t.Context(), func(tx storage.Tx) error {
			var n int64
			return tx.QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&n)
		})
		if err == nil {
			t.Errorf("%s still exists", table)
		}
	}
}

// writeOld0017 appends entries to the 0017 schema as that schema's writer
// did (prev_hash stored, a checkpoint every cpEvery entries, the head
// moved), then prunes the first pruned entries as Prune did, and returns
// the remaining entries as List returns them.
func writeOld0017(t *testing.T, db *sql.DB, signer *fakeSigner, entries []*Entry, cpEvery, pruned int64) []Entry {
	t.Helper()
	ctx := t.Context()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	now := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	prep := &Log{opts: Options{Now: func() time.Time { return now }}}
	prev := zeroHash
	var out []Entry
	for i, e := range entries {
		r, detail, err := prep.prepare(e, true)
		if err != nil {
			t.Fatal(err)
		}
		r.seq = int64(i + 1)
		r.prevHash = prev
		r.hash, _ = r.computeHash(prev, nil)
		prev = r.hash
		exec(`INSERT INTO audit_entries (seq, time, request_id, principal, auth_method, accessor_hmac, action,
			resource, environment, source_addr, user_agent, outcome, status, latency_us, detail, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
			r.seq, r.time, r.requestID, r.principal, r.authMethod, r.accessor, r.action, r.resource,
			r.environment, r.sourceAddr, r.userAgent, r.outcome, r.status, r.latencyUS, r.detail, r.prevHash, r.hash)
		if r.seq%cpEvery == 0 {
			tm := now.UnixNano()
			sig, _ := signer.SignAudit(checkpointMessage(r.seq, r.hash, tm))
			exec(`INSERT INTO audit_checkpoints (seq, hash, signature, time) VALUES ($1, $2, $3, $4)`, r.seq, r.hash, sig, tm)
			exec(`UPDATE audit_head SET checkpoint_seq = $1 WHERE id = 1`, r.seq)
		}
		exec(`UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1`, r.seq, r.hash)
		if r.seq > pruned {
			out = append(out, r.entry(detail))
		}
	}
	anchor := out[0].PrevHash
	tm := now.UnixNano()
	sig, _ := signer.SignAudit(anchorMessage(pruned, anchor, tm))
	exec(`DELETE FROM audit_entries WHERE seq <= $1`, pruned)
	exec(`DELETE FROM audit_checkpoints WHERE seq <= $1`, pruned)
	exec(`UPDATE audit_anchor SET seq = $1, hash = $2, signature = $3, time = $4 WHERE id = 1`, pruned, anchor, sig, tm)
	return out
}
