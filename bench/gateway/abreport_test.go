package main

import (
	"strings"
	"testing"
)

func TestWriteABReport(t *testing.T) {
	round := func(ng, b, c, r, bcpu, ccpu float64) []summary {
		return []summary{
			{Label: "nginx", RPS: ng, CPU: 11},
			{Label: "base", RPS: b, CPU: bcpu},
			{Label: "candidate", RPS: c, CPU: ccpu},
			{Label: "rawproxy-audit", RPS: r, CPU: 15},
		}
	}
	var sums []summary
	sums = append(sums, round(60000, 36000, 39000, 48000, 26, 24)...)
	sums = append(sums, round(50000, 32000, 33000, 45000, 27, 25.5)...)
	sums = append(sums, round(55000, 35000, 38500, 47000, 26.5, 24.5)...)
	var b strings.Builder
	if err := writeABReport(&b, sums); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| 1 | 60000 | 36000 (60%) | 39000 (65%) | 48000 (80%) | 26.0 µs | 24.0 µs | 15.0 µs |\n",
		"| 2 | 50000 | 32000 (64%) | 33000 (66%) | 45000 (90%) | 27.0 µs | 25.5 µs | 15.0 µs |\n",
		// base shares 60, 64, 63.6; candidate 65, 66, 70; raw 80, 90, 85.5
		"Medians over 3 rounds: throughput of nginx's: base 64%, candidate 66%, rawproxy-audit 85%; CPU a call: base 26.5 µs, candidate 24.5 µs, rawproxy-audit 15.0 µs.\n",
		// CPU -2, -1.5, -2; throughput +8.3%, +3.1%, +10%
		"Candidate against base, round by round (median): CPU a call -2.0 µs, throughput +8.3%.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q; got:\n%s", want, out)
		}
	}
}

func TestWriteABReportRefusesBrokenRounds(t *testing.T) {
	for name, sums := range map[string][]summary{
		"none":          nil,
		"half a round":  {{Label: "nginx", RPS: 1}, {Label: "base", RPS: 1}},
		"unknown label": {{Label: "direct", RPS: 1}},
		"a target twice": {{Label: "nginx", RPS: 1}, {Label: "base", RPS: 1}, {Label: "base", RPS: 1},
			{Label: "rawproxy-audit", RPS: 1}},
	} {
		if err := writeABReport(&strings.Builder{}, sums); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
