package server

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

func TestAuditFileAndRetention(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Dev = true
	cfg.AuditFile = filepath.Join(dir, "audit.jsonl")
	cfg.AuditRetention = 24 * time.Hour
	r := start(t, cfg, nil)
	root := r.node.DevRootToken()
	for range 5 {
		call(t, "GET", r.url+"/v1/auth/token/lookup-self", root, nil, nil)
	}
	// Age the first entries' blocks past the retention (Prune reads a
	// block's latest time), then run the job.
	ctx := t.Context()
	r.node.Store().Write(ctx, func(tx storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE audit_blocks SET time_max = 1 WHERE seq <= 2`)
		return err
	})
	// Prune deletes them and leaves a remainder that verifies from its
	// signed anchor.
	r.node.tidy(ctx)
	var v map[string]any
	call(t, "POST", r.url+"/v1/audit/verify", root, nil, &v)
	if v["ok"] != true {
		t.Fatalf("after retention: %v", v)
	}
	var list struct {
		Entries []struct{ Seq int64 } `json:"entries"`
	}
	call(t, "GET", r.url+"/v1/audit", root, nil, &list)
	if len(list.Entries) == 0 || list.Entries[0].Seq <= 2 {
		t.Fatalf("old entries survived retention: %+v", list.Entries)
	}
	r.stop(t)
	f, err := os.Open(cfg.AuditFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e["request_id"] == nil {
			t.Fatalf("bad sink line %q: %v", sc.Text(), err)
		}
		lines++
	}
	if lines < 5 {
		t.Fatalf("the audit file holds %d lines", lines)
	}
}
