//go:build unix

package cli

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// keyward run --watch restarts the command with the new value when a
// secret's version changes, and ends with the command's exit code.
func TestRunWatchRestartsOnChange(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	var lists atomic.Int32
	version := func() int {
		if lists.Load() >= 2 {
			return 2
		}
		return 1
	}
	h.fake.mux.HandleFunc("GET /v1/projects/shop/envs/prod/secrets", func(w http.ResponseWriter, r *http.Request) {
		lists.Add(1)
		fmt.Fprintf(w, `{"secrets":[{"name":"DB","version":%d}]}`, version())
	})
	h.fake.mux.HandleFunc("GET /v1/projects/shop/envs/prod/folder", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"secrets":{"DB":"%s"}}`, map[int]string{1: "one", 2: "two"}[version()])
	})
	// The first run waits to be stopped; the second exits 3 at once.
	script := `echo "DB=$DB"; [ "$DB" = two ] && exit 3; exec sleep 30`
	r := h.run("", "run", "-p", "shop", "-e", "prod", "--watch", "--watch-interval", "1s", "--restart-grace", "2s", "--", "sh", "-c", script)
	if r.code != 3 {
		t.Fatalf("exit %d, want the command's 3\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	if r.stdout != "DB=one\nDB=two\n" || !strings.Contains(r.stderr, "the secrets changed; restarting sh") {
		t.Fatalf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if got := len(h.fake.requests("GET /v1/projects/shop/envs/prod/folder")); got != 2 {
		t.Fatalf("values read %d times, want 2 (at start, at the change)", got)
	}
}

func TestRunWatchRefusesAShortInterval(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("GET /v1/projects/shop/envs/prod/folder", 200, `{"secrets":{"DB":"x"}}`)
	if r := h.run("", "run", "-p", "shop", "-e", "prod", "--watch", "--watch-interval", "10ms", "--", "true"); r.code != ExitUsage {
		t.Fatalf("exit %d, want %d: %q", r.code, ExitUsage, r.stderr)
	}
}

// Watching needs list: without it keyward says so and runs nothing.
func TestRunWatchNeedsList(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("GET /v1/projects/shop/envs/prod/folder", 200, `{"secrets":{"DB":"x"}}`)
	h.fake.mux.HandleFunc("GET /v1/projects/shop/envs/prod/secrets", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, 403, "permission_denied", "permission denied: list on projects/shop/envs/prod/secrets")
	})
	r := h.run("", "run", "-p", "shop", "-e", "prod", "--watch", "--", "sh", "-c", "echo ran")
	if r.code != ExitFailure || strings.Contains(r.stdout, "ran") || !strings.Contains(r.stderr, "needs list as well as read") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// On a terminal, the interrupt and quit keys reach the command through its
// process group: keyward does not send them a second time. Anything else,
// and everything when keyward is not on a terminal, is forwarded.
func TestRunWatchForwardsSignalsOnce(t *testing.T) {
	for _, c := range []struct {
		s           os.Signal
		interactive bool
		want        bool
	}{
		{os.Interrupt, true, false}, {syscall.SIGQUIT, true, false},
		{syscall.SIGTERM, true, true}, {syscall.SIGHUP, true, true},
		{os.Interrupt, false, true}, {syscall.SIGQUIT, false, true}, {syscall.SIGTERM, false, true},
	} {
		if got := forwarded(c.s, c.interactive); got != c.want {
			t.Errorf("forwarded(%v, interactive %v) = %v, want %v", c.s, c.interactive, got, c.want)
		}
	}
}
