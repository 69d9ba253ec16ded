package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestResolveAddr(t *testing.T) {
	env := &Env{Getenv: func(k string) string { return map[string]string{"KEYWARD_PROJECT": "envp", "KEYWARD_ENV": "enve"}[k] }}
	noenv := &Env{Getenv: func(string) string { return "" }}
	cases := []struct {
		af      addrFlags
		env     *Env
		arg     string
		need    bool
		want    addr
		wantErr bool
	}{
		{addrFlags{}, noenv, "pay/staging/db/password", true, addr{"pay", "staging", "db/password"}, false},
		{addrFlags{}, noenv, "pay/staging", false, addr{"pay", "staging", ""}, false},
		{addrFlags{}, noenv, "pay/staging", true, addr{}, true},
		{addrFlags{project: "p", env: "e"}, noenv, "a/b", true, addr{"p", "e", "a/b"}, false},
		{addrFlags{}, env, "key", true, addr{"envp", "enve", "key"}, false},
		{addrFlags{}, noenv, "key", true, addr{}, true},
		{addrFlags{project: "p"}, noenv, "key", true, addr{}, true},
	}
	for _, c := range cases {
		got, err := c.af.resolve(c.env, c.arg, c.need)
		if (err != nil) != c.wantErr || (!c.wantErr && got != c.want) {
			t.Errorf("resolve(%+v, %q) = %+v, %v", c.af, c.arg, got, err)
		}
	}
}

func TestSecretsAsEnv(t *testing.T) {
	vars, skipped, shadowed := secretsAsEnv(map[string]string{
		"DB_PASSWORD": "a", "api/STRIPE_KEY": "b", "bad-name": "c", "x/1abc": "d", "tls.key": "e", "_ok": "f",
		// Three paths give $TOKEN: the shallowest wins, then byte order.
		"z/TOKEN": "z", "a/TOKEN": "a", "TOKEN": "top", "a/b/DB_PASSWORD": "deep",
	})
	if len(vars) != 4 || vars["DB_PASSWORD"] != "a" || vars["STRIPE_KEY"] != "b" || vars["_ok"] != "f" || vars["TOKEN"] != "top" {
		t.Fatalf("vars = %v", vars)
	}
	if strings.Join(skipped, ",") != "bad-name,tls.key,x/1abc" {
		t.Fatalf("skipped = %v", skipped)
	}
	want := [][2]string{{"a/TOKEN", "TOKEN"}, {"z/TOKEN", "TOKEN"}, {"a/b/DB_PASSWORD", "DB_PASSWORD"}}
	if !slices.Equal(shadowed, want) {
		t.Fatalf("shadowed = %v, want %v", shadowed, want)
	}
}

// The command sees each variable once, the secret's value, whatever the
// environment held before (with both, programs disagree on which they read).
func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "DB_PASSWORD=old", "HOME=/h", "DB_PASSWORD=older", "EMPTY="}, map[string]string{"DB_PASSWORD": "new", "TOKEN": "t"})
	want := []string{"PATH=/bin", "HOME=/h", "EMPTY=", "DB_PASSWORD=new", "TOKEN=t"}
	if !slices.Equal(got, want) {
		t.Fatalf("mergeEnv = %q, want %q", got, want)
	}
}

// keyward run hands the command the merged environment and warns of
// secrets it left out.
func TestRunEnvironment(t *testing.T) {
	t.Setenv("KW_TEST_SHADOWED", "from-the-shell")
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("GET /v1/projects/pay/envs/dev/folder", 200, `{"secrets":{"KW_TEST_SHADOWED":"from-keyward","db/KW_TEST_SHADOWED":"deeper","bad-name":"x"}}`)
	var got []string
	var stdout, stderr bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return h.vars[k] },
		Exec: func(_ string, _ []string, environ []string) error { got = environ; return &ExitError{Code: 0} }}
	if code := Run(env, []string{"run", "-p", "pay", "-e", "dev", "--", "true"}); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	var vals []string
	for _, kv := range got {
		if k, v, _ := strings.Cut(kv, "="); k == "KW_TEST_SHADOWED" {
			vals = append(vals, v)
		}
	}
	if !slices.Equal(vals, []string{"from-keyward"}) {
		t.Fatalf("KW_TEST_SHADOWED in the command's environment: %q", vals)
	}
	for _, w := range []string{`skipping "bad-name": not a valid environment variable name`, `skipping "db/KW_TEST_SHADOWED": $KW_TEST_SHADOWED comes from "KW_TEST_SHADOWED"`} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr lacks %q: %q", w, stderr.String())
		}
	}
}

