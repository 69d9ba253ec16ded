package cli

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// backupServer answers GET /v1/sys/backup with body and the Repr-Digest of
// digestOf.
func backupServer(h *harness, body, digestOf string) {
	h.fake.mux.HandleFunc("GET /v1/sys/backup", func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.Sum256([]byte(digestOf))
		w.Header().Set("Content-Type", "application/vnd.sqlite3")
		w.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
		w.Write([]byte(body))
	})
}

func TestOperatorBackup(t *testing.T) {
	h := newHarness(t, "kwt_root")
	h.vars["KEYWARD_TOKEN"] = "kwt_root"
	const db = "SQLite format 3\x00 and the rest of the database"
	backupServer(h, db, db)
	file := filepath.Join(t.TempDir(), "keyward.db")

	r := h.must("", "operator", "backup", file)
	sum := sha256.Sum256([]byte(db))
	if !strings.Contains(r.stdout, "Backup written to "+file) || !strings.Contains(r.stdout, hex.EncodeToString(sum[:])) {
		t.Fatalf("stdout %q", r.stdout)
	}
	got, err := os.ReadFile(file)
	if err != nil || string(got) != db {
		t.Fatalf("file = %q, %v", got, err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode())
	}
	if reqs := h.fake.requests("GET /v1/sys/backup"); len(reqs) != 1 || reqs[0].Auth != "Bearer kwt_root" {
		t.Fatalf("requests %+v", reqs)
	}

	// An existing file is kept unless --force.
	r = h.run("", "operator", "backup", file)
	if r.code != ExitFailure || !strings.Contains(r.stderr, "exists") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("existing file: exit %d, stderr %q", r.code, r.stderr)
	}
	r = h.must("", "operator", "backup", file, "--force", "-o", "json")
	var out struct {
		File   string `json:"file"`
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.File != file || out.Bytes != int64(len(db)) || out.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("json %q: %+v, %v", r.stdout, out, err)
	}
}

// A copy that does not match the server's SHA-256 is refused and leaves
// no file behind (nor replaces an older one).
func TestOperatorBackupDamaged(t *testing.T) {
	h := newHarness(t, "kwt_root")
	h.vars["KEYWARD_TOKEN"] = "kwt_root"
	backupServer(h, "SQLite format 3\x00 damaged", "SQLite format 3\x00 original")
	dir := t.TempDir()
	file := filepath.Join(dir, "keyward.db")
	r := h.run("", "operator", "backup", file)
	if r.code != ExitFailure || !strings.Contains(r.stderr, "does not match the SHA-256") {
		t.Fatalf("damaged: exit %d, stderr %q", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files left: %v", entries)
	}
	os.WriteFile(file, []byte("older backup"), 0o600)
	h.run("", "operator", "backup", file, "--force")
	if b, _ := os.ReadFile(file); string(b) != "older backup" {
		t.Fatalf("a failed backup replaced the older file: %q", b)
	}
}
