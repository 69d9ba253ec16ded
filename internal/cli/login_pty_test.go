//go:build linux

package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// On a terminal, `keyward login` with no USERNAME asks for it, then for
// the password without echoing it.
func TestLoginPromptsForUsernameOnTerminal(t *testing.T) {
	h := newHarness(t, "hunter2pw", "kwt_issuedtokenvalue")
	h.fake.mux.HandleFunc("POST /v1/auth/password/login", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m := bodyMap(t, string(b))
		if m["username"] != "alice" || m["password"] != "hunter2pw" {
			apiError(w, 401, "unauthenticated", "invalid credentials")
			return
		}
		io.WriteString(w, issuedJSON)
	})
	master, slave := openPTY(t)
	// What the terminal shows (echo of the typed user name, never the
	// password) is drained so the pty never blocks.
	var screen bytes.Buffer
	drained := make(chan struct{})
	go func() { io.Copy(&screen, master); close(drained) }()
	go func() {
		master.Write([]byte("alice\n"))
		// Type the password only once the prompt has turned echo off.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
			if err == nil && tio.Lflag&unix.ECHO == 0 {
				break
			}
		}
		master.Write([]byte("hunter2pw\n"))
	}()
	var stdout, stderr bytes.Buffer
	env := &Env{Stdin: slave, Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return h.vars[k] }}
	if code := Run(env, []string{"login"}); code != 0 {
		t.Fatalf("login exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"Username: ", "Password for alice: "} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks the prompt %q: %q", want, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "Logged in as user:alice") {
		t.Errorf("stdout = %q", stdout.String())
	}
	slave.Close()
	master.Close()
	<-drained
	if strings.Contains(screen.String(), "hunter2pw") {
		t.Errorf("the password was echoed on the terminal: %q", screen.String())
	}
}

// Without a terminal and without USERNAME, login is a usage error (exit 2).
func TestLoginWithoutUsernameNoTerminal(t *testing.T) {
	h := newHarness(t)
	r := h.run("", "login")
	if r.code != 2 || !strings.Contains(r.stderr, "keyward login USERNAME") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}
