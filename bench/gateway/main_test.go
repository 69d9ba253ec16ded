package main

import (
	"strings"
	"testing"
)

func TestWriteReport(t *testing.T) {
	sums := []summary{
		{Label: "direct", Conns: 64, RPS: 40000, P50: 1000, P99: 5000, CPU: 25},
		{Label: "gateway", Conns: 64, RPS: 11000, P50: 4000, P99: 9000, CPU: 80},
		{Label: "gateway", Conns: 64, RPS: 12000, P50: 4400, P99: 9900, CPU: 82, Non2xx: 2},
		{Label: "gateway", Conns: 64, RPS: 13000, P50: 4800, P99: 9950, CPU: 84},
		{Label: "nginx", Conns: 64, RPS: 20000, P50: 2000, P99: 6000, CPU: 29},
		{Label: "nginx", Conns: 64, RPS: 19000, P50: 2000, P99: 6000, CPU: 29},
		{Label: "nginx", Conns: 64, RPS: 21000, P50: 2000, P99: 6000, CPU: 29},
		{Label: "nginx-log", Conns: 64, RPS: 16000, P50: 2400, P99: 7000, CPU: 40},
		{Label: "goproxy", Conns: 64, RPS: 12500, P50: 3000, P99: 8000, CPU: 55},
		{Label: "rawproxy", Conns: 64, RPS: 17000, P50: 2500, P99: 7000, CPU: 33, Errors: 1},
		{Label: "rawproxy-audit", Conns: 64, RPS: 14000, P50: 2900, P99: 7500, CPU: 45},
		{Label: "direct", Conns: 1, RPS: 12000, P50: 70, P99: 200},
		{Label: "gateway", Conns: 1, RPS: 4000, P50: 250, P99: 1000},
		{Label: "nginx", Conns: 1, RPS: 8000, P50: 140, P99: 350},
		{Label: "rawproxy", Conns: 1, RPS: 6000, P50: 160, P99: 400},
	}
	var b strings.Builder
	writeReport(&b, sums)
	out := b.String()
	for _, want := range []string{
		// Medians over rounds, and the bad answers of all rounds summed.
		"| gateway | 64 | 3 | 12000 | 4.40 ms | 9.90 ms | 82 µs | 2 |\n",
		"| goproxy | 64 | 1 | 12500 | 3.00 ms | 8.00 ms | 55 µs | 0 |\n",
		"| rawproxy | 64 | 1 | 17000 | 2.50 ms | 7.00 ms | 33 µs | 1 |\n",
		"| rawproxy | 1 | 1 | 6000 | 160 µs | 400 µs | 0 µs | 0 |\n",
		"\nAt 64 connection(s): the gateway adds p50 3.40 ms, p99 4.90 ms to a direct call; nginx adds p50 1.00 ms, p99 1.00 ms; gateway throughput = 60% of nginx's; gateway CPU a call = 2.83× nginx's.\n",
		// Each round's gateway against the same round's nginx:
		// 11000/20000, 12000/19000, 13000/21000.
		"\nAt 64 connection(s), round by round: gateway throughput = 55%, 63%, 62% of nginx's in the same round.\n",
		// No CPU figures at 1 connection: no ratio.
		"\nAt 1 connection(s): the gateway adds p50 180 µs, p99 800 µs to a direct call; nginx adds p50 70 µs, p99 150 µs; gateway throughput = 50% of nginx's.\n",
		"\nAt 64 connection(s): goproxy throughput = 62% of nginx's; rawproxy throughput = 85% of nginx's; rawproxy-audit throughput = 70% of nginx's.\n",
		// 45-33 and 82-45.
		"\nAt 64 connection(s), CPU a call: rawproxy 33 µs; rawproxy-audit 45 µs (+12 µs: keyward's audit entry of each call on the Go floor); the gateway 82 µs (+37 µs over rawproxy-audit).\n",
		// Against nginx logging each call: 16000/20000, 12000/16000, 82/40.
		"\nAt 64 connection(s): nginx writing an access-log line per call does 80% of its throughput without; the gateway does 75% of nginx-log's; gateway CPU a call = 2.05× nginx-log's.\n",
		// No goproxy run at 1 connection: only rawproxy's figure.
		"\nAt 1 connection(s): rawproxy throughput = 75% of nginx's.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q; got:\n%s", want, out)
		}
	}
	if strings.Contains(out, "At 1 connection(s): nginx writing") {
		t.Errorf("report compares with nginx-log at 1 connection without a run:\n%s", out)
	}
	if strings.Contains(out, "At 1 connection(s), round by round") {
		t.Errorf("report gives round-by-round ratios of single rounds:\n%s", out)
	}
	if strings.Contains(out, "At 1 connection(s), CPU a call") {
		t.Errorf("report splits the CPU a call at 1 connection without a rawproxy-audit run:\n%s", out)
	}
	if strings.Contains(out, "At 1 connection(s): goproxy") {
		t.Errorf("report gives goproxy's throughput at 1 connection without a run:\n%s", out)
	}
	// Rows in the order the labels first appear.
	if i, j := strings.Index(out, "| nginx | 64"), strings.Index(out, "| goproxy | 64"); i < 0 || j < i {
		t.Errorf("goproxy's row is not after nginx's:\n%s", out)
	}
}
