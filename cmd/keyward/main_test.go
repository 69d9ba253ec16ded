package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keyward-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "keyward")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building keyward:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// run executes the keyward binary as a user would type it.
func run(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// server starts `keyward server` and waits until it answers health.
type serverProc struct {
	cmd    *exec.Cmd
	addr   string
	stdout *syncBuffer
	stderr *syncBuffer
}

// syncBuffer is a bytes.Buffer safe to read while exec's copier goroutine
// writes the child's output into it.
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

func startServer(t *testing.T, args ...string) *serverProc {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command(binary, append([]string{"server", "--listen", addr}, args...)...)
	cmd.Env = os.Environ()
	out, errb := new(syncBuffer), new(syncBuffer)
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProc{cmd: cmd, addr: "http://" + addr, stdout: out, stderr: errb}
	t.Cleanup(func() { p.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not answer; stderr:\n%s", errb.String())
	return nil
}

func (p *serverProc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server exited with %v after SIGTERM; stderr:\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Error("server ignored SIGTERM")
	}
}

func health(t *testing.T, addr string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(addr + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	json.NewDecoder(resp.Body).Decode(&h)
	return resp.StatusCode, h
}

func TestDevServerAnswersHealth(t *testing.T) {
	data := t.TempDir()
	p := startServer(t, "--dev", "--data", data)
	code, h := health(t, p.addr)
	if code != 200 || h["initialized"] != true || h["sealed"] != false {
		t.Fatalf("health = %d %v", code, h)
	}
	tok, err := os.ReadFile(filepath.Join(data, "root-token"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.stdout.String(), strings.TrimSpace(string(tok))) || !strings.Contains(p.stdout.String(), "DEVELOPMENT mode") {
		t.Fatalf("banner lacks the warning or the token:\n%s", p.stdout)
	}
	env := []string{"KEYWARD_ADDR=" + p.addr, "KEYWARD_TOKEN=" + strings.TrimSpace(string(tok))}
	if r := run(t, env, "", "operator", "status", "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"sealed": false`) {
		t.Fatalf("status = %+v", r)
	}
	if r := run(t, env, "", "operator", "rotate"); r.code != 0 || !strings.Contains(r.stdout, "key version 2") {
		t.Fatalf("rotate = %+v", r)
	}
	p.stop(t)
	if strings.Contains(p.stderr.String(), strings.TrimSpace(string(tok))) {
		t.Fatal("the server log holds the root token")
	}
}

func TestInitRestartUnsealWithCLI(t *testing.T) {
	data := t.TempDir()
	p := startServer(t, "--data", data)
	env := []string{"KEYWARD_ADDR=" + p.addr, "KEYWARD_TOKEN="}
	r := run(t, env, "", "operator", "init", "--shares", "5", "--threshold", "3", "-o", "json")
	if r.code != 0 {
		t.Fatalf("init = %+v", r)
	}
	var ir struct {
		Shares    []string `json:"shares"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ir); err != nil || len(ir.Shares) != 5 {
		t.Fatalf("init output %q: %v", r.stdout, err)
	}
	if r := run(t, env, "", "operator", "init"); r.code != 1 || !strings.Contains(r.stderr, "already initialized") {
		t.Fatalf("second init = %+v", r)
	}
	p.stop(t)

	p = startServer(t, "--data", data)
	env = []string{"KEYWARD_ADDR=" + p.addr, "KEYWARD_TOKEN=" + ir.RootToken}
	if code, h := health(t, p.addr); code != 503 || h["sealed"] != true {
		t.Fatalf("after restart health = %d %v", code, h)
	}
	if r := run(t, env, "", "operator", "status"); r.code != 2 || !strings.Contains(r.stdout, "Sealed:       yes") {
		t.Fatalf("status while sealed = %+v", r)
	}
	if r := run(t, env, "not-a-share\n", "operator", "unseal"); r.code != 1 || !strings.Contains(r.stderr, "share") {
		t.Fatalf("malformed share = %+v", r)
	}
	for i, want := range []string{"progress 1/3", "progress 2/3", "unsealed"} {
		// Shares come on stdin (as from a password manager), never in argv.
		r := run(t, env, ir.Shares[i]+"\n", "operator", "unseal")
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("unseal %d = %+v, want %q", i+1, r, want)
		}
	}
	if code, h := health(t, p.addr); code != 200 || h["sealed"] != false {
		t.Fatalf("after unseal health = %d %v", code, h)
	}
	if r := run(t, env, "", "operator", "seal"); r.code != 0 {
		t.Fatalf("seal = %+v", r)
	}
	if code, _ := health(t, p.addr); code != 503 {
		t.Fatalf("after seal health = %d", code)
	}
	p.stop(t)
	for _, s := range append(ir.Shares, ir.RootToken) {
		if strings.Contains(p.stderr.String(), s) {
			t.Fatal("the server log holds a share or the root token")
		}
	}
}

func TestBadServerStarts(t *testing.T) {
	if r := run(t, nil, "", "server", "--no-such-flag"); r.code != 2 || !strings.Contains(r.stderr, "unknown flag") {
		t.Errorf("unknown flag = %+v", r)
	}
	if r := run(t, nil, "", "no-such-command"); r.code != 2 {
		t.Errorf("unknown command = %+v", r)
	}
	r := run(t, nil, "", "server", "--data", t.TempDir(), "--listen", freePort(t),
		"--storage", "postgres://keyward:pw-not-shown@127.0.0.1:1/keyward?sslmode=disable&connect_timeout=2") // keyward:allow (test fixture)
	if r.code != 1 || !strings.Contains(r.stderr, "127.0.0.1:1") || strings.Contains(r.stderr, "pw-not-shown") || strings.Contains(r.stderr, "goroutine") {
		t.Errorf("unreachable postgres = %+v", r)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r = run(t, nil, "", "server", "--data", t.TempDir(), "--listen", busy.Addr().String())
	if r.code != 1 || !strings.Contains(r.stderr, "already in use") {
		t.Errorf("port in use = %+v", r)
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	r = run(t, nil, "", "server", "--data", filepath.Join(file, "sub"), "--listen", freePort(t))
	if r.code != 1 || !strings.Contains(r.stderr, "data directory") {
		t.Errorf("unwritable data dir = %+v", r)
	}
}

// TestSecretsEndToEnd drives the binary as a user would: secrets in two
// environments, a token whose policy reaches staging only, keyward run,
// a rollback, and no value in the audit log or the server log.
func TestSecretsEndToEnd(t *testing.T) {
	data := t.TempDir()
	p := startServer(t, "--dev", "--data", data)
	tok, err := os.ReadFile(filepath.Join(data, "root-token"))
	if err != nil {
		t.Fatal(err)
	}
	root := []string{"KEYWARD_ADDR=" + p.addr, "KEYWARD_TOKEN=" + strings.TrimSpace(string(tok)), "XDG_CONFIG_HOME=" + t.TempDir()}
	must := func(env []string, stdin string, args ...string) string {
		t.Helper()
		r := run(t, env, stdin, args...)
		if r.code != 0 {
			t.Fatalf("keyward %s = %+v", strings.Join(args, " "), r)
		}
		return r.stdout
	}
	must(root, "", "project", "create", "payments")
	must(root, "staging-v1-value", "secret", "set", "payments/staging/DB_PASSWORD")
	must(root, "staging-v2-value", "secret", "set", "payments/staging/DB_PASSWORD")
	must(root, "prod-only-value", "secret", "set", "payments/prod/DB_PASSWORD")

	pol := filepath.Join(t.TempDir(), "ci.yaml")
	os.WriteFile(pol, []byte("name: payments-ci\nrules:\n  - resources: [\"projects/payments/envs/staging/**\"]\n    allow: [read, list]\n"), 0o600)
	must(root, "", "policy", "apply", "-f", pol)
	var created map[string]any
	if err := json.Unmarshal([]byte(must(root, "", "token", "create", "--policy", "payments-ci", "--ttl", "10m", "-o", "json")), &created); err != nil {
		t.Fatal(err)
	}
	ciTok, _ := created["token"].(string)
	if !strings.HasPrefix(ciTok, "kwt_") {
		t.Fatalf("token create printed %v", created)
	}
	ci := []string{"KEYWARD_ADDR=" + p.addr, "KEYWARD_TOKEN=" + ciTok, "XDG_CONFIG_HOME=" + t.TempDir()}
	if out := must(ci, "", "secret", "get", "payments/staging/DB_PASSWORD"); !strings.Contains(out, "staging-v2-value") {
		t.Fatalf("staging read = %q", out)
	}
	if r := run(t, ci, "", "secret", "get", "payments/prod/DB_PASSWORD"); r.code != 1 || strings.Contains(r.stdout+r.stderr, "prod-only-value") || !strings.Contains(r.stderr, "denied") {
		t.Fatalf("prod read with the staging token = %+v", r)
	}
	if out := must(ci, "", "run", "-p", "payments", "-e", "staging", "--", "env"); !strings.Contains(out, "DB_PASSWORD=staging-v2-value") {
		t.Fatalf("keyward run -- env printed %q", out)
	}
	// The command's exit code is keyward run's, and a signal sent to
	// keyward run reaches the command (run execs it: same process).
	if r := run(t, ci, "", "run", "-p", "payments", "-e", "staging", "--", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("keyward run -- sh -c 'exit 7' exited %d, want 7", r.code)
	}
	// The command marks that it runs, then answers SIGTERM with exit 42:
	// only the command itself can exit 42, so the signal reached it.
	ready := filepath.Join(t.TempDir(), "ready")
	sleeper := exec.Command(binary, "run", "-p", "payments", "-e", "staging", "--",
		"sh", "-c", `trap 'exit 42' TERM; touch "$0"; while :; do sleep 0.05; done`, ready)
	sleeper.Env = append(os.Environ(), ci...)
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			sleeper.Process.Kill()
			t.Fatal("keyward run never started the command")
		}
	}
	sleeper.Process.Signal(syscall.SIGTERM)
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()
	select {
	case err := <-waited:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 42 {
			t.Errorf("keyward run after SIGTERM: %v, want the command's exit 42", err)
		}
	case <-time.After(10 * time.Second):
		sleeper.Process.Kill()
		t.Error("SIGTERM to keyward run did not reach the command")
	}
	must(root, "", "secret", "rollback", "payments/staging/DB_PASSWORD", "--version", "1")
	if out := must(ci, "", "secret", "get", "payments/staging/DB_PASSWORD"); !strings.Contains(out, "staging-v1-value") {
		t.Fatalf("after rollback = %q", out)
	}
	audit := must(root, "", "audit", "list", "--limit", "1000", "-o", "json")
	if !strings.Contains(audit, "projects/payments/envs/prod/secrets/DB_PASSWORD") || !strings.Contains(audit, "denied") {
		t.Fatalf("the prod denial is not in the audit log:\n%s", audit)
	}
	must(root, "", "audit", "verify")
	p.stop(t)
	for _, v := range []string{"staging-v1-value", "staging-v2-value", "prod-only-value", ciTok} {
		if strings.Contains(audit, v) || strings.Contains(p.stderr.String(), v) {
			t.Fatalf("a secret value or token is in the audit log or the server log")
		}
	}
}

// The backup and restore of docs/operations.md on a production-style server:
// init and unseal, a backup while it serves, a restore refused while it
// runs, then done once it is stopped; the restarted server, unsealed with
// the same shares, holds what it held at the backup.
func TestBackupAndRestore(t *testing.T) {
	data := t.TempDir()
	p := startServer(t, "--data", data)
	r := run(t, []string{"KEYWARD_ADDR=" + p.addr, "KEYWARD_TOKEN="}, "", "operator", "init", "--shares", "1", "--threshold", "1", "-o", "json")
	var ir struct {
		Shares    []string `json:"shares"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ir); err != nil || len(ir.Shares) != 1 {
		t.Fatalf("init = %+v: %v", r, err)
	}
	env := []string{"KEYWARD_ADDR=" + p.addr, "KEYWARD_TOKEN=" + ir.RootToken}
	unseal := func() {
		if r := run(t, env, ir.Shares[0]+"\n", "operator", "unseal"); r.code != 0 {
			t.Fatalf("unseal = %+v", r)
		}
	}
	unseal()
	for _, args := range [][]string{{"project", "create", "shop"}, {"secret", "set", "shop/prod/db-password"}} {
		if r := run(t, env, "kept-in-the-backup", args...); r.code != 0 {
			t.Fatalf("%v = %+v", args, r)
		}
	}
	backup := filepath.Join(t.TempDir(), "keyward-backup.db")
	if r := run(t, env, "", "operator", "backup", backup); r.code != 0 || !strings.Contains(r.stdout, "Backup written to") {
		t.Fatalf("backup = %+v", r)
	}
	if r := run(t, env, "written-after", "secret", "set", "shop/prod/db-password"); r.code != 0 {
		t.Fatalf("second set = %+v", r)
	}
	if r := run(t, nil, "", "server", "restore", "--data", data, backup); r.code != 1 || !strings.Contains(r.stderr, "stop the server first") {
		t.Fatalf("restore while the server runs = %+v", r)
	}
	p.stop(t)

	r = run(t, nil, "", "server", "restore", "--data", data, backup)
	if r.code != 0 || !strings.Contains(r.stdout, "Restored ") || !strings.Contains(r.stdout, "Set aside: ") {
		t.Fatalf("restore = %+v", r)
	}
	p = startServer(t, "--data", data)
	env[0] = "KEYWARD_ADDR=" + p.addr
	unseal()
	if r := run(t, env, "", "secret", "get", "shop/prod/db-password"); r.code != 0 || strings.TrimSpace(r.stdout) != "kept-in-the-backup" {
		t.Fatalf("secret after restore = %+v", r)
	}
	if r := run(t, env, "", "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify after restore = %+v", r)
	}
	if r := run(t, nil, "", "server", "restore", "--data", data, filepath.Join(data, "no-such.db")); r.code != 1 || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("restore of a missing file = %+v", r)
	}
}

// A device's life from the shell: an operator makes a code, the device
// enrolls with a key file and gets a key-bound token, the operator
// disables it and it gets no more.
func TestDeviceFromTheShell(t *testing.T) {
	data := t.TempDir()
	p := startServer(t, "--dev", "--data", data)
	tok, err := os.ReadFile(filepath.Join(data, "root-token"))
	if err != nil {
		t.Fatal(err)
	}
	op := []string{"KEYWARD_ADDR=" + p.addr, "KEYWARD_TOKEN=" + strings.TrimSpace(string(tok)), "XDG_CONFIG_HOME=" + t.TempDir()}
	dev := []string{"KEYWARD_ADDR=" + p.addr, "KEYWARD_TOKEN=", "XDG_CONFIG_HOME=" + t.TempDir()}
	pol := filepath.Join(t.TempDir(), "sensor.yaml")
	os.WriteFile(pol, []byte("name: sensor\nrules:\n  - resources: [\"projects/iot/**\"]\n    allow: [read]\n"), 0o600)
	if r := run(t, op, "", "policy", "apply", "-f", pol); r.code != 0 {
		t.Fatalf("policy apply = %+v", r)
	}
	r := run(t, op, "", "device", "enrollment", "create", "--policy", "sensor", "--uses", "1", "-o", "json")
	var made struct{ Code string }
	if err := json.Unmarshal([]byte(r.stdout), &made); err != nil || !strings.HasPrefix(made.Code, "kwe_") {
		t.Fatalf("enrollment create = %+v", r)
	}
	key := filepath.Join(t.TempDir(), "device.pem")
	r = run(t, dev, "", "device", "enroll", made.Code, "--key", key, "--name", "sensor-1", "-o", "json")
	var enrolled struct {
		DeviceID string `json:"device_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &enrolled); err != nil || !strings.HasPrefix(enrolled.DeviceID, "dev_") || !strings.Contains(r.stderr, "made a new device key") {
		t.Fatalf("enroll = %+v", r)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("device key file: %v, %v", fi, err)
	}
	if r := run(t, dev, "", "device", "token", enrolled.DeviceID, "--key", key); r.code != 0 || !strings.Contains(r.stdout, "Type:       DPoP") {
		t.Fatalf("device token = %+v", r)
	}
	if r := run(t, op, "", "device", "list"); r.code != 0 || !strings.Contains(r.stdout, "sensor-1") {
		t.Fatalf("device list = %+v", r)
	}
	if r := run(t, op, "", "device", "disable", enrolled.DeviceID); r.code != 0 {
		t.Fatalf("disable = %+v", r)
	}
	if r := run(t, dev, "", "device", "token", enrolled.DeviceID, "--key", key); r.code != 1 || !strings.Contains(r.stderr, "invalid_grant") {
		t.Fatalf("token of a disabled device = %+v", r)
	}
	other := filepath.Join(t.TempDir(), "other.pem")
	if r := run(t, dev, "", "device", "enroll", made.Code, "--key", other); r.code != 1 || !strings.Contains(r.stderr, "used up") {
		t.Fatalf("a used-up code = %+v", r)
	}
}
