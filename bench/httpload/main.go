// Command httpload drives one HTTP endpoint over loopback with a fixed number
// of concurrent keep-alive connections for a fixed time (bounded: it stops by
// itself) and prints requests per second and latency percentiles.
//
//	go run ./bench/httpload -url http://127.0.0.1:8270/v1/auth/token/lookup-self \
//	    -H "Authorization: Bearer $KEYWARD_TOKEN" -c 64 -d 10s
//
// With -json it prints one JSON object (latencies in microseconds) instead
// of the text line, for scripts that compare runs.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	url := flag.String("url", "", "target URL (loopback only)")
	method := flag.String("method", "GET", "HTTP method")
	body := flag.String("body", "", "request body")
	conns := flag.Int("c", 64, "concurrent connections")
	dur := flag.Duration("d", 10*time.Second, "duration (at most 5m)")
	warm := flag.Duration("warmup", time.Second, "warm-up before measuring")
	asJSON := flag.Bool("json", false, "print a JSON summary")
	label := flag.String("label", "", "label of the run in the JSON summary")
	pids := flag.String("pids", "", "comma-separated process ids whose CPU time per request to report (Linux)")
	var hs headers
	flag.Var(&hs, "H", "header 'Name: value' (repeatable)")
	flag.Parse()
	if *dur > 5*time.Minute {
		*dur = 5 * time.Minute
	}
	target, err := parseTarget(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpload:", err)
		os.Exit(2)
	}
	reqBytes := buildRequest(*method, target, hs, *body)
	var measuring atomic.Bool
	var stop atomic.Bool
	var errs, non2xx atomic.Int64
	lat := make([][]time.Duration, *conns)
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var c *conn
			for !stop.Load() {
				if c == nil {
					var err error
					if c, err = dial(target.host); err != nil {
						errs.Add(1)
						time.Sleep(10 * time.Millisecond)
						continue
					}
				}
				t0 := time.Now()
				status, keep, err := c.roundTrip(reqBytes, *method == "HEAD")
				if err != nil || !keep {
					c.close()
					c = nil
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				d := time.Since(t0)
				if measuring.Load() {
					if status >= 300 {
						non2xx.Add(1)
					}
					lat[i] = append(lat[i], d)
				}
			}
			if c != nil {
				c.close()
			}
		}(i)
	}
	time.Sleep(*warm)
	measuring.Store(true)
	cpu0 := cpuTicks(*pids)
	self0 := cpuTicks(strconv.Itoa(os.Getpid()))
	start := time.Now()
	time.Sleep(*dur)
	measuring.Store(false)
	elapsed := time.Since(start)
	cpu1 := cpuTicks(*pids)
	self1 := cpuTicks(strconv.Itoa(os.Getpid()))
	stop.Store(true)
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		fmt.Fprintln(os.Stderr, "httpload: no request completed")
		os.Exit(1)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[int(float64(len(all)-1)*p)] }
	// CPU per request of the measured processes, from their tick counts
	// (10 ms each; over seconds of load that is precise enough).
	cpuPerReq := 0.0
	if *pids != "" {
		cpuPerReq = float64(cpu1-cpu0) * 1e4 / float64(len(all))
	}
	selfPerReq := float64(self1-self0) * 1e4 / float64(len(all))
	if *asJSON {
		us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
		json.NewEncoder(os.Stdout).Encode(map[string]any{
			"label": *label, "requests": len(all), "rps": float64(len(all)) / elapsed.Seconds(), "cpu_us_per_req": cpuPerReq, "load_cpu_us_per_req": selfPerReq,
			"p50_us": us(pct(.50)), "p90_us": us(pct(.90)), "p99_us": us(pct(.99)), "max_us": us(all[len(all)-1]),
			"non2xx": non2xx.Load(), "errors": errs.Load(), "conns": *conns, "seconds": elapsed.Seconds(),
		})
		if non2xx.Load() > 0 {
			os.Exit(1)
		}
		return
	}
	if *pids != "" {
		fmt.Printf("cpu_us_per_req=%.0f ", cpuPerReq)
	}
	fmt.Printf("load_cpu_us_per_req=%.0f ", selfPerReq)
	fmt.Printf("requests=%d rps=%.0f p50=%v p90=%v p99=%v max=%v non2xx=%d errors=%d conns=%d dur=%v\n",
		len(all), float64(len(all))/elapsed.Seconds(), pct(.50).Round(time.Microsecond), pct(.90).Round(time.Microsecond),
		pct(.99).Round(time.Microsecond), all[len(all)-1].Round(time.Microsecond), non2xx.Load(), errs.Load(), *conns, elapsed.Round(time.Millisecond))
	if non2xx.Load() > 0 {
		os.Exit(1)
	}
}

// cpuTicks sums user and system clock ticks (1/100 s) of the processes in
// pids, from /proc/PID/stat (every thread, living or gone, included).
func cpuTicks(pids string) int64 {
	var total int64
	for _, p := range strings.Split(pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		b, err := os.ReadFile("/proc/" + p + "/stat")
		if err != nil {
			fmt.Fprintln(os.Stderr, "httpload: -pids:", err)
			os.Exit(2)
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		total += u + k
	}
	return total
}
