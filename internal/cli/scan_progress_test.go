//go:build linux

package cli

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// A scan that runs for over a second shows a progress line on a terminal's
// standard error, and clears it at the end; without a terminal there is none.
func TestScanProgressOnTerminal(t *testing.T) {
	master, slave := openPTY(t)
	var mu sync.Mutex
	var screen bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	shown := func() string { mu.Lock(); defer mu.Unlock(); return screen.String() }

	pr, pw := io.Pipe() // standard input that stays open: the scan goes on
	done := make(chan int, 1)
	var stdout bytes.Buffer
	go func() {
		done <- Run(&Env{Stdin: pr, Stdout: &stdout, Stderr: slave, Getenv: os.Getenv}, []string{"scan", "-"})
	}()
	pw.Write([]byte("nothing secret here\n"))
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(shown(), "scanning…") {
		if time.Now().After(deadline) {
			pw.Close()
			t.Fatalf("no progress line after %v; terminal shows %q", 15*time.Second, shown())
		}
		time.Sleep(50 * time.Millisecond)
	}
	pw.Close()
	if code := <-done; code != 0 {
		t.Fatalf("scan exit %d", code)
	}

	// Not a terminal: no progress line, however long the scan.
	pr, pw = io.Pipe()
	var stderr bytes.Buffer
	go func() {
		done <- Run(&Env{Stdin: pr, Stdout: &stdout, Stderr: &stderr, Getenv: os.Getenv}, []string{"scan", "-"})
	}()
	time.Sleep(1500 * time.Millisecond)
	pw.Close()
	<-done
	if strings.Contains(stderr.String(), "scanning…") {
		t.Errorf("progress written to a non-terminal: %q", stderr.String())
	}
}
