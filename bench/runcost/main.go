// Command runcost measures what `keyward run` adds to starting a command:
// it times `keyward run -p P -e E -- true` and plain `true` alternately,
// n times each, against a running server ($KEYWARD_ADDR, $KEYWARD_TOKEN),
// and prints the medians and their difference.
//
//	go run ./bench/runcost -bin /tmp/keyward -p bench -e dev -n 50
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"time"
)

func main() {
	bin := flag.String("bin", "keyward", "keyward binary")
	project := flag.String("p", "", "project")
	env := flag.String("e", "", "environment")
	n := flag.Int("n", 30, "runs of each")
	flag.Parse()
	truePath, err := exec.LookPath("true")
	if err != nil {
		fail(err)
	}
	var direct, viaRun []time.Duration
	for i := 0; i < *n; i++ {
		d, err := timeRun(truePath)
		if err != nil {
			fail(err)
		}
		direct = append(direct, d)
		d, err = timeRun(*bin, "run", "-p", *project, "-e", *env, "--", truePath)
		if err != nil {
			fail(err)
		}
		viaRun = append(viaRun, d)
	}
	md, mr := median(direct), median(viaRun)
	fmt.Printf("direct p50=%v  keyward run p50=%v  overhead p50=%v (n=%d)\n",
		md.Round(10*time.Microsecond), mr.Round(10*time.Microsecond), (mr - md).Round(10*time.Microsecond), *n)
}

func timeRun(name string, args ...string) (time.Duration, error) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	err := cmd.Run()
	return time.Since(t0), err
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "runcost:", err)
	os.Exit(1)
}
