package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/policy"
	"github.com/keyward/keyward/internal/token"
)

const mapsKey = "AIzaSyD-gatewayTestKey-0123456789abcd" // keyward:allow (test fixture)

// recordingUpstream is a local API that records the headers and body
// sizes it received and echoes the credential back in a header, as some
// APIs do in their debug output.
type recordingUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	auth   []string
	all    []http.Header
	bodies []int
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.auth = append(u.auth, r.Header.Get("Authorization"))
		u.all = append(u.all, r.Header.Clone())
		u.bodies = append(u.bodies, int(n))
		u.mu.Unlock()
		w.Header().Set("X-Debug-Auth", r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"query":%q}`, r.URL.Path, r.URL.RawQuery)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) calls() (auth []string, headers []http.Header, bodies []int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.auth...), append([]http.Header(nil), u.all...), append([]int(nil), u.bodies...)
}

// TestGatewayEndToEnd runs a node with a real local upstream: an app token
// that may only proxy calls it; the upstream receives the injected key; the
// app never sees it; a rotation takes effect on the next call; every call
// is audited without the key.
func TestGatewayEndToEnd(t *testing.T) {
	r, root := devNode(t)
	n, u := r.node, r.url
	up := newRecordingUpstream(t)

	if code := call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "pay"}, nil); code != 201 {
		t.Fatalf("create project = %d", code)
	}
	if code := call(t, "PUT", u+"/v1/projects/pay/envs/prod/secrets/maps-key", root, map[string]string{"value": mapsKey}, nil); code != 200 {
		t.Fatalf("put secret = %d", code)
	}
	var created map[string]any
	code := call(t, "POST", u+"/v1/integrations", root, map[string]any{
		"name": "maps", "upstream": up.URL + "/maps/api", "secret": "pay/prod/maps-key",
		"inject": "header:Authorization=Bearer {{secret}}", "methods": []string{"GET", "POST"},
		"paths": []string{"/geocode/**"}, "timeout": "5s", "max_body_bytes": 2 << 20, "allow_private": true,
	}, &created)
	if code != 201 || created["upstream"] != up.URL+"/maps/api" || created["inject"] != "header:Authorization=Bearer {{secret}}" {
		t.Fatalf("create integration = %d %v", code, created)
	}
	if code := call(t, "POST", u+"/v1/integrations", root, map[string]any{"name": "maps", "upstream": up.URL,
		"secret": "pay/prod/maps-key", "inject": "query:key", "allow_private": true}, nil); code != 409 {
		t.Fatalf("second create = %d, want 409", code)
	}

	code, out := raw(t, "PUT", u+"/v1/policies/mobile-app", root, "application/yaml", `name: mobile-app
rules:
  - resources: ["integrations/maps"]
    allow: [proxy]
