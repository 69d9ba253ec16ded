package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const accessJSON = `{"id":"acr_abc","requester":"user:alice","policies":["prod-read"],"ttl":"30m0s","reason":"INC-42: checkout errors","state":"pending","created_at":"2030-01-01T10:00:00Z","expires_at":"2030-01-02T10:00:00Z"}`

func TestAccessCommands(t *testing.T) {
	h := newHarness(t, "kwt_granted")
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	h.fake.handle("POST /v1/access/requests", 201, accessJSON)
	h.fake.handle("GET /v1/access/requests", 200, `{"requests":[`+accessJSON+`]}`)
	h.fake.handle("POST /v1/access/requests/acr_abc/approve", 200, strings.Replace(accessJSON, `"pending"`, `"approved"`, 1))
	h.fake.handle("POST /v1/access/requests/acr_abc/token", 200, `{"token":"kwt_granted","accessor":"acc9","policies":["prod-read"],"principal":"user:alice","expires_at":"2030-01-01T10:30:00Z"}`)

	r := h.must("", "access", "request", "--policy", "prod-read", "--ttl", "30m", "--reason", "INC-42: checkout errors")
	if !strings.Contains(r.stdout, "Requested prod-read for 30m: acr_abc") || !strings.Contains(r.stderr, "keyward access approve acr_abc") {
		t.Fatalf("request: %q / %q", r.stdout, r.stderr)
	}
	body := bodyMap(t, h.fake.requests("POST /v1/access/requests")[0].Body)
	if body["ttl"] != "30m" || body["reason"] != "INC-42: checkout errors" {
		t.Fatalf("request body %v", body)
	}
	r = h.must("", "access", "list", "--state", "pending")
	if !strings.Contains(r.stdout, "acr_abc  pending  user:alice  prod-read  30m") {
		t.Fatalf("list:\n%s", r.stdout)
	}
	if q := h.fake.requests("GET /v1/access/requests")[0].Query; !strings.Contains(q, "state=pending") {
		t.Fatalf("list query %q", q)
	}
	r = h.must("", "access", "approve", "acr_abc", "--note", "ok")
	if !strings.Contains(r.stdout, "Approved user:alice's request acr_abc for prod-read (30m)") {
		t.Fatalf("approve: %q", r.stdout)
	}
	r = h.must("", "access", "token", "acr_abc", "-o", "json")
	var it map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &it); err != nil || it["token"] != "kwt_granted" {
		t.Fatalf("token json %q: %v", r.stdout, err)
	}
	for _, args := range [][]string{{"access", "request", "--policy", "x"}, {"access", "request", "--reason", "y"}, {"access", "approve"}} {
		if r := h.run("", args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, r.code, ExitUsage)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for in, want := range map[string]string{"1h0m0s": "1h", "30m0s": "30m", "1h30m0s": "1h30m", "12h0m0s": "12h", "1m30s": "1m30s", "x": "x"} {
		if got := shortDuration(in); got != want {
			t.Errorf("shortDuration(%q) = %q, want %q", in, got, want)
		}
	}
}

// --wait polls until the request is decided: approved, it prints the
// token; denied, it fails with the approver's note; still pending at the
// timeout, it says how to take the token later.
func TestAccessRequestWait(t *testing.T) {
	defer func(d time.Duration) { accessPollEvery = d }(accessPollEvery)
	accessPollEvery = 5 * time.Millisecond
	for _, tc := range []struct {
		final   string // the state the request reaches on the third read
		code    int
		stdout  string
		stderr  string
		timeout string
	}{
		{final: `"approved","decided_by":"user:bob","note":"ok for INC-42"`, stdout: `"token": "kwt_granted"`, stderr: "Approved by user:bob: ok for INC-42"},
		{final: `"denied","decided_by":"user:bob","note":"use staging"`, code: 1, stderr: "denied by user:bob: use staging"},
		{final: `"pending"`, code: 1, stderr: "still pending after 100ms; once approved, run: keyward access token acr_abc", timeout: "100ms"},
	} {
		h := newHarness(t, "kwt_granted")
		h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
		h.fake.handle("POST /v1/access/requests", 201, accessJSON)
		var reads atomic.Int32
		h.fake.mux.HandleFunc("GET /v1/access/requests/acr_abc", func(w http.ResponseWriter, r *http.Request) {
			body := accessJSON
			if reads.Add(1) >= 3 {
				body = strings.Replace(accessJSON, `"pending"`, tc.final, 1)
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		})
		h.fake.handle("POST /v1/access/requests/acr_abc/token", 200, `{"token":"kwt_granted","accessor":"acc9","policies":["prod-read"],"principal":"user:alice","expires_at":"2030-01-01T10:30:00Z"}`)
		args := []string{"access", "request", "--policy", "prod-read", "--reason", "INC-42", "--wait", "-o", "json"}
		if tc.timeout != "" {
			args = append(args, "--wait-timeout", tc.timeout)
		}
		r := h.run("", args...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", tc.final, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
		}
		if took := len(h.fake.requests("POST /v1/access/requests/acr_abc/token")); (tc.code == 0) != (took == 1) {
			t.Errorf("%s: the token was taken %d times", tc.final, took)
		}
	}
	h := newHarness(t)
	if r := h.run("", "access", "request", "--policy", "p", "--reason", "r", "--wait", "--wait-timeout", "0s"); r.code != ExitUsage {
		t.Errorf("--wait-timeout 0: exit %d, want usage", r.code)
	}
}
