package server

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// download GETs /v1/sys/backup with tok.
func download(t *testing.T, u, tok string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", u+"/v1/sys/backup", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// A backup downloaded from a running node restores: a node started on it,
// with the same unseal key, serves the secrets the node held when the
// backup was made, and not those written after.
func TestBackupRestores(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Dev = true
	cfg.Storage = "sqlite"
	r := start(t, cfg, nil)
	root, u := r.node.DevRootToken(), r.url
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)
	if c := call(t, "PUT", u+"/v1/projects/shop/envs/prod/secrets/db/password", root, map[string]string{"value": "before-backup"}, nil); c != 200 && c != 201 {
		t.Fatalf("put = %d", c)
	}

	code, h, body := download(t, u, root)
	if code != 200 || h.Get("Content-Type") != "application/vnd.sqlite3" || !strings.HasPrefix(string(body), "SQLite format 3\x00") {
		t.Fatalf("backup = %d %q, %d bytes starting %q", code, h.Get("Content-Type"), len(body), body[:min(16, len(body))])
	}
	sum := sha256.Sum256(body)
	if want := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"; h.Get("Repr-Digest") != want {
		t.Fatalf("Repr-Digest %q, want %q", h.Get("Repr-Digest"), want)
	}
	if strings.Contains(string(body), "before-backup") {
		t.Fatal("the backup holds a secret in the clear")
	}
	// The server removes its copy once sent (just after the client read
	// the last byte).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		left, _ := filepath.Glob(filepath.Join(dir, ".keyward-snapshot-*"))
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot files left in the data directory: %v", left)
		}
	}
	if c := call(t, "PUT", u+"/v1/projects/shop/envs/prod/secrets/db/password", root, map[string]string{"value": "after-backup"}, nil); c != 200 && c != 201 {
		t.Fatalf("put = %d", c)
	}
	entries, err := r.node.auditLog.List(t.Context(), audit.Filter{ResourcePrefix: "sys/backup", Limit: 10})
	if err != nil || len(entries) != 1 || entries[0].Detail["backup_sha256"] == "" || entries[0].Status != 200 {
		t.Fatalf("audit of the backup: %+v, %v", entries, err)
	}

	// Restore: the backup as keyward.db in a new data directory, with the
	// dev unseal key (in production: the operators' unseal keys).
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, "keyward.db"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{devKeyFile, devTokenFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir2, f), b, 0o600)
	}
	cfg2 := testConfig(dir2)
	cfg2.Dev = true
	cfg2.Storage = "sqlite"
	r2 := start(t, cfg2, nil)
	var got struct {
		Value string `json:"value"`
	}
	if c := call(t, "GET", r2.url+"/v1/projects/shop/envs/prod/secrets/db/password", root, nil, &got); c != 200 || got.Value != "before-backup" {
		t.Fatalf("restored secret = %d %q, want before-backup", c, got.Value)
	}
}

// A backup needs admin on sys/backup; a node on PostgreSQL says to use
// PostgreSQL's tools.
func TestBackupRefusals(t *testing.T) {
	r, root := devNode(t)
	reader := childToken(t, r.url, root, "default")
	if code, _, body := download(t, r.url, reader); code != 403 || strings.HasPrefix(string(body), "SQLite") {
		t.Fatalf("backup with a token without admin on sys/backup = %d", code)
	}
	a, _ := twoPostgresNodes(t, "")
	code, _, body := download(t, a.url, a.node.DevRootToken())
	if code != 400 || !strings.Contains(string(body), "pg_dump") {
		t.Fatalf("backup of a PostgreSQL node = %d %s", code, body)
	}
}
