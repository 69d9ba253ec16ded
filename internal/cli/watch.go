package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keyward/keyward/client"
)

// watchRun is keyward run --watch: it runs the command as a child, polls
// the versions of the secrets it was given, and when they change fetches
// them again and restarts the command with the new values (SIGTERM, then
// SIGKILL after grace). Signals keyward receives go to the command (but
// a terminal's interrupt and quit, which reach it anyway: forwarded); when
// the command ends by itself keyward ends with its exit code.
type watchRun struct {
	env      *Env
	c        *client.Client
	project  string
	envName  string
	folder   string
	recurse  bool
	argv     []string
	path     string
	interval time.Duration
	grace    time.Duration

	// stdout and stderr are the Env's, made safe for the commands' copying
	// goroutines and keyward's own messages at once (when they are not files).
	stdout, stderr io.Writer
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// outputs returns the writers the commands and keyward share: a file as it
// is (the command writes to it directly), anything else behind one lock.
func outputs(env *Env) (stdout, stderr io.Writer) {
	mu := new(sync.Mutex)
	wrap := func(w io.Writer) io.Writer {
		if _, ok := w.(*os.File); ok {
			return w
		}
		return lockedWriter{mu, w}
	}
	return wrap(env.Stdout), wrap(env.Stderr)
}

// versions is a fingerprint of the secrets below the folder: their paths
// and versions (metadata only: listing reads no value).
func (w *watchRun) versions(ctx context.Context) (string, error) {
	entries, err := w.c.ListSecrets(ctx, w.project, w.envName, w.folder, w.recurse)
	if err != nil {
		return "", err
	}
	parts := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.Folder {
			parts = append(parts, e.Name+"@"+strconv.Itoa(e.Version))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "\n"), nil
}

// environ fetches the secrets again and builds the command's environment
// (the warnings about names were given at the start).
func (w *watchRun) environ(ctx context.Context) ([]string, error) {
	values, err := w.c.ReadFolder(ctx, w.project, w.envName, w.folder, w.recurse)
	if err != nil {
		return nil, err
	}
	vars, _, _ := secretsAsEnv(values)
	return mergeEnv(os.Environ(), vars), nil
}

func (w *watchRun) start(environ []string) (*exec.Cmd, <-chan error, error) {
	cmd := exec.Command(w.path, w.argv[1:]...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = environ, w.env.Stdin, w.stdout, w.stderr
	// A grandchild left holding the output must not hold the restart.
	cmd.WaitDelay = w.grace
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done, nil
}

// stop ends the command: SIGTERM (where there are signals), then Kill after grace.
func (w *watchRun) stop(cmd *exec.Cmd, done <-chan error) {
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		cmd.Process.Kill()
	}
	select {
	case <-done:
	case <-time.After(w.grace):
		cmd.Process.Kill()
		<-done
	}
}

// exitCode is what keyward exits with when the command ended with err.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

func (w *watchRun) run(ctx context.Context, environ []string) error {
	seen, err := w.versions(ctx)
	if err != nil {
		return fmt.Errorf("--watch lists the secrets' versions, which needs list as well as read: %w", err)
	}
	cmd, done, err := w.start(environ)
	if err != nil {
		fmt.Fprintf(w.stderr, "keyward run: %s: %v\n", w.argv[0], err)
		return &ExitError{Code: 126}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	interactive := isTerminal(w.env.Stdin)
	defer signal.Stop(sigs)
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case err := <-done:
			return &ExitError{Code: exitCode(err)}
		case s := <-sigs:
			if forwarded(s, interactive) {
				cmd.Process.Signal(s) // the command decides; keyward ends when it does
			}
		case <-tick.C:
			now, err := w.versions(ctx)
			if err == nil && now != seen {
				var next []string
				if next, err = w.environ(ctx); err == nil {
					seen = now
					if slices.Equal(next, environ) {
						continue // new versions, same values: nothing to restart for
					}
					fmt.Fprintf(w.stderr, "keyward run: the secrets changed; restarting %s\n", w.argv[0])
					w.stop(cmd, done)
					environ = next
					if cmd, done, err = w.start(environ); err != nil {
						fmt.Fprintf(w.stderr, "keyward run: %s: %v\n", w.argv[0], err)
						return &ExitError{Code: 126}
					}
				}
			}
			switch {
			case err != nil && !failing:
				failing = true
				fmt.Fprintf(w.stderr, "keyward run: cannot check the secrets for changes (the command goes on with the values it has): %v\n", err)
			case err == nil && failing:
				failing = false
				fmt.Fprintln(w.stderr, "keyward run: checking the secrets for changes works again")
			}
		}
	}
}

// forwarded reports whether keyward passes signal s on to the command.
// On a terminal (interactive) the interrupt and quit keys signal the whole
// foreground process group, the command included, so keyward does not
// send them a second time: many programs take a second interrupt for
// "quit now, skip the cleanup". Elsewhere (a supervisor, kill) every
// signal is forwarded.
func forwarded(s os.Signal, interactive bool) bool {
	return !interactive || s != os.Interrupt && s != syscall.SIGQUIT
}