`)
	if code != 200 {
		t.Fatalf("put policy = %d %v", code, out)
	}
	app, _, err := n.tokens.Issue(t.Context(), token.Request{Principal: "app:mobile", AuthMethod: "token", Policies: []string{"mobile-app"}, TTL: 15 * time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}

	get := func(tok, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", u+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	noKey := func(resp *http.Response, body, key string) {
		t.Helper()
		for k, vs := range resp.Header {
			for _, v := range vs {
				if strings.Contains(v, key) {
					t.Errorf("response header %s carries the upstream key", k)
				}
			}
		}
		if strings.Contains(body, key) {
			t.Error("the response body carries the upstream key")
		}
	}

	resp, body := get(app, "/v1/gateway/maps/geocode/json?address=Berlin", map[string]string{"Connection": "Authorization"})
	firstLen, firstID := len(body), resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 || body != `{"path":"/maps/api/geocode/json","query":"address=Berlin"}` {
		t.Fatalf("gateway call = %d %s", resp.StatusCode, body)
	}
	noKey(resp, body, mapsKey)
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on a gateway response")
	}
	auth, headers, _ := up.calls()
	if len(auth) != 1 || auth[0] != "Bearer "+mapsKey {
		t.Fatalf("upstream Authorization = %q", auth)
	}
	for k, vs := range headers[0] {
		for _, v := range vs {
			if strings.Contains(v, app) {
				t.Errorf("the app's keyward token reached the upstream in %s", k)
			}
		}
	}

	// Policy: the app may call maps only, within its globs and methods.
	if code := call(t, "GET", u+"/v1/integrations/maps", app, nil, nil); code != 403 {
		t.Errorf("app reading the integration = %d, want 403", code)
	}
	for path, want := range map[string]int{
		"/v1/gateway/other/geocode/x": 403, "/v1/gateway/maps/admin": 403, "/v1/gateway/maps/geocode/../admin": 400,
		"/v1/gateway/maps/geocode/%2e%2e/admin": 400, "/v1/gateway/maps/geocode/..%2fadmin": 400, "/v1/gateway/maps/geocode/%252e%252e/admin": 400,
	} {
		resp, body := get(app, path, nil)
		var e struct {
			Error struct{ Code, RequestID string } `json:"error"`
		}
		if resp.StatusCode != want || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code == "" {
			t.Errorf("%s = %d %s, want %d and an error body", path, resp.StatusCode, body, want)
		}
	}
	if code := call(t, "DELETE", u+"/v1/gateway/maps/geocode/x", app, nil, nil); code != 405 {
		t.Errorf("DELETE through a GET/POST integration = %d, want 405", code)
	}

	// The proxy has its own body limit (2 MiB here), not the API's 1 MiB.
	post := func(size int) int {
		req, _ := http.NewRequest("POST", u+"/v1/gateway/maps/geocode/batch", bytes.NewReader(make([]byte, size)))
		req.Header.Set("Authorization", "Bearer "+app)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(3 << 19); code != 200 {
		t.Errorf("1.5 MiB body = %d, want 200", code)
	}
	if code := post(2<<20 + 1); code != 413 {
		t.Errorf("2 MiB + 1 body = %d, want 413", code)
	}
	if _, _, bodies := up.calls(); bodies[len(bodies)-1] != 3<<19 {
		t.Errorf("the upstream received %d bytes", bodies[len(bodies)-1])
	}

	// Rotation: the next call uses the new value.
	const rotated = "AIzaSyD-rotatedGatewayKey-9876543210zz" // keyward:allow (test fixture)
	if code := call(t, "PUT", u+"/v1/projects/pay/envs/prod/secrets/maps-key", root, map[string]string{"value": rotated}, nil); code != 200 {
		t.Fatalf("rotate = %d", code)
	}
	resp, body = get(app, "/v1/gateway/maps/geocode/json", nil)
	if auth, _, _ := up.calls(); resp.StatusCode != 200 || auth[len(auth)-1] != "Bearer "+rotated {
		t.Fatalf("after rotation: %d, upstream got %q", resp.StatusCode, auth[len(auth)-1])
	}
	noKey(resp, body, rotated)

	// Every call is audited, after it finished (asynchronously), without the key.
	var entries []audit.Entry
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err = n.auditLog.List(t.Context(), audit.Filter{ResourcePrefix: "integrations/maps", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		proxied := 0
		for _, e := range entries {
			if e.Action == "proxy" && e.Status == 200 {
				proxied++
			}
		}
		if proxied >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var first *audit.Entry
	for i := range entries {
		// Other requests' entries are interleaved: find the first call's by
		// its request id.
		if e := &entries[i]; e.Action == "proxy" && e.RequestID == firstID && first == nil {
			first = e
		}
	}
	if first == nil {
		t.Fatalf("no audit entry for the first call among %d", len(entries))
	}
	if first.Status != 200 || first.Principal != "app:mobile" || first.Detail["method"] != "GET" ||
		first.Detail["path"] != "/geocode/json" || first.Detail["bytes_out"] != fmt.Sprint(firstLen) || first.Detail["bytes_in"] != "0" || first.Outcome != "allowed" {
		t.Errorf("audit entry = %+v", first)
	}
	all, _ := json.Marshal(entries)
	if bytes.Contains(all, []byte(mapsKey)) || bytes.Contains(all, []byte(rotated)) || bytes.Contains(all, []byte(app)) {
		t.Error("the audit log holds the upstream key or the app token")
	}

	// An author who may not read the secret may not point an integration at it.
	if _, err := n.policies.Put(t.Context(), mustPolicy(t, `name: integrator
rules:
  - resources: ["integrations/**"]
    allow: [write, read, list]
