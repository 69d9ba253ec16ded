package main

import (
	"fmt"
	"io"
	"os"
	"slices"
)

// abreport prints ab.sh's comparison from httpload -json summaries labelled
// nginx, base, candidate and rawproxy-audit, one of each a round in that
// order.
func abreport(files []string) {
	if err := writeABReport(os.Stdout, readSummaries("abreport", files)); err != nil {
		fmt.Fprintln(os.Stderr, "abreport:", err)
		os.Exit(1)
	}
}

// abRound is one round of ab.sh: each target's summary.
type abRound struct{ nginx, base, cand, raw summary }

// writeABReport prints a row per round (each gateway's throughput against
// the same round's nginx, and its CPU a call), then the medians over
// rounds of those figures and of the candidate's change against the base,
// taken round by round.
func writeABReport(w io.Writer, sums []summary) error {
	var rounds []abRound
	var cur abRound
	seen := 0
	for _, s := range sums {
		switch s.Label {
		case "nginx":
			cur.nginx = s
		case "base":
			cur.base = s
		case "candidate":
			cur.cand = s
		case "rawproxy-audit":
			cur.raw = s
		default:
			return fmt.Errorf("unexpected label %q", s.Label)
		}
		if seen++; seen == 4 {
			if cur.nginx.RPS == 0 || cur.base.RPS == 0 || cur.cand.RPS == 0 || cur.raw.RPS == 0 {
				return fmt.Errorf("round %d lacks a target", len(rounds)+1)
			}
			rounds = append(rounds, cur)
			cur, seen = abRound{}, 0
		}
	}
	if len(rounds) == 0 || seen != 0 {
		return fmt.Errorf("%d summaries do not make whole rounds of nginx, base, candidate and rawproxy-audit", len(sums))
	}
	fmt.Fprintln(w, "| round | nginx req/s | base req/s (of nginx) | candidate req/s (of nginx) | rawproxy-audit req/s (of nginx) | CPU a call: base | candidate | rawproxy-audit |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	var baseShare, candShare, rawShare, baseCPU, candCPU, rawCPU, dCPU, dRPS []float64
	for i, r := range rounds {
		b, c, a := r.base.RPS/r.nginx.RPS, r.cand.RPS/r.nginx.RPS, r.raw.RPS/r.nginx.RPS
		fmt.Fprintf(w, "| %d | %.0f | %.0f (%.0f%%) | %.0f (%.0f%%) | %.0f (%.0f%%) | %.1f µs | %.1f µs | %.1f µs |\n",
			i+1, r.nginx.RPS, r.base.RPS, 100*b, r.cand.RPS, 100*c, r.raw.RPS, 100*a, r.base.CPU, r.cand.CPU, r.raw.CPU)
		baseShare, candShare, rawShare = append(baseShare, b), append(candShare, c), append(rawShare, a)
		baseCPU, candCPU, rawCPU = append(baseCPU, r.base.CPU), append(candCPU, r.cand.CPU), append(rawCPU, r.raw.CPU)
		dCPU, dRPS = append(dCPU, r.cand.CPU-r.base.CPU), append(dRPS, r.cand.RPS/r.base.RPS-1)
	}
	fmt.Fprintf(w, "\nMedians over %d rounds: throughput of nginx's: base %.0f%%, candidate %.0f%%, rawproxy-audit %.0f%%; CPU a call: base %.1f µs, candidate %.1f µs, rawproxy-audit %.1f µs.\n",
		len(rounds), 100*median(baseShare), 100*median(candShare), 100*median(rawShare), median(baseCPU), median(candCPU), median(rawCPU))
	fmt.Fprintf(w, "Candidate against base, round by round (median): CPU a call %+.1f µs, throughput %+.1f%%.\n", median(dCPU), 100*median(dRPS))
	return nil
}

// median of xs (not empty); xs is left as it was.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
