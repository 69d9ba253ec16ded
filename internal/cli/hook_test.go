package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func gitInit(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	repo := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	return repo
}

func TestHookInstallChainUninstall(t *testing.T) {
	repo := gitInit(t)
	hooks := filepath.Join(repo, ".git", "hooks")
	hook := filepath.Join(hooks, "pre-commit")
	os.MkdirAll(hooks, 0o755)
	log := filepath.Join(t.TempDir(), "log")
	// An existing hook, and a fake keyward that records its arguments.
	existing := "#!/bin/sh\necho local >> '" + log + "'\n"
	os.WriteFile(hook, []byte(existing), 0o755)
	fake := write(t, t.TempDir(), "keyward", "#!/bin/sh\necho \"keyward $*\" >> '"+log+"'\nexit 1\n")
	os.Chmod(fake, 0o755)

	code, out, errOut := runCLI(t, "", "hook", "install", "-C", repo)
	if code != 0 || !strings.Contains(out, "runs first") {
		t.Fatalf("install: %d %q %q", code, out, errOut)
	}
	if b, _ := os.ReadFile(hook + ".local"); string(b) != existing {
		t.Fatal("existing hook not kept as pre-commit.local")
	}
	fi, _ := os.Stat(hook)
	if fi.Mode()&0o111 == 0 {
		t.Fatal("hook not executable")
	}
	// Run the hook: the local hook first, then keyward scan --staged, whose
	// exit status becomes the hook's.
	cmd := exec.Command(hook)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "KEYWARD_BIN="+fake)
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("hook exit: %v", err)
	}
	if b, _ := os.ReadFile(log); string(b) != "local\nkeyward scan --staged\n" {
		t.Fatalf("hook ran:\n%s", b)
	}
	// A failing local hook stops the commit before the scan.
	os.WriteFile(hook+".local", []byte("#!/bin/sh\nexit 3\n"), 0o755)
	os.Remove(log)
	cmd = exec.Command(hook)
	cmd.Env = append(os.Environ(), "KEYWARD_BIN="+fake)
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("failing local hook: %v", err)
	}
	if _, err := os.Stat(log); err == nil {
		t.Fatal("scan ran after the local hook failed")
	}
	os.WriteFile(hook+".local", []byte(existing), 0o755)

	// Idempotent.
	before, _ := os.ReadFile(hook)
	code, out, _ = runCLI(t, "", "hook", "install", "-C", repo)
	after, _ := os.ReadFile(hook)
	if code != 0 || !strings.Contains(out, "already installed") || string(before) != string(after) {
		t.Fatalf("second install: %d %q", code, out)
	}
	if b, _ := os.ReadFile(hook + ".local"); string(b) != existing {
		t.Fatal("second install clobbered pre-commit.local")
	}

	// Uninstall restores the original hook.
	code, out, _ = runCLI(t, "", "hook", "uninstall", "-C", repo)
	if code != 0 || !strings.Contains(out, "restored") {
		t.Fatalf("uninstall: %d %q", code, out)
	}
	if b, _ := os.ReadFile(hook); string(b) != existing {
		t.Fatal("original hook not restored")
	}
	if _, err := os.Stat(hook + ".local"); err == nil {
		t.Fatal("pre-commit.local left behind")
	}
	// Uninstalling a hook keyward did not write is refused.
	if code, _, errOut := runCLI(t, "", "hook", "uninstall", "-C", repo); code == 0 || !strings.Contains(errOut, "not installed by keyward") {
		t.Fatalf("uninstall foreign: %d %q", code, errOut)
	}
}

func TestHookInstallFreshAndForce(t *testing.T) {
	repo := gitInit(t)
	// core.hooksPath is respected.
	if out, err := exec.Command("git", "-C", repo, "config", "core.hooksPath", "myhooks").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	hook := filepath.Join(repo, "myhooks", "pre-commit")
	if code, _, errOut := runCLI(t, "", "hook", "install", "--repo", repo); code != 0 {
		t.Fatalf("install: %d %s", code, errOut)
	}
	b, err := os.ReadFile(hook)
	if err != nil || !strings.Contains(string(b), "scan --staged") || !strings.Contains(string(b), hookMarker) {
		t.Fatalf("hook in core.hooksPath: %v\n%s", err, b)
	}
	// A foreign hook while pre-commit.local exists: refused without --force.
	os.WriteFile(hook, []byte("#!/bin/sh\necho foreign\n"), 0o755)
	os.WriteFile(hook+".local", []byte("#!/bin/sh\necho local\n"), 0o755)
	if code, _, errOut := runCLI(t, "", "hook", "install", "-C", repo); code == 0 || !strings.Contains(errOut, "--force") {
		t.Fatalf("install over two hooks: %d %q", code, errOut)
	}
	if code, _, _ := runCLI(t, "", "hook", "install", "--force", "-C", repo); code != 0 {
		t.Fatal("--force failed")
	}
	if b, _ := os.ReadFile(hook); !strings.Contains(string(b), hookMarker) {
		t.Fatal("--force did not install")
	}
	// Uninstall puts pre-commit.local back.
	runCLI(t, "", "hook", "uninstall", "-C", repo)
	if b, _ := os.ReadFile(hook); string(b) != "#!/bin/sh\necho local\n" {
		t.Fatalf("after uninstall: %s", b)
	}
	os.Remove(hook)
	if code, out, _ := runCLI(t, "", "hook", "uninstall", "-C", repo); code != 0 || !strings.Contains(out, "no pre-commit hook") {
		t.Fatalf("uninstall with none: %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, "", "hook", "install", "-C", t.TempDir()); code == 0 || !strings.Contains(errOut, "not a git repository") {
		t.Fatalf("outside a repo: %d %q", code, errOut)
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote("/a b/it's"); got != `'/a b/it'\''s'` {
		t.Fatalf("shellQuote = %s", got)
	}
}
