package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	kwversion "github.com/keyward/keyward/internal/version"
	"github.com/spf13/cobra"
)

// A command that only groups others refuses an unknown subcommand (exit 2,
// the group named, a suggestion when one is close) instead of printing its
// help and exiting 0; alone, or with --help, it still shows its help.
func TestUnknownSubcommand(t *testing.T) {
	h := newHarness(t)
	var groups []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.HasSubCommands() && !sub.Runnable() {
				groups = append(groups, sub)
			}
			walk(sub)
		}
	}
	walk(NewRoot(&Env{}))
	if len(groups) < 5 {
		t.Fatalf("found %d group commands; the walk is broken", len(groups))
	}
	for _, g := range groups {
		path := strings.Fields(g.CommandPath())[1:] // without "keyward"
		r := h.run("", append(path, "no-such-command")...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, `unknown command "no-such-command" for "`+g.CommandPath()+`"`) {
			t.Errorf("%s no-such-command: exit %d, stderr %q", g.CommandPath(), r.code, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("%s no-such-command printed %q", g.CommandPath(), r.stdout)
		}
		if r := h.run("", path...); r.code != ExitOK || !strings.Contains(r.stdout, "Available Commands") {
			t.Errorf("%s alone: exit %d, stdout %q", g.CommandPath(), r.code, r.stdout)
		}
	}
	// Flags before the unknown name are skipped; a close name is suggested.
	r := h.run("", "token", "--addr", "http://127.0.0.1:1", "renw")
	if r.code != ExitUsage || !strings.Contains(r.stderr, `unknown command "renw"`) || !strings.Contains(r.stderr, "Did you mean this?\n\trenew") {
		t.Errorf("token --addr X renw: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := h.run("", "token", "list", "--help"); r.code != ExitOK || !strings.Contains(r.stdout, "Available Commands") {
		t.Errorf("token list --help: exit %d, stdout %q", r.code, r.stdout)
	}
	// Real subcommands and their arguments are untouched.
	if r := h.run("", "secret", "get"); r.code != ExitUsage || strings.Contains(r.stderr, "unknown command") {
		t.Errorf("secret get (no path): exit %d, stderr %q", r.code, r.stderr)
	}
}

// A refused or missing token gets a hint in CLI terms; other 401s (a
// failed login) and other errors get none.
func TestTokenHint(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("GET /v1/projects", 401, `{"error":{"code":"unauthenticated","message":"missing bearer token (Authorization: Bearer <token>)"}}`)
	if r := h.run("", "project", "list"); r.code != ExitFailure || !strings.Contains(r.stderr, "Hint: no token: run 'keyward login', or set KEYWARD_TOKEN.") {
		t.Errorf("no token: exit %d, stderr %q", r.code, r.stderr)
	}
	// A token saved by login (none in the environment) counts as one sent.
	saved := filepath.Join(h.vars["HOME"], ".config", "keyward", "token")
	if err := os.MkdirAll(filepath.Dir(saved), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(saved, []byte("kwt_saved\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.fake.handle("GET /v1/policies", 401, `{"error":{"code":"unauthenticated","message":"token is invalid or expired"}}`)
	if r := h.run("", "policy", "list"); !strings.Contains(r.stderr, "was refused: log in again") {
		t.Errorf("refused saved token: stderr %q", r.stderr)
	}
	h = newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("GET /v1/projects", 401, `{"error":{"code":"unauthenticated","message":"token is invalid or expired"}}`)
	if r := h.run("", "project", "list"); !strings.Contains(r.stderr, "Hint: the token in use (KEYWARD_TOKEN, or the one 'keyward login' saved) was refused") {
		t.Errorf("refused token: stderr %q", r.stderr)
	}
	h.fake.handle("POST /v1/auth/password/login", 401, `{"error":{"code":"unauthenticated","message":"login failed: invalid credentials"}}`)
	if r := h.run("wrong\n", "login", "bob", "--password-stdin", "--no-save"); r.code != ExitFailure || strings.Contains(r.stderr, "Hint") {
		t.Errorf("failed login: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(h.fake.requests("POST /v1/auth/password/login")); n != 1 {
		t.Errorf("%d login requests, want 1", n)
	}
	h.fake.handle("GET /v1/policies", 403, `{"error":{"code":"permission_denied","message":"permission denied: list on policies"}}`)
	if r := h.run("", "policy", "list"); strings.Contains(r.stderr, "Hint") {
		t.Errorf("403: stderr %q", r.stderr)
	}
	if n := len(h.fake.requests("GET /v1/policies")); n != 1 {
		t.Errorf("%d policy list requests, want 1", n)
	}
}

// keyward --version prints what "keyward version" does.
func TestVersionFlag(t *testing.T) {
	h := newHarness(t)
	r := h.run("", "--version")
	if r.code != ExitOK || r.stdout != "keyward "+kwversion.String()+"\n" {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// Whatever the server refuses exits 1, whether or not its message says
// "invalid argument"; 2 stays for a command called wrongly.
func TestServerRefusalExitsOne(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("POST /v1/projects", 400, `{"error":{"code":"invalid_argument","message":"invalid argument: project name \"A\": use lowercase letters, digits and '-' (not first)"}}`)
	h.fake.handle("POST /v1/sys/unseal", 400, `{"error":{"code":"invalid_argument","message":"the share is malformed (not a keyward unseal share)"}}`)
	for _, args := range [][]string{{"project", "create", "A"}, {"operator", "unseal"}} {
		if r := h.run("not-a-share\n", args...); r.code != ExitFailure || !strings.Contains(r.stderr, "invalid_argument") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if r := h.run("", "project", "create"); r.code != ExitUsage {
		t.Errorf("project create without a name: exit %d", r.code)
	}
}
