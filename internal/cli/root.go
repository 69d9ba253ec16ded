// Package cli implements keyward's client-side commands: everything the
// keyward binary does except run a server. Commands talk to a server through
// the public client package, or work locally (scan, hook).
//
// Output rules: human output on stdout by default, -o json for scripts;
// errors on stderr; exit codes 0 ok, 1 failure, 2 usage (scan: 1 = findings,
// 2 = error). A command never prints a secret value unless printing it is its
// purpose (secret get, operator init), and never logs one.
package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/keyward/keyward/client"
	kwversion "github.com/keyward/keyward/internal/version"
	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// ExitError carries an exit code out of a command. Its message, if any, has
// already been printed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// usageError marks a mistake in how a command was called (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

// Usagef returns an error that makes the command exit with ExitUsage.
func Usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Env is what a command may touch of the outside world; tests give their own.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// Exec replaces the process with a command (keyward run); tests fake it.
	Exec func(path string, argv, environ []string) error
}

// OSEnv is the process's own environment.
func OSEnv() *Env {
	return &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Exec: execProcess}
}

// NewRoot builds the keyward command tree. extra commands (the server, which
// lives outside this package) are added beside the client commands.
func NewRoot(env *Env, extra ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:   "keyward",
		Short: "keyward keeps secrets and API keys on the server and hands out short-lived credentials",
		Long: `keyward is a self-hosted secrets and API-credential platform.

One binary is the server (keyward server), the client for its API, and a
secret scanner (keyward scan) for code, git history and logs.

The client reads KEYWARD_ADDR (default http://127.0.0.1:8270) and KEYWARD_TOKEN.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       kwversion.String(), // --version, as "keyward version" prints it
	}
	root.SetVersionTemplate("keyward {{.Version}}\n")
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nRun '%s --help' for usage.", err, c.CommandPath())}
	})
	for _, c := range extra {
		root.AddCommand(c)
	}
	for _, add := range commands {
		root.AddCommand(add(env))
	}
	return root
}

// commands lists the client command constructors; each file adds its own
// entry in this one list (no init() registries).
var commands = []func(*Env) *cobra.Command{
	newOperatorCmd,
	newProjectCmd,
	newEnvCmd,
	newSecretCmd,
	newRunCmd,
	newExportCmd,
	newLoginCmd, newLogoutCmd, newTokenCmd, newUserCmd, newServiceCmd, newIssuerCmd, newPolicyCmd, newAuditCmd, newUsageCmd, newAlertsCmd, newInventoryCmd, newAccessCmd, newDeviceCmd,
	newKeyCmd, newIntegrationCmd,
	newScanCmd, newHookCmd,
}

// Run executes args and returns the process exit code, printing errors to
// env.Stderr.
func Run(env *Env, args []string, extra ...*cobra.Command) int {
	root := NewRoot(env, extra...)
	root.SetArgs(args)
	err := unknownSubcommand(root, args)
	if err == nil {
		err = root.Execute()
	}
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(env.Stderr, "Error: %v\n", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(env.Stderr, "Error: %v\n", err)
	if h := tokenHint(env, args, err); h != "" {
		fmt.Fprintln(env.Stderr, h)
	}
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	if errors.As(err, new(*client.Error)) {
		// Whatever the server refused, a value it found invalid
		// included, is a failure (1); 2 is for how the command was
		// called, which the CLI itself checks. (cobra's and the server's
		// messages can both say "invalid argument".)
		return ExitFailure
	}
	if isCobraUsage(err) {
		return ExitUsage
	}
	return ExitFailure
}

// tokenHint says what to do when the server answered 401 to a command
// other than login: the server's message speaks of HTTP headers, not of
// the CLI. Whether the CLI sent a token tells the two cases apart.
func tokenHint(env *Env, args []string, err error) string {
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || len(args) > 0 && args[0] == "login" {
		return ""
	}
	if env.Getenv("KEYWARD_TOKEN") == "" && savedToken(env) == "" { // newClient's choice
		return "Hint: no token: run 'keyward login', or set KEYWARD_TOKEN."
	}
	return "Hint: the token in use (KEYWARD_TOKEN, or the one 'keyward login' saved) was refused: log in again, or set another."
}

// unknownSubcommand refuses an unknown subcommand of a command that only
// groups others ("keyward token lst"), as cobra does for the root's: cobra
// itself would print the group's help and exit 0, which a script takes for
// success. nil when args name a command (or only a group, whose help
// cobra then prints).
func unknownSubcommand(root *cobra.Command, args []string) error {
	c, rest, err := root.Find(args)
	if err != nil || c == root || !c.HasSubCommands() || c.Runnable() {
		return nil
	}
	// A group's flags are the global ones (strings): parsing them here and
	// again in Execute leaves the same values.
	if c.ParseFlags(rest) != nil {
		return nil // cobra reports the flag error (or shows --help)
	}
	pos := c.Flags().Args()
	if len(pos) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", pos[0], c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default, which it sets only on the root
	}
	if s := c.SuggestionsFor(pos[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return usageError{fmt.Errorf("%s\nRun '%s --help' for usage.", msg, c.CommandPath())}
}

// isCobraUsage recognises cobra's own argument errors ("unknown command",
// "accepts 1 arg(s)"), which it does not type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
