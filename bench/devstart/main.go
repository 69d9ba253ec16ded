// Command devstart measures how long `keyward server --dev` takes from
// process start to a healthy answer on /v1/sys/health, on a fresh data
// directory (first start: init + unseal) and on a reused one (restart).
//
//	go build -o /tmp/keyward ./cmd/keyward && go run ./bench/devstart -bin /tmp/keyward -n 20
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "keyward", "keyward binary")
	n := flag.Int("n", 10, "starts per case")
	flag.Parse()
	fresh, restart := []time.Duration{}, []time.Duration{}
	reused, err := os.MkdirTemp("", "devstart-reused-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(reused)
	for i := 0; i < *n; i++ {
		dir, err := os.MkdirTemp("", "devstart-")
		if err != nil {
			fail(err)
		}
		d, err := startOnce(*bin, dir)
		os.RemoveAll(dir)
		if err != nil {
			fail(err)
		}
		fresh = append(fresh, d)
		d, err = startOnce(*bin, reused)
		if err != nil {
			fail(err)
		}
		if i > 0 { // the first start on the reused dir is a fresh start
			restart = append(restart, d)
		}
	}
	report("first start (init + unseal)", fresh)
	report("restart (unseal from key file)", restart)
}

func startOnce(bin, dir string) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "server", "--dev", "--data", dir, "--listen", addr, "--log-level", "error")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	client := &http.Client{Timeout: time.Second}
	for time.Since(start) < 30*time.Second {
		resp, err := client.Get("http://" + addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(start), nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("no healthy answer within 30s")
}

func report(name string, ds []time.Duration) {
	slices.Sort(ds)
	fmt.Printf("%-34s n=%-3d min=%-8v p50=%-8v max=%v\n", name, len(ds),
		ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "devstart:", err)
	os.Exit(1)
}
