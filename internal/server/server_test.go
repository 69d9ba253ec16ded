package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/redact"
	"github.com/keyward/keyward/internal/shamir"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a node serving on a loopback port.
type running struct {
	node   *Node
	url    string
	gwURL  string // the data-plane listener's, when configured
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returned
	err    error         // what Serve returned
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("Serve: %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
}

func testConfig(dir string) config.Config {
	c := config.Defaults()
	c.DataDir = dir
	c.Listen = "127.0.0.1:0"
	if u := os.Getenv("KEYWARD_TEST_SERVER_POSTGRES"); u != "" {
		c.Storage = u
	}
	return c
}

func start(t *testing.T, cfg config.Config, logw io.Writer) *running {
	t.Helper()
	if logw == nil {
		logw = io.Discard
	}
	log := slog.New(redact.NewHandler(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return startOpts(t, cfg, Options{Log: log, Banner: logw})
}

// startOpts is start with the node's Options given.
func startOpts(t *testing.T, cfg config.Config, opts Options) *running {
	t.Helper()
	node, err := New(t.Context(), cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := node.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{node: node, url: "http://" + ln.API.Addr().String(), cancel: cancel, done: make(chan struct{})}
	if ln.Gateway != nil {
		r.gwURL = "http://" + ln.Gateway.Addr().String()
	}
	go func() {
		r.err = node.Serve(ctx, ln)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
		}
	})
	return r
}

// newestAudit reads the newest limit entries of the audit log, oldest first.
func newestAudit(t *testing.T, url, token string, limit int) []audit.Entry {
	t.Helper()
	var page struct {
		Entries []audit.Entry `json:"entries"`
	}
	if c := call(t, "GET", fmt.Sprintf("%s/v1/audit?newest=true&limit=%d", url, limit), token, nil, &page); c != 200 {
		t.Fatalf("GET /v1/audit = %d", c)
	}
	return page.Entries
}

func call(t *testing.T, method, url, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, url, data, err)
		}
	}
	return resp.StatusCode
}

type health struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Version     string `json:"version"`
	Storage     string `json:"storage"`
	Seal        string `json:"seal"`
}

type apiError struct {
	Error struct {
		Code, Message, RequestID string
	} `json:"error"`
}

func TestDevModeStartsHealthyAndKeepsDataAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Dev = true
	var banner syncBuffer
	r := start(t, cfg, &banner)
	var h health
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 200 || !h.Initialized || h.Sealed {
		t.Fatalf("health = %d %+v, want 200 initialised and unsealed", code, h)
	}
	if h.Storage == "" || h.Version == "" {
		t.Fatalf("health lacks storage/version: %+v", h)
	}
	tok := r.node.DevRootToken()
	if !strings.HasPrefix(tok, "kwt_") || !strings.Contains(banner.String(), "not for production") && !strings.Contains(banner.String(), "NOT use dev mode in production") {
		t.Fatalf("dev banner/token wrong: %q", banner.String())
	}
	fi, err := os.Stat(filepath.Join(dir, "root-token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("root-token file: %v %v", fi, err)
	}
	var rot struct {
		KeyVersion uint32 `json:"key_version"`
	}
	if code := call(t, "POST", r.url+"/v1/sys/rotate", tok, nil, &rot); code != 200 || rot.KeyVersion != 2 {
		t.Fatalf("rotate = %d %+v", code, rot)
	}
	r.stop(t)

	r2 := start(t, cfg, nil)
	if r2.node.DevRootToken() != tok {
		t.Fatal("root token changed across a dev restart")
	}
	if code := call(t, "POST", r2.url+"/v1/sys/rotate", tok, nil, &rot); code != 200 || rot.KeyVersion != 3 {
		t.Fatalf("after restart rotate = %d %+v, want version 3 (data kept)", code, rot)
	}
}