func TestWriteExport(t *testing.T) {
	vars := map[string]string{"B": "two words", "A": "line1\nline2 \"q\" $HOME \\"}
	var buf bytes.Buffer
	if err := writeExport(&buf, "dotenv", vars); err != nil {
		t.Fatal(err)
	}
	want := "A=\"line1\\nline2 \\\"q\\\" \\$HOME \\\\\"\nB=\"two words\"\n"
	if buf.String() != want {
		t.Fatalf("dotenv = %q, want %q", buf.String(), want)
	}
	buf.Reset()
	writeExport(&buf, "json", vars)
	var back map[string]string
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back["A"] != vars["A"] {
		t.Fatalf("json export does not round-trip: %v", err)
	}
	buf.Reset()
	writeExport(&buf, "yaml", vars)
	if !strings.Contains(buf.String(), `A: "line1\nline2 \"q\" $HOME \\"`) {
		t.Fatalf("yaml = %q", buf.String())
	}
	if err := writeExport(&buf, "xml", vars); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestRunCommandNotFound(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" },
		Exec: func(string, []string, []string) error { t.Fatal("exec called"); return nil }}
	code := Run(env, []string{"run", "-p", "pay", "-e", "dev", "--", "no-such-command-kw"})
	if code != 127 || !strings.Contains(stderr.String(), "command not found") {
		t.Fatalf("code %d, stderr %q", code, stderr.String())
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"secret", "get"}, {"secret", "get", "justapath"}, {"operator", "init", "--shares", "2", "--threshold", "3"}, {"nope"}, {"secret", "set", "--bogus"}} {
		var stdout, stderr bytes.Buffer
		env := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
		if code := Run(env, args); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, ExitUsage, stderr.String())
		}
	}
}

// run and export name what is missing: the environment, or the command.
func TestRunExportMissing(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--", "env"}, "name the environment with -p PROJECT -e ENV"},
		{[]string{"export"}, "name the environment with -p PROJECT -e ENV"},
		{[]string{"run", "-p", "pay", "-e", "dev"}, "name the command to run after --"},
		{[]string{"secret", "get", "justapath"}, "name the secret as PROJECT/ENV/PATH"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		env := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" },
			Exec: func(string, []string, []string) error { t.Fatal("exec called"); return nil }}
		if code := Run(env, c.args); code != ExitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// An empty value from stdin or a file is refused before anything is sent
// (exit 2); --allow-empty or an explicit --value "" writes it.
func TestSecretSetEmpty(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("PUT /v1/projects/pay/envs/dev/secrets/{path...}", 200, `{"path":"k","version":3}`)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"secret", "set", "pay/dev/k"}, {"secret", "set", "pay/dev/k", "--from-file", empty}} {
		r := h.run("", args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "the value is empty") || !strings.Contains(r.stderr, "--allow-empty") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if n := len(h.fake.requests("PUT /v1/projects/pay/envs/dev/secrets/k")); n != 0 {
		t.Fatalf("%d writes sent for an empty value", n)
	}
	h.must("", "secret", "set", "pay/dev/k", "--allow-empty")
	h.must("", "secret", "set", "pay/dev/k", "--value", "")
	h.must("x", "secret", "set", "pay/dev/k")
	puts := h.fake.requests("PUT /v1/projects/pay/envs/dev/secrets/k")
	if len(puts) != 3 || !strings.Contains(puts[0].Body, `"value":""`) || !strings.Contains(puts[2].Body, `"value":"x"`) {
		t.Fatalf("writes = %+v", puts)
	}
}

