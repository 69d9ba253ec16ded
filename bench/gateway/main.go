// Command gateway is the helper of bench/gateway/run.sh:
//
//	gateway upstream -addr 127.0.0.1:18380 -key KEY
//	    serves a tiny API on loopback: every request (but GET /healthz) must
//	    carry "Authorization: Bearer KEY" (401 otherwise) and gets a 27-byte
//	    JSON body, so a run proves the credential was injected on every call.
//
//	gateway goproxy -addr 127.0.0.1:19483 -upstream http://127.0.0.1:18380 -key KEY
//	    a reference target: a plain Go reverse proxy (net/http server with
//	    keyward's server timeouts, httputil.ReverseProxy, a tuned
//	    http.Transport) that sets "Authorization: Bearer KEY" on every
//	    request. What a typical Go gateway costs with no auth and no audit.
//
//	gateway rawproxy -addr 127.0.0.1:19484 -upstream http://127.0.0.1:18380 -key KEY
//	    a reference target: the floor of a Go proxy on the machine. A bare
//	    listener, one goroutine per client connection and one keep-alive
//	    upstream connection each, just enough HTTP/1.1 parsing to forward
//	    the bench's requests with the key injected (see rawproxy.go; not a
//	    product HTTP implementation).
//
//	gateway rawproxy -audit DIR ...
//	    the same, appending keyward's audit entry of every call to an audit
//	    log in DIR (internal/audit on SQLite, as the gateway does): the
//	    target rawproxy-audit, the floor of a Go proxy that keeps keyward's
//	    record of each call.
//
//	gateway report direct.json gateway.json nginx.json ...
//	    reads httpload -json summaries (label direct, gateway, nginx, goproxy,
//	    rawproxy, rawproxy-audit, ...; several rounds each) and prints the
//	    medians over rounds as a Markdown table with what the gateway adds to
//	    calling the upstream directly, the throughput of the gateway and of
//	    the reference proxies against nginx's, and the gateway's CPU a call
//	    against rawproxy's and rawproxy-audit's.
//
//	gateway abreport results.json
//	    reads ab.sh's summaries (nginx, base, candidate and rawproxy-audit,
//	    one of each a round) and prints each round's throughput against
//	    nginx's and CPU a call, their medians, and the candidate's change
//	    against the base taken round by round.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	const usage = "usage: gateway upstream|goproxy|rawproxy|report|abreport ..."
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "upstream":
		upstream(os.Args[2:])
	case "goproxy":
		goproxy(os.Args[2:])
	case "rawproxy":
		rawproxy(os.Args[2:])
	case "report":
		report(os.Args[2:])
	case "abreport":
		abreport(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
}

func upstream(args []string) {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:18380", "listen address (loopback)")
	key := fs.String("key", "", "the credential every request must carry")
	fs.Parse(args)
	if !strings.HasPrefix(*addr, "127.") {
		fmt.Fprintln(os.Stderr, "upstream: loopback only")
		os.Exit(2)
	}
	want := "Bearer " + *key
	var bad atomic.Int64
	body := []byte(`{"ok":true,"service":"up"}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/healthz" {
			return // the start-up probe
		}
		if r.Header.Get("Authorization") != want {
			if bad.Add(1) == 1 {
				fmt.Fprintln(os.Stderr, "upstream: a request without the expected credential")
			}
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

type summary struct {
	Label    string  `json:"label"`
	Requests int     `json:"requests"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
	Conns    int     `json:"conns"`
	Non2xx   int64   `json:"non2xx"`
	CPU      float64 `json:"cpu_us_per_req"`
	Errors   int64   `json:"errors"`
}

func report(files []string) {
	writeReport(os.Stdout, readSummaries("report", files))
}

// readSummaries reads the httpload -json summaries in files (a line each;
// other lines are skipped); a file that cannot be read ends the program.
func readSummaries(cmd string, files []string) []summary {
	var sums []summary
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", cmd, err)
			os.Exit(1)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var s summary
			if json.Unmarshal(sc.Bytes(), &s) == nil && s.Label != "" {
				sums = append(sums, s)
			}
		}
		fh.Close()
	}
	return sums
}