func TestInitUnsealSealFlow(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	r := start(t, cfg, nil)
	var h health
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 503 || h.Initialized {
		t.Fatalf("fresh health = %d %+v, want 503 uninitialised", code, h)
	}
	var e apiError
	if code := call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": "abc"}, &e); code != 503 {
		t.Fatalf("unseal before init = %d %+v", code, e)
	}
	var ir struct {
		Shares    []string `json:"shares"`
		RootToken string   `json:"root_token"`
	}
	if code := call(t, "POST", r.url+"/v1/sys/init", "", map[string]int{"shares": 5, "threshold": 3}, &ir); code != 200 {
		t.Fatalf("init = %d", code)
	}
	if len(ir.Shares) != 5 || !strings.HasPrefix(ir.RootToken, "kwt_") {
		t.Fatalf("init result = %d shares, token %q", len(ir.Shares), ir.RootToken[:4])
	}
	if code := call(t, "POST", r.url+"/v1/sys/init", "", map[string]int{"shares": 5, "threshold": 3}, &e); code != 409 {
		t.Fatalf("second init = %d, want 409", code)
	}
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 503 || !h.Initialized || !h.Sealed {
		t.Fatalf("after init health = %d %+v, want 503 sealed", code, h)
	}
	// Restart: still sealed.
	r.stop(t)
	r = start(t, cfg, nil)
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 503 || !h.Sealed || !h.Initialized {
		t.Fatalf("after restart health = %d %+v", code, h)
	}
	// A sealed node serves no authenticated route.
	if code := call(t, "POST", r.url+"/v1/sys/rotate", ir.RootToken, nil, &e); code != 503 || e.Error.Code != "sealed" {
		t.Fatalf("rotate while sealed = %d %+v", code, e)
	}
	// Malformed share: refused, not counted.
	var p struct {
		Sealed    bool `json:"sealed"`
		Progress  int  `json:"progress"`
		Threshold int  `json:"threshold"`
	}
	for _, bad := range []string{"not base64!!", "AAAA", base64.StdEncoding.EncodeToString(make([]byte, 33))} {
		if code := call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": bad}, &e); code != 400 {
			t.Fatalf("malformed share %q = %d %+v", bad, code, e)
		}
	}
	for i, want := range []int{1, 2} {
		if code := call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": ir.Shares[i]}, &p); code != 200 || !p.Sealed || p.Progress != want || p.Threshold != 3 {
			t.Fatalf("unseal %d = %d %+v", i, code, p)
		}
	}
	// Duplicate share: refused.
	if code := call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": ir.Shares[1]}, &e); code != 400 {
		t.Fatalf("duplicate share = %d", code)
	}
	if code := call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": ir.Shares[4]}, &p); code != 200 || p.Sealed {
		t.Fatalf("third share = %d %+v, want unsealed", code, p)
	}
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 200 || h.Sealed {
		t.Fatalf("unsealed health = %d %+v", code, h)
	}
	if code := call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": ir.Shares[0]}, &e); code != 400 {
		t.Fatalf("unseal when unsealed = %d, want 400", code)
	}
	// Seal needs the root token.
	if code := call(t, "POST", r.url+"/v1/sys/seal", "", nil, &e); code != 401 {
		t.Fatalf("seal without token = %d", code)
	}
	last := "x"
	if strings.HasSuffix(ir.RootToken, last) { // one token in 62 ends in x
		last = "y"
	}
	bad := ir.RootToken[:len(ir.RootToken)-1] + last
	if code := call(t, "POST", r.url+"/v1/sys/seal", bad, nil, &e); code != 401 {
		t.Fatalf("seal with bad-checksum token = %d", code)
	}
	if code := call(t, "POST", r.url+"/v1/sys/seal", ir.RootToken, nil, nil); code != 204 {
		t.Fatalf("seal = %d", code)
	}
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 503 || !h.Sealed {
		t.Fatalf("after seal health = %d %+v", code, h)
	}
	// Wrong shares: three shares of another init do not open this keyring.
	other := t.TempDir()
	r2 := start(t, testConfig(other), nil)
	var ir2 struct {
		Shares []string `json:"shares"`
	}
	call(t, "POST", r2.url+"/v1/sys/init", "", map[string]int{"shares": 3, "threshold": 3}, &ir2)
	call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": ir2.Shares[0]}, &p)
	call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": ir2.Shares[1]}, &p)
	if code := call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": ir2.Shares[2]}, &e); code != 400 {
		t.Fatalf("wrong shares = %d %+v", code, e)
	}
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 503 || !h.Sealed {
		t.Fatalf("after wrong shares health = %d %+v", code, h)
	}
	// Too few shares: two of three leave it sealed.
	call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": ir.Shares[0]}, &p)
	call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": ir.Shares[1]}, &p)
	if !p.Sealed || p.Progress != 2 {
		t.Fatalf("two shares = %+v", p)
	}
}

func TestInitParamsValidated(t *testing.T) {
	r := start(t, testConfig(t.TempDir()), nil)
	var e apiError
	for _, b := range []map[string]int{{"shares": 3, "threshold": 4}, {"shares": 0, "threshold": 0}, {"shares": 300, "threshold": 3}, {"shares": 5, "threshold": 1}} {
		if code := call(t, "POST", r.url+"/v1/sys/init", "", b, &e); code != 400 {
			t.Errorf("init %v = %d %+v, want 400", b, code, e)
		}
	}
	if code := call(t, "POST", r.url+"/v1/sys/init", "", map[string]any{"shares": "five"}, &e); code != 400 {
		t.Errorf("init with a string = %d", code)
	}
	var h health
	if call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); h.Initialized {
		t.Fatal("a refused init initialised the node")
	}
}

