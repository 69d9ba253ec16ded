package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Requests made with a token are counted per accessor, minute and status;
// /v1/usage reads the counts back and /metrics exports them by kind.
func TestUsageCountsTokenRequests(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	var child struct{ Token, Accessor string }
	if c := call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"ttl": "5m", "policies": []string{"default"}}, &child); c != 200 && c != 201 {
		t.Fatalf("child = %d", c)
	}
	for range 3 {
		if c, _ := raw(t, "GET", u+"/v1/auth/token/lookup-self", child.Token, "", ""); c != 200 {
			t.Fatalf("lookup-self = %d", c)
		}
	}
	if c, _ := raw(t, "GET", u+"/v1/audit", child.Token, "", ""); c != 403 {
		t.Fatalf("audit with a default token = %d, want 403", c)
	}
	if err := r.node.usage.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, out := raw(t, "GET", u+"/v1/usage?kind=token&subject="+child.Accessor+"&since=1h", root, "", "")
	if c != 200 {
		t.Fatalf("usage = %d %v", c, out)
	}
	byStatus := map[float64]float64{}
	for _, row := range out["usage"].([]any) {
		m := row.(map[string]any)
		byStatus[m["status"].(float64)] += m["count"].(float64)
	}
	if byStatus[200] != 3 || byStatus[403] != 1 {
		t.Errorf("usage by status = %v, want 3×200 and 1×403", byStatus)
	}
	// Bad queries are 400 and name the parameter.
	for q, want := range map[string]string{"kind=user": "kind", "subject=x": "subject", "since=yesterday": "since", "limit=0": "limit"} {
		if c, out := raw(t, "GET", u+"/v1/usage?"+q, root, "", ""); c != 400 || !strings.Contains(errMsg(out), want) {
			t.Errorf("usage?%s = %d %q, want 400 naming %q", q, c, errMsg(out), want)
		}
	}
	// Reading usage needs read on sys/usage.
	if c, _ := raw(t, "GET", u+"/v1/usage", child.Token, "", ""); c != 403 {
		t.Errorf("usage with a default token = %d, want 403", c)
	}
	resp, err := http.Get(u + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `keyward_credential_requests_total{kind="token",status="200"}`) {
		t.Errorf("metrics lack the token usage counter")
	}
}
