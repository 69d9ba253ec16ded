package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// hookMarker identifies a pre-commit hook written by keyward.
const hookMarker = "# keyward-hook: v1"

// hookScript is the pre-commit hook. It runs the hook that was installed
// before keyward's (kept as pre-commit.local) first, then keyward scan
// --staged. $KEYWARD_BIN overrides the binary; if keyward is not on PATH the
// path it had at install time is used.
const hookScript = `#!/bin/sh
# keyward pre-commit hook: scans the staged changes for secrets.
# Installed by "keyward hook install", removed by "keyward hook uninstall".
# A hook that was here before runs first (pre-commit.local).
# Skip once with: git commit --no-verify
` + hookMarker + `
hookdir=$(dirname -- "$0")
if [ -x "$hookdir/pre-commit.local" ]; then
	"$hookdir/pre-commit.local" "$@" || exit $?
fi
kw=${KEYWARD_BIN:-keyward}
if ! command -v "$kw" >/dev/null 2>&1; then
	kw=%s
fi
exec "$kw" scan --staged
`

func newHookCmd(env *Env) *cobra.Command {
	var repo string
	var force bool
	cmd := &cobra.Command{
		Use:   "hook",
		Short: "Install or remove the git pre-commit hook that runs keyward scan --staged",
		Long: `The pre-commit hook runs "keyward scan --staged" before every commit and
stops a commit that adds a secret. It is written where git looks for hooks
(core.hooksPath is respected). An existing pre-commit hook is kept: it is
renamed pre-commit.local and the keyward hook runs it first.

To use the pre-commit framework instead, see docs/scanning.md.`,
	}
	cmd.PersistentFlags().StringVarP(&repo, "repo", "C", ".", "the git repository")
	install := &cobra.Command{
		Use:   "install",
		Short: "Install the pre-commit hook (keeping an existing one by chaining)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := hooksDir(cmd.Context(), repo)
			if err != nil {
				return err
			}
			msg, err := installHook(dir, force)
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, msg)
			return nil
		},
	}
	install.Flags().BoolVar(&force, "force", false, "replace an existing pre-commit hook that cannot be kept (pre-commit.local already exists)")
	uninstall := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove keyward's pre-commit hook and restore the one it replaced",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := hooksDir(cmd.Context(), repo)
			if err != nil {
				return err
			}
			msg, err := uninstallHook(dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, msg)
			return nil
		},
	}
	cmd.AddCommand(install, uninstall)
	return cmd
}

// hooksDir asks git where the repository's hooks live.
func hooksDir(ctx context.Context, repo string) (string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if strings.HasPrefix(repo, "-") {
		return "", Usagef("--repo %q must not start with '-'", repo)
	}
	out, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--git-path", "hooks").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s is not a git repository: %s", repo, firstLineOf(string(out)))
	}
	dir := strings.TrimSpace(string(out))
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(repo, dir)
	}
	return dir, nil
}

func firstLineOf(s string) string {
	s = strings.TrimSpace(s)
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func isKeywardHook(path string) (exists, ours bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, strings.Contains(string(b), hookMarker), nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func installHook(dir string, force bool) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create hooks directory: %w", err)
	}
	hook := filepath.Join(dir, "pre-commit")
	local := filepath.Join(dir, "pre-commit.local")
	exists, ours, err := isKeywardHook(hook)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", hook, err)
	}
	msg := "installed the keyward pre-commit hook in " + hook
	switch {
	case ours:
		msg = "the keyward pre-commit hook is already installed in " + hook + " (updated)"
	case exists:
		localExists, _, err := isKeywardHook(local)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", local, err)
		}
		if localExists && !force {
			return "", fmt.Errorf("%s exists and so does %s, so the existing hook cannot be kept; merge them by hand or use --force to replace %s", hook, local, hook)
		}
		if localExists {
			msg = "replaced " + hook + " with the keyward pre-commit hook (--force; " + local + " still runs first)"
		} else {
			if err := os.Rename(hook, local); err != nil {
				return "", fmt.Errorf("keep the existing hook: %w", err)
			}
			msg = "installed the keyward pre-commit hook in " + hook + "; the existing hook, now " + local + ", runs first"
		}
	}
	self, err := os.Executable()
	if err != nil {
		self = "keyward"
	}
	script := fmt.Sprintf(hookScript, shellQuote(self))
	tmp := hook + ".keyward-tmp"
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		return "", fmt.Errorf("write hook: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // whatever the umask
		os.Remove(tmp)
		return "", fmt.Errorf("write hook: %w", err)
	}
	if err := os.Rename(tmp, hook); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("write hook: %w", err)
	}
	return msg, nil
}

func uninstallHook(dir string) (string, error) {
	hook := filepath.Join(dir, "pre-commit")
	local := filepath.Join(dir, "pre-commit.local")
	exists, ours, err := isKeywardHook(hook)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", hook, err)
	}
	if !exists {
		return "no pre-commit hook is installed in " + dir, nil
	}
	if !ours {
		return "", fmt.Errorf("%s was not installed by keyward; leaving it", hook)
	}
	if err := os.Remove(hook); err != nil {
		return "", fmt.Errorf("remove hook: %w", err)
	}
	if _, err := os.Lstat(local); err == nil {
		if err := os.Rename(local, hook); err != nil {
			return "", fmt.Errorf("restore %s: %w", local, err)
		}
		return "removed the keyward pre-commit hook and restored the previous one", nil
	}
	return "removed the keyward pre-commit hook from " + hook, nil
}