// TestLogsHoldNoSecrets drives init, unseal, seal and restart and searches
// the captured log for the root key, every share and the root token.
func TestLogsHoldNoSecrets(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	var logbuf syncBuffer
	r := start(t, cfg, &logbuf)
	var ir struct {
		Shares    []string `json:"shares"`
		RootToken string   `json:"root_token"`
	}
	call(t, "POST", r.url+"/v1/sys/init", "", map[string]int{"shares": 3, "threshold": 2}, &ir)
	call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": "garbage-share"}, nil)
	for _, s := range ir.Shares[:2] {
		call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": s}, nil)
	}
	call(t, "POST", r.url+"/v1/sys/rotate", ir.RootToken, nil, nil)
	call(t, "POST", r.url+"/v1/sys/seal", ir.RootToken+"x", nil, nil)
	call(t, "POST", r.url+"/v1/sys/seal", ir.RootToken, nil, nil)
	r.stop(t)
	r = start(t, cfg, &logbuf)
	for _, s := range ir.Shares[1:] {
		call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": s}, nil)
	}
	call(t, "POST", r.url+"/v1/sys/seal", ir.RootToken, nil, nil)
	r.stop(t)

	raw := make([][]byte, len(ir.Shares))
	for i, s := range ir.Shares {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		raw[i] = b
	}
	rootKey, err := shamir.Combine(raw[:2])
	if err != nil {
		t.Fatal(err)
	}
	logs := logbuf.String()
	if !strings.Contains(logs, "listening") {
		t.Fatalf("log capture is empty or broken: %q", logs)
	}
	needles := map[string]string{
		"root token":        ir.RootToken,
		"root token body":   ir.RootToken[4:30],
		"root key (hex)":    hex.EncodeToString(rootKey),
		"root key (base64)": base64.StdEncoding.EncodeToString(rootKey),
		"root key (raw)":    string(rootKey),
	}
	for i, s := range ir.Shares {
		needles["share "+string(rune('1'+i))] = s
		needles["share hex "+string(rune('1'+i))] = hex.EncodeToString(raw[i])
	}
	for what, n := range needles {
		if strings.Contains(logs, n) {
			t.Errorf("the log holds the %s", what)
		}
	}
}

// TestNoPlaintextAtRest writes known values through the barrier and
// searches the raw database bytes for them.
func TestNoPlaintextAtRest(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		cfg := testConfig(t.TempDir())
		cfg.Dev = true
		node, err := New(t.Context(), cfg, Options{Store: s})
		if err != nil {
			t.Fatal(err)
		}
		known := []byte("known-plaintext-7f3a9c-" + strings.Repeat("Z", 40))
		control := []byte("control-plaintext-5b1e2d-" + strings.Repeat("Q", 40))
		ct, err := node.barrier.SealEnv("env-1", []byte("test/known"), known)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Write(t.Context(), func(tx storage.Tx) error {
			if err := storage.PutSys(t.Context(), tx, "test/known", ct); err != nil {
				return err
			}
			return storage.PutSys(t.Context(), tx, "test/control", control)
		})
		if err != nil {
			t.Fatal(err)
		}
		if !storagetest.RawContains(t, s, control) {
			t.Fatal("positive control: a plaintext row is not found in the raw bytes; the search is broken")
		}
		if storagetest.RawContains(t, s, known) {
			t.Fatal("a value written through the barrier is in the raw database bytes")
		}
		if storagetest.RawContains(t, s, []byte(node.DevRootToken())) {
			t.Fatal("the root token is stored in plaintext")
		}
	})
}

func TestBadStartup(t *testing.T) {
	ctx := t.Context()
	// Unwritable data directory: a path below a regular file.
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, []byte("x"), 0o600)
	cfg := testConfig(filepath.Join(f, "data"))
	if _, err := New(ctx, cfg, Options{}); err == nil || !strings.Contains(err.Error(), "data directory") {
		t.Errorf("unwritable data dir: err = %v", err)
	}
	// Corrupt SQLite file.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keyward.db"), bytes.Repeat([]byte("not a database "), 500), 0o600)
	if _, err := New(ctx, testConfig(dir), Options{}); err == nil || !strings.Contains(err.Error(), "keyward.db") {
		t.Errorf("corrupt sqlite: err = %v", err)
	}
	// Unreachable PostgreSQL: clear error, no password in it.
	cfg = testConfig(t.TempDir())
	cfg.Storage = "postgres://keyward:s3cretpw@127.0.0.1:1/keyward?sslmode=disable&connect_timeout=2" // keyward:allow (test fixture)
	_, err := New(ctx, cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "s3cretpw") {
		t.Errorf("unreachable postgres: err = %v", err)
	}
	// Port already in use.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg = testConfig(t.TempDir())
	cfg.Listen = ln.Addr().String()
	node, err := New(ctx, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if _, err := node.Listen(); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("port in use: err = %v", err)
	}
}
