package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

const usageJSON = `{"usage":[
{"kind":"integration","subject":"maps","minute":"2026-11-23T10:00:00Z","status":200,"count":5},
{"kind":"integration","subject":"maps","minute":"2026-11-23T10:01:00Z","status":200,"count":7},
{"kind":"integration","subject":"maps","minute":"2026-11-23T10:01:00Z","status":502,"count":1},
{"kind":"key","subject":"key_abc","minute":"2026-11-23T10:01:00Z","status":429,"count":2}]}`

func TestUsageSumsAndFilters(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	var queries []string
	h.fake.mux.HandleFunc("GET /v1/usage", func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		io.WriteString(w, usageJSON)
	})
	r := h.must("", "usage", "--since", "2h")
	for _, want := range []string{"integration  maps     200     12", "integration  maps     502     1", "key          key_abc  429     2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("totals lack %q:\n%s", want, r.stdout)
		}
	}
	if len(queries) != 1 || !strings.Contains(queries[0], "since=") {
		t.Errorf("queries = %q", queries)
	}
	// Totals in JSON: a row per subject and status, and no minute (a sum
	// over the period has none; a zero time would read as year 1).
	r = h.must("", "usage", "--since", "2h", "-o", "json")
	var totals []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &totals); err != nil || len(totals) != 3 {
		t.Fatalf("totals json = %v %q", err, r.stdout)
	}
	for _, row := range totals {
		if _, ok := row["minute"]; ok {
			t.Errorf("total row has a minute: %v", row)
		}
	}
	if totals[0]["count"] != float64(12) {
		t.Errorf("first total = %v, want maps 200 12", totals[0])
	}
	r = h.must("", "usage", "--kind", "integration", "--subject", "maps", "--per-minute", "-o", "json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 4 {
		t.Fatalf("per-minute json = %v %q", err, r.stdout)
	}
	if rows[0]["minute"] != "2026-11-23T10:00:00Z" {
		t.Errorf("per-minute row's minute = %v", rows[0]["minute"])
	}
	if q := queries[len(queries)-1]; !strings.Contains(q, "kind=integration") || !strings.Contains(q, "subject=maps") {
		t.Errorf("filters not sent: %q", q)
	}
	for _, args := range [][]string{{"usage", "--kind", "user"}, {"usage", "--subject", "x"}, {"usage", "--since", "yesterday"}} {
		if r := h.run("", args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, r.code)
		}
	}
}

// With no usage in the period the CLI says so, and why the last seconds'
// calls may be missing, on stderr; -o json stays an empty list.
func TestUsageEmpty(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.mux.HandleFunc("GET /v1/usage", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"usage":[]}`)
	})
	r := h.must("", "usage")
	if !strings.Contains(r.stderr, "No usage in this period") || !strings.Contains(r.stderr, "every 10 seconds") {
		t.Errorf("stderr = %q", r.stderr)
	}
	r = h.must("", "usage", "-o", "json")
	if strings.TrimSpace(r.stdout) != "[]" || r.stderr != "" {
		t.Errorf("json: stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

func TestAlerts(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	var queries []string
	h.fake.mux.HandleFunc("GET /v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		io.WriteString(w, `{"alerts":[
{"id":2,"time":"2030-01-01T10:02:20Z","kind":"refusals","subject_kind":"token","subject":"acc1","minute":"2030-01-01T10:01:00Z","count":41,"baseline":0,"response":"revoked"},
{"id":1,"time":"2030-01-01T09:00:20Z","kind":"spike","subject_kind":"key","subject":"key_abc","minute":"2030-01-01T08:59:00Z","count":900,"baseline":12.5,"response":"alert"},
{"id":3,"time":"2030-01-01T08:00:20Z","kind":"new_network","subject_kind":"key","subject":"key_abc","minute":"2030-01-01T08:00:00Z","count":1,"baseline":0,"detail":"198.51.100.0/24","response":"alert"}]}`)
	})
	r := h.must("", "alerts", "--since", "7d")
	for _, want := range []string{"refusals     token acc1", "revoked", "spike        key key_abc", "usual 12.5/min", "alert", "from 198.51.100.0/24"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if len(queries) != 1 || !strings.Contains(queries[0], "since=") {
		t.Errorf("queries = %q", queries)
	}
	r = h.must("", "alerts", "-o", "json")
	var out []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 3 || out[0]["response"] != "revoked" {
		t.Fatalf("json = %v %q", err, r.stdout)
	}
	if r := h.run("", "alerts", "--since", "last week"); r.code != 2 {
		t.Errorf("bad --since: exit %d, want 2", r.code)
	}
}
