package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAuditVerify(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_admin"
	answer := `{"ok":true,"entries":120,"checkpoints":3,"first_bad":0,"problem":""}`
	h.fake.mux.HandleFunc("POST /v1/audit/verify", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, answer)
	})
	r := h.run("", "audit", "verify")
	if r.code != 0 || r.stdout != "audit log intact: 120 entries, 3 checkpoints\n" {
		t.Errorf("intact: exit %d, %q", r.code, r.stdout)
	}
	answer = `{"ok":false,"entries":41,"checkpoints":1,"first_bad":42,"problem":"entry 42: hash does not match its contents"}`
	r = h.run("", "audit", "verify")
	if r.code != 1 || r.stdout != "audit log TAMPERED: first bad entry 42: entry 42: hash does not match its contents\n" {
		t.Errorf("tampered: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	r = h.run("", "audit", "verify", "-o", "json")
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); r.code != 1 || err != nil || v["ok"] != false || v["first_bad"] != 42.0 {
		t.Errorf("tampered -o json: exit %d, %v %v", r.code, v, err)
	}
	h2 := newHarness(t)
	h2.fake.mux.HandleFunc("POST /v1/audit/verify", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, 403, "permission_denied", "not allowed to read sys/audit")
	})
	if r := h2.run("", "audit", "verify"); r.code != 1 || !strings.Contains(r.stderr, "not allowed") {
		t.Errorf("refused: exit %d %q", r.code, r.stderr)
	}
}

func TestAuditList(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_admin"
	// 5 entries served in pages of limit, continuing after "after".
	h.fake.mux.HandleFunc("GET /v1/audit", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		after, _ := strconv.Atoi(q.Get("after"))
		limit, _ := strconv.Atoi(q.Get("limit"))
		var es []map[string]any
		for seq := after + 1; seq <= 5 && len(es) < limit; seq++ {
			es = append(es, map[string]any{"seq": seq, "time": "2030-01-01T00:00:00Z", "principal": "user:alice", "action": "read",
				"resource": fmt.Sprintf("projects/p/envs/dev/secrets/s%d", seq), "outcome": "denied", "status": 403, "latency_us": 10})
		}
		next := 0
		if len(es) == limit {
			next = es[len(es)-1]["seq"].(int)
		}
		json.NewEncoder(w).Encode(map[string]any{"entries": es, "next": next})
	})

	before := time.Now()
	r := h.must("", "audit", "list", "--since", "1h", "--outcome", "denied", "--principal", "user:alice", "--resource", "projects/p/", "--limit", "2")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQ") || !strings.Contains(lines[2], "secrets/s2") || !strings.Contains(lines[1], "denied") {
		t.Errorf("one page:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "--after 2") {
		t.Errorf("no hint about more entries: %q", r.stderr)
	}
	q, _ := url.ParseQuery(h.fake.requests("GET /v1/audit")[0].Query)
	since, err := time.Parse(time.RFC3339Nano, q.Get("since"))
	if err != nil || since.Before(before.Add(-time.Hour-time.Second)) || since.After(time.Now().Add(-time.Hour)) {
		t.Errorf("since = %q (%v)", q.Get("since"), err)
	}
	if q.Get("outcome") != "denied" || q.Get("principal") != "user:alice" || q.Get("resource_prefix") != "projects/p/" || q.Get("limit") != "2" {
		t.Errorf("query %v", q)
	}

	r = h.must("", "audit", "list", "--all", "--limit", "2", "-o", "json")
	var es []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil || len(es) != 5 || es[4]["seq"] != 5.0 {
		t.Errorf("--all -o json: %d entries, %v", len(es), err)
	}
	if n := len(h.fake.requests("GET /v1/audit")); n != 1+3 {
		t.Errorf("%d list requests, want 4", n)
	}
	r = h.must("", "audit", "list", "--after", "5", "-o", "json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty -o json: %q", r.stdout)
	}

	for _, args := range [][]string{
		{"audit", "list", "--outcome", "maybe"},
		{"audit", "list", "--since", "yesterday"},
		{"audit", "list", "--limit", "0"},
		{"audit", "list", "--after", "-1"},
		{"audit", "verify", "now"},
	} {
		if r := h.run("", args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d, want 2 (%q)", args, r.code, r.stderr)
		}
	}
}

// --last N asks for the newest N (newest=true, limit N), prints them as
// served (oldest first) and names the --before of older ones.
func TestAuditListLast(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_admin"
	// 9 entries; the newest limit of those below "before", oldest first.
	h.fake.mux.HandleFunc("GET /v1/audit", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("newest") != "true" {
			http.Error(w, "want newest", http.StatusBadRequest)
			return
		}
		before, _ := strconv.Atoi(q.Get("before"))
		if before == 0 {
			before = 10
		}
		limit, _ := strconv.Atoi(q.Get("limit"))
		var es []map[string]any
		for seq := max(1, before-limit); seq < before; seq++ {
			es = append(es, map[string]any{"seq": seq, "time": "2030-01-01T00:00:00Z", "principal": "user:alice", "action": "read",
				"resource": fmt.Sprintf("r%d", seq), "outcome": "allowed", "status": 200})
		}
		older := 0
		if len(es) == limit && es[0]["seq"].(int) > 1 {
			older = es[0]["seq"].(int)
		}
		json.NewEncoder(w).Encode(map[string]any{"entries": es, "next": 0, "older": older})
	})
	r := h.must("", "audit", "list", "--last", "3")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "7 ") || !strings.HasPrefix(lines[3], "9 ") {
		t.Errorf("--last 3:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "Older entries exist: --last 3 --before 7.") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = h.must("", "audit", "list", "--last", "3", "--before", "3", "-o", "json")
	var es []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil || len(es) != 2 || es[0]["seq"] != 1.0 || strings.Contains(r.stderr, "Older") {
		t.Errorf("--before 3: %s %q %v", r.stdout, r.stderr, err)
	}
	q, _ := url.ParseQuery(h.fake.requests("GET /v1/audit")[1].Query)
	if q.Get("before") != "3" || q.Get("limit") != "3" || q.Get("newest") != "true" {
		t.Errorf("query %v", q)
	}
	for _, args := range [][]string{
		{"audit", "list", "--last", "0"},
		{"audit", "list", "--last", "1001"},
		{"audit", "list", "--last", "5", "--all"},
		{"audit", "list", "--last", "5", "--limit", "10"},
		{"audit", "list", "--before", "-2"},
	} {
		if r := h.run("", args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d, want 2 (%q)", args, r.code, r.stderr)
		}
	}
}

func TestParseTimeFlag(t *testing.T) {
	now := time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Time{
		"":                     {},
		"1h":                   now.Add(-time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"2030-01-02T03:04:05Z": time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		"2030-01-02":           time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC),
	}
	for in, want := range cases {
		if got, err := parseTimeFlag("since", in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseTimeFlag(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1h", "d", "1.5d", "yesterday", "2030-13-01", "99999999d"} {
		if _, err := parseTimeFlag("since", bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