// destroy says which versions went; --all with --versions is refused
// (it would destroy only the versions named).
func TestSecretDestroy(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("POST /v1/projects/pay/envs/dev/destroy/{path...}", 204, "")
	if r := h.must("", "secret", "destroy", "pay/dev/k", "--versions", "1,3"); r.stdout != "Destroyed versions 1, 3 of pay/dev/k\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if r := h.must("", "secret", "destroy", "pay/dev/k", "--versions", "2"); r.stdout != "Destroyed version 2 of pay/dev/k\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if r := h.must("", "secret", "destroy", "pay/dev/k", "--all"); r.stdout != "Destroyed every version of pay/dev/k\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	got := h.fake.requests("POST /v1/projects/pay/envs/dev/destroy/k")
	if len(got) != 3 || !strings.Contains(got[0].Body, `"versions":[1,3]`) || !strings.Contains(got[2].Body, `"versions":[]`) {
		t.Fatalf("requests = %+v", got)
	}
	if r := h.run("", "secret", "destroy", "pay/dev/k", "--all", "--versions", "1"); r.code != ExitUsage || !strings.Contains(r.stderr, "not both") {
		t.Errorf("--all --versions: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(h.fake.requests("POST /v1/projects/pay/envs/dev/destroy/k")); n != 3 {
		t.Errorf("%d requests after the refused call, want 3", n)
	}
}

// export --output-file writes the file with mode 0600, replacing one that
// was readable by others; a bad --format is refused before any request.
func TestExportOutputFile(t *testing.T) {
	h := newHarness(t, "s3cret-value")
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	// The value is a fixture, not a secret.
	h.fake.handle("GET /v1/projects/pay/envs/dev/folder", 200, `{"secrets":{"DB_PASSWORD":"s3cret-value","api/TOKEN":"t"}}`) // keyward:allow (test fixture)
	out := filepath.Join(t.TempDir(), ".env.local")
	if err := os.WriteFile(out, []byte("OLD=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := h.must("", "export", "-p", "pay", "-e", "dev", "--output-file", out)
	if r.stdout != "" || !strings.Contains(r.stderr, "Wrote 2 secrets to "+out+" (mode 0600)") {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if b, _ := os.ReadFile(out); string(b) != "DB_PASSWORD=\"s3cret-value\"\nTOKEN=\"t\"\n" { // keyward:allow (test fixture)
		t.Errorf("file = %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	n := len(h.fake.requests("GET /v1/projects/pay/envs/dev/folder"))
	if r := h.run("", "export", "-p", "pay", "-e", "dev", "--format", "xml"); r.code != ExitUsage || !strings.Contains(r.stderr, `--format "xml"`) {
		t.Errorf("--format xml: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := h.run("", "export", "-p", "pay", "-e", "dev", "--output-file", filepath.Join(t.TempDir(), "no", "such", "dir", "f")); r.code != ExitFailure || !strings.Contains(r.stderr, "--output-file") {
		t.Errorf("missing directory: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := len(h.fake.requests("GET /v1/projects/pay/envs/dev/folder")); got != n+1 {
		t.Errorf("requests: %d after the refused format, want %d (only the missing directory's)", got, n+1)
	}
}

// run and export warn when the folder held no secret (a mistyped --path or
// environment), and still do their work.
func TestNoSecretsWarning(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("GET /v1/projects/pay/envs/dev/folder", 200, `{"secrets":{}}`)
	ran := false
	var stdout, stderr bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return h.vars[k] },
		Exec: func(string, []string, []string) error { ran = true; return &ExitError{Code: 0} }}
	if code := Run(env, []string{"run", "-p", "pay", "-e", "dev", "--path", "dbb/", "--", "true"}); code != 0 || !ran {
		t.Fatalf("run: exit %d, ran %v", code, ran)
	}
	if !strings.Contains(stderr.String(), "keyward run: warning: no secrets in pay/dev/dbb") {
		t.Errorf("run stderr = %q", stderr.String())
	}
	r := h.must("", "export", "-p", "pay", "-e", "dev")
	if !strings.Contains(r.stderr, "keyward export: warning: no secrets in pay/dev ") {
		t.Errorf("export stderr = %q", r.stderr)
	}
	h.fake.handle("GET /v1/projects/pay/envs/prod/folder", 200, `{"secrets":{"A":"1"}}`)
	if r := h.must("", "export", "-p", "pay", "-e", "prod"); strings.Contains(r.stderr, "no secrets") {
		t.Errorf("warned with a secret: %q", r.stderr)
	}
}

// secret get on a folder says it is one, with the command that lists it; a
// path that is neither keeps the server's "not found".
func TestSecretGetFolder(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("GET /v1/projects/pay/envs/dev/secrets/{path...}", 404, `{"error":{"code":"not_found","message":"secret not found"}}`)
	h.fake.mux.HandleFunc("GET /v1/projects/pay/envs/dev/secrets", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("prefix") == "db/" {
			io.WriteString(w, `{"secrets":[{"path":"db/host","version":1}]}`)
			return
		}
		io.WriteString(w, `{"secrets":[]}`)
	})
	r := h.run("", "secret", "get", "pay/dev/db")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "pay/dev/db is a folder, not a secret: keyward secret list pay/dev/db") {
		t.Errorf("folder: exit %d, stderr %q", r.code, r.stderr)
	}
	r = h.run("", "secret", "get", "pay/dev/nope")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "secret not found") || strings.Contains(r.stderr, "folder") {
		t.Errorf("missing: exit %d, stderr %q", r.code, r.stderr)
	}
}

// A one-line value from stdin that ends with a newline (echo's) is stored
// as given, with a warning; a value without one, or of several lines (a
// PEM file), gets none.
func TestSecretSetTrailingNewline(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("PUT /v1/projects/pay/envs/dev/secrets/{path...}", 200, `{"path":"k","version":1}`)
	r := h.must("hunter2\n", "secret", "set", "pay/dev/k")
	if !strings.Contains(r.stderr, "Warning: the value ends with a newline") {
		t.Errorf("echo'd value: stderr %q", r.stderr)
	}
	if b := h.fake.requests("PUT /v1/projects/pay/envs/dev/secrets/k")[0].Body; !strings.Contains(b, `"value":"hunter2\n"`) {
		t.Errorf("value not stored as given: %s", b)
	}
	for _, in := range []string{"hunter2", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"} {
		if r := h.must(in, "secret", "set", "pay/dev/k"); strings.Contains(r.stderr, "newline") {
			t.Errorf("%q: stderr %q", in, r.stderr)
		}
	}
}

// --unchanged-for lists the secrets not written for that long (folders
// left out), with a count on stderr.
func TestSecretListUnchangedFor(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	old := time.Now().Add(-200 * 24 * time.Hour).UTC().Format(time.RFC3339)
	recent := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	h.fake.handle("GET /v1/projects/shop/envs/prod/secrets", 200, `{"secrets":[{"name":"db","folder":true},{"name":"db/password","version":1,"updated_at":"`+old+`"},{"name":"API_KEY","version":7,"updated_at":"`+recent+`"}]}`)
	r := h.must("", "secret", "list", "shop/prod", "-r", "--unchanged-for", "90d")
	if !strings.Contains(r.stdout, "db/password") || strings.Contains(r.stdout, "API_KEY") || strings.Contains(r.stdout, "db  ") || !strings.Contains(r.stderr, "1 secret(s) unchanged for 90d") {
		t.Fatalf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	if r := h.run("", "secret", "list", "shop/prod", "--unchanged-for", "a while"); r.code != ExitUsage {
		t.Fatalf("a bad --unchanged-for: exit %d", r.code)
	}
}