`), "test", nil); err != nil {
		t.Fatal(err)
	}
	integrator, _, err := n.tokens.Issue(t.Context(), token.Request{Principal: "user:eve", AuthMethod: "token", Policies: []string{"integrator"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var refused map[string]any
	if code := call(t, "POST", u+"/v1/integrations", integrator, map[string]any{"name": "exfil", "upstream": "https://attacker.example",
		"secret": "pay/prod/maps-key", "inject": "query:k"}, &refused); code != 403 {
		t.Errorf("integration on an unreadable secret = %d %v, want 403", code, refused)
	}
	if code := call(t, "PUT", u+"/v1/integrations/maps", integrator, map[string]any{"upstream": "https://attacker.example",
		"secret": "pay/prod/maps-key", "inject": "query:k"}, nil); code != 403 {
		t.Errorf("re-pointing an integration on an unreadable secret = %d, want 403", code)
	}
	var list struct {
		Integrations []map[string]any `json:"integrations"`
	}
	if code := call(t, "GET", u+"/v1/integrations", integrator, nil, &list); code != 200 || len(list.Integrations) != 1 {
		t.Errorf("list = %d %v", code, list)
	}

	// Update, then delete: calls stop at once.
	if code := call(t, "PUT", u+"/v1/integrations/maps", root, map[string]any{"upstream": up.URL, "secret": "pay/prod/maps-key",
		"inject": "query:key", "allow_private": true}, nil); code != 200 {
		t.Fatalf("update = %d", code)
	}
	resp, body = get(app, "/v1/gateway/maps/anything", nil)
	if _, headers, _ := up.calls(); resp.StatusCode != 200 || headers[len(headers)-1].Get("Authorization") != "" || !strings.Contains(body, "key="+rotated) {
		t.Fatalf("after update = %d %s", resp.StatusCode, body)
	}
	if code := call(t, "DELETE", u+"/v1/integrations/maps", root, nil, nil); code != 204 {
		t.Fatalf("delete = %d", code)
	}
	if resp, _ := get(app, "/v1/gateway/maps/anything", nil); resp.StatusCode != 404 {
		t.Errorf("call after delete = %d, want 404", resp.StatusCode)
	}
}

func mustPolicy(t *testing.T, doc string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Header values with CR, LF or NUL never reach the upstream: Go's server
// refuses most of them, the gateway the rest.
func TestGatewayRefusesControlCharactersInHeaders(t *testing.T) {
	r, root := devNode(t)
	up := newRecordingUpstream(t)
	call(t, "POST", r.url+"/v1/projects", root, map[string]string{"name": "pay"}, nil)
	call(t, "PUT", r.url+"/v1/projects/pay/envs/prod/secrets/k", root, map[string]string{"value": mapsKey}, nil)
	if code := call(t, "POST", r.url+"/v1/integrations", root, map[string]any{"name": "api", "upstream": up.URL,
		"secret": "pay/prod/k", "inject": "header:X-Api-Key={{secret}}", "allow_private": true}, nil); code != 201 {
		t.Fatalf("create = %d", code)
	}
	addr := strings.TrimPrefix(r.url, "http://")
	send := func(header string) int {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /v1/gateway/api/x HTTP/1.1\r\nHost: keyward\r\nAuthorization: Bearer %s\r\n%s\r\nConnection: close\r\n\r\n", root, header)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", header, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send("X-Fine: yes"); code != 200 {
		t.Fatalf("control request = %d", code)
	}
	for _, h := range []string{"X-Custom: a\x00b", "X-Custom: a\rInjected: 1", "X-Custom: a\x7fb\x00", "X-Custom\x00: a"} {
		if code := send(h); code != 400 {
			t.Errorf("%q = %d, want 400", h, code)
		}
	}
	if _, headers, _ := up.calls(); len(headers) != 1 {
		t.Errorf("the upstream received %d requests, want only the control one", len(headers))
	}
	// An obsolete line folding is unfolded by Go's server into one value:
	// no line break reaches the upstream, and no header is injected.
	send("X-Custom: a\r\n Injected: folded")
	_, headers, _ := up.calls()
	last := headers[len(headers)-1]
	if last.Get("Injected") != "" || strings.ContainsAny(last.Get("X-Custom"), "\r\n") {
		t.Errorf("folded header reached the upstream as %q", last)
	}
}