// writeReport prints the table of medians over rounds, one row per label
// and connection count in the order they first appear, then the comparisons.
func writeReport(w io.Writer, sums []summary) {
	runs := map[string][]summary{}
	var order []string
	for _, s := range sums {
		key := fmt.Sprintf("%s c=%d", s.Label, s.Conns)
		if _, ok := runs[key]; !ok {
			order = append(order, key)
		}
		runs[key] = append(runs[key], s)
	}
	med := func(key string, f func(summary) float64) float64 {
		var v []float64
		for _, s := range runs[key] {
			v = append(v, f(s))
		}
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rps := func(s summary) float64 { return s.RPS }
	p50 := func(s summary) float64 { return s.P50 }
	p99 := func(s summary) float64 { return s.P99 }
	cpu := func(s summary) float64 { return s.CPU }
	fmt.Fprintln(w, "| target | connections | rounds | req/s (median) | p50 | p99 | CPU per request* | non-2xx / errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, k := range order {
		var bad int64
		for _, s := range runs[k] {
			bad += s.Non2xx + s.Errors
		}
		label, conns, _ := strings.Cut(k, " c=")
		fmt.Fprintf(w, "| %s | %s | %d | %.0f | %s | %s | %s | %d |\n", label, conns, len(runs[k]), med(k, rps), us(med(k, p50)), us(med(k, p99)), us(med(k, cpu)), bad)
	}
	fmt.Fprintln(w, "\n\\* CPU time of the process in the middle per request: keyward; nginx (master and workers); the proxy for goproxy, rawproxy and rawproxy-audit; the upstream for direct calls.")
	for _, c := range []string{"64", "1"} {
		d, g, n := "direct c="+c, "gateway c="+c, "nginx c="+c
		if runs[d] == nil || runs[g] == nil {
			continue
		}
		fmt.Fprintf(w, "\nAt %s connection(s): the gateway adds p50 %s, p99 %s to a direct call", c,
			us(med(g, p50)-med(d, p50)), us(med(g, p99)-med(d, p99)))
		if runs[n] != nil {
			fmt.Fprintf(w, "; nginx adds p50 %s, p99 %s; gateway throughput = %.0f%% of nginx's",
				us(med(n, p50)-med(d, p50)), us(med(n, p99)-med(d, p99)), 100*med(g, rps)/med(n, rps))
			// The steadier figure when the machine is noisy: throughput
			// swings with how the cores are shared, CPU a call much less.
			if gc, nc := med(g, cpu), med(n, cpu); gc > 0 && nc > 0 {
				fmt.Fprintf(w, "; gateway CPU a call = %.2f× nginx's", gc/nc)
			}
		}
		fmt.Fprintln(w, ".")
		// Round by round: each ratio compares runs seconds apart, so the
		// spread shows how much of a median's distance to the aim is the
		// machine's drift.
		if rg, rn := runs[g], runs[n]; len(rg) > 1 && len(rg) == len(rn) {
			var parts []string
			for i := range rg {
				parts = append(parts, fmt.Sprintf("%.0f%%", 100*rg[i].RPS/rn[i].RPS))
			}
			fmt.Fprintf(w, "\nAt %s connection(s), round by round: gateway throughput = %s of nginx's in the same round.\n", c, strings.Join(parts, ", "))
		}
	}
	// nginx writing an access-log line per call: the reference closest to
	// the gateway's own record of every call (not the aim's, which is
	// nginx without a log).
	for _, c := range []string{"64", "1"} {
		n, nl, g := "nginx c="+c, "nginx-log c="+c, "gateway c="+c
		if runs[n] == nil || runs[nl] == nil || runs[g] == nil {
			continue
		}
		fmt.Fprintf(w, "\nAt %s connection(s): nginx writing an access-log line per call does %.0f%% of its throughput without; the gateway does %.0f%% of nginx-log's",
			c, 100*med(nl, rps)/med(n, rps), 100*med(g, rps)/med(nl, rps))
		if gc, nc := med(g, cpu), med(nl, cpu); gc > 0 && nc > 0 {
			fmt.Fprintf(w, "; gateway CPU a call = %.2f× nginx-log's", gc/nc)
		}
		fmt.Fprintln(w, ".")
	}
	// The reference proxies (goproxy, rawproxy) against nginx.
	for _, c := range []string{"64", "1"} {
		n := "nginx c=" + c
		if runs[n] == nil {
			continue
		}
		var parts []string
		for _, ref := range []string{"gateway-nethttp", "goproxy", "rawproxy", "rawproxy-audit"} {
			if k := ref + " c=" + c; runs[k] != nil {
				parts = append(parts, fmt.Sprintf("%s throughput = %.0f%% of nginx's", ref, 100*med(k, rps)/med(n, rps)))
			}
		}
		if parts != nil {
			fmt.Fprintf(w, "\nAt %s connection(s): %s.\n", c, strings.Join(parts, "; "))
		}
	}
	// The gateway's CPU a call against two floors of the same run: a Go
	// proxy, and a Go proxy that appends keyward's audit entry of each
	// call. (What the entry costs the gateway itself can differ from what
	// it adds to rawproxy: bench/README.md.)
	for _, c := range []string{"64", "1"} {
		r, ra, g := med("rawproxy c="+c, cpu), med("rawproxy-audit c="+c, cpu), med("gateway c="+c, cpu)
		if r <= 0 || ra <= 0 || g <= 0 {
			continue
		}
		fmt.Fprintf(w, "\nAt %s connection(s), CPU a call: rawproxy %s; rawproxy-audit %s (+%s: keyward's audit entry of each call on the Go floor); the gateway %s (+%s over rawproxy-audit).\n",
			c, us(r), us(ra), us(ra-r), us(g), us(g-ra))
	}
}

func us(v float64) string {
	if v >= 1000 || v <= -1000 {
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}
