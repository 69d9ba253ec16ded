package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

const testKey = "sk_test_4eC39HqLyjWDarjtT1zdp7dc" // keyward:allow (test fixture)

// fakeSecrets is a SecretSource over a map, counting reads.
type fakeSecrets struct {
	mu      sync.Mutex
	values  map[string]string
	version map[string]int
	reads   int
}

func (f *fakeSecrets) set(ref, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[ref] = v
	f.version[ref]++
}

func (f *fakeSecrets) Current(_ context.Context, project, env, path string) ([]byte, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	ref := project + "/" + env + "/" + path
	v, ok := f.values[ref]
	if !ok {
		return nil, 0, errors.New("secret not found")
	}
	return []byte(v), f.version[ref], nil
}

// seen is one request an upstream received.
type seen struct {
	Method, Path, RawPath, Query, Host string
	Header                             http.Header
	Body                               []byte
}

// upstream is a local API that records what reaches it.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Header.Clone(), body})
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

type harness struct {
	svc     *Service
	proxy   *Proxy
	secrets *fakeSecrets
}

func newHarness(t testing.TB) *harness {
	st := storagetest.OpenSQLite(t, storage.Options{})
	svc := NewService(st, nil)
	src := &fakeSecrets{values: map[string]string{}, version: map[string]int{}}
	src.set("pay/prod/key", testKey)
	p := NewProxy(svc, src, TransportOptions{})
	t.Cleanup(p.Close)
	return &harness{svc: svc, proxy: p, secrets: src}
}

// integration creates name pointing at up (a local server, so allow_private).
func (h *harness) integration(t *testing.T, in Integration) {
	t.Helper()
	if in.Secret == "" {
		in.Secret = "pay/prod/key"
	}
	if in.Inject == "" {
		in.Inject = "header:Authorization=Bearer {{secret}}"
	}
	if _, err := h.svc.Create(t.Context(), in, "test", nil); err != nil {
		t.Fatal(err)
	}
}

// forward is what the HTTP edge does with an authorised call: Prepare, then
// Send (it spends the caller's limits in between).
func forward(p *Proxy, w http.ResponseWriter, r *http.Request, name, escapedPath string) (Call, error) {
	pc, err := p.Prepare(w, r, name, escapedPath)
	if err != nil {
		return Call{}, err
	}
	return p.Send(w, r, pc)
}

// call forwards a request for /v1/gateway/NAME/... as the HTTP edge would.
func (h *harness) call(t *testing.T, req *http.Request) (*httptest.ResponseRecorder, Call, error) {
	t.Helper()
	name, rest, _ := strings.Cut(strings.TrimPrefix(req.URL.EscapedPath(), "/v1/gateway/"), "/")
	w := httptest.NewRecorder()
	c, err := forward(h.proxy, w, req, name, "/"+rest)
	return w, c, err
}

func TestForwardInjectsAndStrips(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "hop-by-hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Request-Id", "upstream-id")
		w.Header().Set("X-Debug", "internal")
		w.WriteHeader(201)
		io.WriteString(w, "created")
	})
	h.integration(t, Integration{Name: "api", Upstream: up.URL + "/base", AllowPrivate: true, StripResponseHeaders: []string{"x-debug"}})

	req := httptest.NewRequest("POST", "/v1/gateway/api/v1/users/a%20b?x=1&y=%2F", strings.NewReader(`{"a":1}`))
	for k, v := range map[string]string{
		"Authorization": "Bearer kwt_callerToken", "Cookie": "session=abc", "DPoP": "proof", "X-Keyward-Token": "kwt_x",
		"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6", "Proxy-Authorization": "Basic x", "X-Real-Ip": "6.6.6.6",
		"Connection": "keep-alive, X-Secret-Hop", "X-Secret-Hop": "dropped", "Te": "trailers", "Upgrade": "websocket",
		"Content-Type": "application/json", "X-Custom": "kept", "User-Agent": "app/1.0",
	} {
		req.Header.Set(k, v)
	}
	w, c, err := h.call(t, req)
	if err != nil {
		t.Fatal(err)
	}
	if w.Code != 201 || w.Body.String() != "created" || c.Status != 201 || c.BytesIn != 7 || c.BytesOut != 7 || !c.Wrote {
		t.Fatalf("response %d %q, call %+v", w.Code, w.Body, c)
	}
	reqs := up.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d upstream requests", len(reqs))
	}
	got := reqs[0]
	if got.Method != "POST" || got.Path != "/base/v1/users/a b" || got.Query != "x=1&y=%2F" || string(got.Body) != `{"a":1}` {
		t.Errorf("upstream saw %s %s ?%s %q", got.Method, got.Path, got.Query, got.Body)
	}
	if a := got.Header.Values("Authorization"); len(a) != 1 || a[0] != "Bearer "+testKey {
		t.Errorf("upstream Authorization = %q", a)
	}
	for _, k := range []string{"Cookie", "Dpop", "X-Keyward-Token", "X-Forwarded-For", "Forwarded", "Proxy-Authorization", "X-Real-Ip", "X-Secret-Hop", "Te", "Upgrade"} {
		if v := got.Header.Get(k); v != "" {
			t.Errorf("upstream received %s: %q", k, v)
		}
	}
	if got.Header.Get("X-Custom") != "kept" || got.Header.Get("Content-Type") != "application/json" || got.Header.Get("User-Agent") != "app/1.0" {
		t.Errorf("end-to-end headers lost: %v", got.Header)
	}
	if !strings.HasPrefix(got.Host, "127.0.0.1:") {
		t.Errorf("upstream Host = %q", got.Host)
	}
	rh := w.Header()
	if rh.Get("X-Upstream") != "yes" || rh.Get("X-Hop") != "" || rh.Get("Keep-Alive") != "" || rh.Get("X-Request-Id") != "" || rh.Get("X-Debug") != "" {
		t.Errorf("response headers = %v", rh)
	}
}

// Connection: Authorization asks the proxy to drop Authorization as
// hop-by-hop. The caller's token is dropped; the injected key survives.
func TestConnectionHeaderCannotRemoveTheCredential(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, nil)
	h.integration(t, Integration{Name: "bearer", Upstream: up.URL, AllowPrivate: true})
	h.integration(t, Integration{Name: "apikey", Upstream: up.URL, AllowPrivate: true, Inject: "header:X-Api-Key={{secret}}"})
	for _, tc := range []struct{ name, header, conn string }{
		{"bearer", "Authorization", "Authorization"},
		{"bearer", "Authorization", "close, authorization"},
		{"apikey", "X-Api-Key", "X-Api-Key"},
	} {
		req := httptest.NewRequest("GET", "/v1/gateway/"+tc.name+"/x", nil)
		req.Header.Set("Authorization", "Bearer kwt_callerToken")
		req.Header.Set("X-Api-Key", "caller-supplied")
		req.Header["X_api_key"] = []string{"caller-supplied"}
		req.Header["X_keyward_token"] = []string{"kwt_callerToken"}
		req.Header.Set("Connection", tc.conn)
		if _, _, err := h.call(t, req); err != nil {
			t.Fatal(err)
		}
		reqs := up.requests()
		got := reqs[len(reqs)-1].Header
		want := testKey
		if tc.header == "Authorization" {
			want = "Bearer " + testKey
		}
		if v := got.Values(tc.header); len(v) != 1 || v[0] != want {
			t.Errorf("Connection: %s: upstream %s = %q", tc.conn, tc.header, v)
		}
		for k, vs := range got {
			for _, v := range vs {
				if strings.Contains(v, "callerToken") || tc.header == "X-Api-Key" && strings.Contains(v, "caller-supplied") {
					t.Errorf("the caller's credential reached the upstream in %s", k)
				}
			}
		}
	}
}

func TestForwardRefusesCRLFAndNULInHeaders(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, nil)
	h.integration(t, Integration{Name: "api", Upstream: up.URL, AllowPrivate: true})
	for _, v := range []string{"a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b"} {
		req := httptest.NewRequest("GET", "/v1/gateway/api/x", nil)
		req.Header["X-Custom"] = []string{v}
		_, c, err := h.call(t, req)
		if !errors.Is(err, ErrBadHeader) || c.Wrote {
			t.Errorf("header %q: %v", v, err)
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("the upstream got %d requests", n)
	}
}

func TestForwardRefusesEscapingPaths(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, nil)
	h.integration(t, Integration{Name: "api", Upstream: up.URL, AllowPrivate: true, Paths: []string{"/public/**"}, Methods: []string{"GET"}})
	for _, p := range []string{
		"/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2e/admin", "/public/.%2e/admin", "/public/..%2fadmin",
		"/public%2f..%2fadmin", "/public/%2fadmin", "/public/..%5cadmin", "/public/%5c..%5cadmin",
		"/public/%252e%252e/admin", "/public/%252fadmin", "/public/%25252e%25252e/admin", "/public/..;/admin",
		"/public//admin", "/public/./x", "/public/%c0%ae%c0%ae/admin",
	} {
		req := httptest.NewRequest("GET", "/v1/gateway/api/x", nil)
		w := httptest.NewRecorder()
		_, err := forward(h.proxy, w, req, "api", p)
		if !errors.Is(err, ErrBadPath) {
			t.Errorf("%s: %v, want ErrBadPath", p, err)
		}
	}
	for _, p := range []string{"/admin", "/", "/publicx/a", "/Public/a"} {
		_, err := forward(h.proxy, httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), "api", p)
		if !errors.Is(err, ErrPathNotAllowed) {
			t.Errorf("%s: %v, want ErrPathNotAllowed", p, err)
		}
	}
	w := httptest.NewRecorder()
	if _, err := forward(h.proxy, w, httptest.NewRequest("DELETE", "/", nil), "api", "/public/a"); !errors.Is(err, ErrMethodNotAllowed) || w.Header().Get("Allow") != "GET" {
		t.Errorf("DELETE: %v (Allow %q)", err, w.Header().Get("Allow"))
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("the upstream got %d requests", n)
	}
	// An encoded character that is not a separator goes through, encoded as sent.
	if _, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/api/public/a%20b/%75", nil)); err != nil {
		t.Fatal(err)
	}
	if got := up.requests()[0]; got.Path != "/public/a b/u" || got.RawPath != "/public/a%20b/%75" {
		t.Errorf("upstream path %q (raw %q)", got.Path, got.RawPath)
	}
}

func TestForwardBodyLimit(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, nil)
	h.integration(t, Integration{Name: "api", Upstream: up.URL, AllowPrivate: true, MaxBodyBytes: 1000})
	// Declared too large: refused before any dial.
	req := httptest.NewRequest("POST", "/v1/gateway/api/x", bytes.NewReader(make([]byte, 1001)))
	if _, _, err := h.call(t, req); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("declared 1001 bytes: %v", err)
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("the upstream got %d requests", n)
	}
	// Chunked (no length): stopped at the limit while streaming.
	req = httptest.NewRequest("POST", "/v1/gateway/api/x", io.MultiReader(bytes.NewReader(make([]byte, 600)), bytes.NewReader(make([]byte, 600))))
	req.ContentLength = -1
	if _, _, err := h.call(t, req); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("chunked 1200 bytes: %v", err)
	}
	for _, r := range up.requests() {
		if len(r.Body) > 1000 {
			t.Errorf("the upstream received %d body bytes", len(r.Body))
		}
	}
	// Exactly the limit passes.
	req = httptest.NewRequest("POST", "/v1/gateway/api/x", io.LimitReader(strings.NewReader(strings.Repeat("a", 2000)), 1000))
	req.ContentLength = -1
	if w, c, err := h.call(t, req); err != nil || w.Code != 200 || c.BytesIn != 1000 {
		t.Fatalf("1000 bytes: %v %d %+v", err, w.Code, c)
	}
}

func TestForwardUpstreamDownAndSlow(t *testing.T) {
	h := newHarness(t)
	// Down: a port nobody listens on any more.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h.integration(t, Integration{Name: "down", Upstream: "http://" + addr, AllowPrivate: true})
	if _, c, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/down/x", nil)); !errors.Is(err, ErrUpstreamUnavailable) || c.Wrote {
		t.Fatalf("down: %v", err)
	}

	// Slow: answers only when the test ends.
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	defer close(release)
	const timeout = 100 * time.Millisecond
	h.integration(t, Integration{Name: "slow", Upstream: up.URL, AllowPrivate: true, Timeout: Duration(timeout)})
	start := time.Now()
	_, c, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/slow/x", nil))
	if !errors.Is(err, ErrUpstreamTimeout) || c.Wrote {
		t.Fatalf("slow: %v", err)
	}
	if el := time.Since(start); el < timeout {
		t.Errorf("gave up after %s, before the %s timeout", el, timeout)
	}
}

// A redirect is returned to the caller, not followed: the credential never
// reaches the other host, and a Location carrying it is removed.
func TestForwardDoesNotFollowRedirects(t *testing.T) {
	h := newHarness(t)
	other := newUpstream(t, nil)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		target := other.URL + "/landing"
		if r.URL.Path == "/leak" {
			target += "?" + r.URL.RawQuery // echoes the injected query credential
		}
		http.Redirect(w, r, target, http.StatusFound)
	})
	h.integration(t, Integration{Name: "hdr", Upstream: up.URL, AllowPrivate: true})
	h.integration(t, Integration{Name: "qry", Upstream: up.URL, AllowPrivate: true, Inject: "query:key"})

	w, c, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/hdr/go", nil))
	if err != nil || w.Code != http.StatusFound || c.Status != http.StatusFound || w.Header().Get("Location") != other.URL+"/landing" {
		t.Fatalf("redirect: %v %d Location %q", err, w.Code, w.Header().Get("Location"))
	}
	w, _, err = h.call(t, httptest.NewRequest("GET", "/v1/gateway/qry/leak?a=1", nil))
	if err != nil || w.Code != http.StatusFound {
		t.Fatalf("redirect with the key: %v %d", err, w.Code)
	}
	if loc := w.Header().Get("Location"); loc != "" {
		t.Errorf("a Location holding the credential reached the caller: %q", loc)
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("the other host received %d requests", n)
	}
	if got := up.requests(); len(got) != 2 || got[1].Query != "a=1&key="+testKey {
		t.Errorf("upstream requests = %+v", got)
	}
}

func TestForwardStripsEchoedCredential(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo-Auth", r.Header.Get("Authorization"))
		w.Header().Set("X-Debug-Key", "key="+strings.TrimPrefix(r.URL.Query().Get("key"), ""))
		w.Header().Add("Set-Cookie", "k="+testKey)
		w.Header().Add("Set-Cookie", "other=1")
		w.Header().Set("X-B64", "dXNlcjpzZWNyZXQ=") // harmless, not ours
		w.Header().Set("X-Fine", "fine")
		io.WriteString(w, "body")
	})
	h.integration(t, Integration{Name: "hdr", Upstream: up.URL, AllowPrivate: true})
	h.integration(t, Integration{Name: "basic", Upstream: up.URL, AllowPrivate: true, Inject: "basic:api"})
	h.integration(t, Integration{Name: "qry", Upstream: up.URL, AllowPrivate: true, Inject: "query:key"})
	for _, name := range []string{"hdr", "basic", "qry"} {
		w, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/"+name+"/x", nil))
		if err != nil || w.Code != 200 {
			t.Fatalf("%s: %v %d", name, err, w.Code)
		}
		for k, vs := range w.Header() {
			for _, v := range vs {
				if strings.Contains(v, testKey) || (name == "basic" && strings.Contains(v, "YXBpOnNr")) {
					t.Errorf("%s: response header %s carries the credential", name, k)
				}
			}
		}
		if w.Header().Get("X-Fine") != "fine" || w.Header().Get("X-B64") == "" {
			t.Errorf("%s: unrelated headers were removed: %v", name, w.Header())
		}
		if len(w.Header().Values("Set-Cookie")) != 0 {
			t.Errorf("%s: Set-Cookie with the credential kept: %q", name, w.Header().Values("Set-Cookie"))
		}
	}
}

// Without allow_private, a name resolving to loopback is refused when the
// connection is made, and the upstream never hears of it.
func TestForwardRefusesPrivateAddressesAtDial(t *testing.T) {
	h := newHarness(t)
	var hits int
	var mu sync.Mutex
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	h.integration(t, Integration{Name: "local", Upstream: "https://localhost:" + port})
	_, c, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/local/x", nil))
	if !errors.Is(err, ErrUpstreamUnavailable) || !errors.Is(err, ErrAddressBlocked) || c.Wrote {
		t.Fatalf("loopback upstream: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the upstream received %d requests", hits)
	}
}

func TestForwardUsesTheRotatedSecret(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, nil)
	h.integration(t, Integration{Name: "api", Upstream: up.URL, AllowPrivate: true})
	get := func() string {
		t.Helper()
		if _, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/api/x", nil)); err != nil {
			t.Fatal(err)
		}
		reqs := up.requests()
		return reqs[len(reqs)-1].Header.Get("Authorization")
	}
	if got := get(); got != "Bearer "+testKey {
		t.Fatalf("first call: %q", got)
	}
	get()
	if h.secrets.reads != 1 {
		t.Errorf("the secret was read %d times for two calls, want 1 (cached)", h.secrets.reads)
	}
	const rotated = "sk_test_rotatedRotatedRotated00" // keyward:allow (test fixture)
	h.secrets.set("pay/prod/key", rotated)
	h.proxy.SecretChanged("pay/prod/key")
	if got := get(); got != "Bearer "+rotated {
		t.Errorf("after the rotation: %q", got)
	}
	// A secret that cannot be injected fails the call without revealing it.
	h.secrets.set("pay/prod/key", "line1\nline2")
	h.proxy.SecretChanged("pay/prod/key")
	_, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/api/x", nil))
	if !errors.Is(err, ErrSecretUnavailable) || strings.Contains(err.Error(), "line1") {
		t.Errorf("secret with a newline: %v", err)
	}
}

func TestForwardQueryInjection(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, nil)
	h.integration(t, Integration{Name: "api", Upstream: up.URL, AllowPrivate: true, Inject: "query:key"})
	for query, want := range map[string]string{
		"":                        "key=" + testKey,
		"a=1":                     "a=1&key=" + testKey,
		"key=evil&a=1":            "a=1&key=" + testKey,
		"%6Bey=evil&key=x&b=%2F2": "b=%2F2&key=" + testKey,
	} {
		if _, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/api/x?"+query, nil)); err != nil {
			t.Fatalf("?%s: %v", query, err)
		}
		reqs := up.requests()
		if got := reqs[len(reqs)-1].Query; got != want {
			t.Errorf("?%s: upstream query %q, want %q", query, got, want)
		}
	}
	for _, query := range []string{"a=1;key=evil", "%zz=1"} {
		if _, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/api/x?"+query, nil)); !errors.Is(err, ErrBadQuery) {
			t.Errorf("?%s: %v", query, err)
		}
	}
}

func TestForwardErrorsNeverCarryTheCredential(t *testing.T) {
	h := newHarness(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	h.integration(t, Integration{Name: "down", Upstream: "http://" + addr, AllowPrivate: true, Inject: "query:key"})
	_, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/down/x", nil))
	if err == nil || strings.Contains(err.Error(), testKey) || strings.Contains(fmt.Sprintf("%+v", err), testKey) {
		t.Errorf("error = %v", err)
	}
}

func TestResolvedSecretsNeverPrint(t *testing.T) {
	e := &secretEntry{value: testKey, version: 3}
	cr := &credential{entry: e, value: "Bearer " + testKey, needles: []string{testKey}}
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	log.Info("x", "entry", e, "cred", cr, "v", *cr)
	for _, s := range []string{fmt.Sprint(e), fmt.Sprintf("%+v", cr), fmt.Sprintf("%#v", *cr), fmt.Sprintf("%v", *e), logged.String()} {
		if strings.Contains(s, testKey) {
			t.Errorf("the secret printed: %s", s)
		}
	}
}

// Prepare checks a call against the integration and sends nothing, reads
// no secret; Send makes the call Prepare accepted.
func TestPrepareChecksWithoutSending(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, nil)
	h.integration(t, Integration{Name: "api", Upstream: up.URL, AllowPrivate: true, Methods: []string{"GET"}, Paths: []string{"/v1/**"}, MaxBodyBytes: 10})
	for _, c := range []struct {
		method, path string
		length       int64
		want         error
	}{
		{"GET", "/v2/x", 0, ErrPathNotAllowed},
		{"POST", "/v1/x", 0, ErrMethodNotAllowed},
		{"GET", "/v1/%2e%2e/x", 0, ErrBadPath},
		{"GET", "/v1/x", 11, ErrTooLarge},
	} {
		req := httptest.NewRequest(c.method, "/v1/gateway/api"+c.path, nil)
		req.ContentLength = c.length
		if _, err := h.proxy.Prepare(httptest.NewRecorder(), req, "api", c.path); !errors.Is(err, c.want) {
			t.Errorf("prepare %s %s: %v, want %v", c.method, c.path, err, c.want)
		}
	}
	if _, err := h.proxy.Prepare(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), "nope", "/v1/x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown integration: %v", err)
	}
	req := httptest.NewRequest("GET", "/v1/gateway/api/v1/x", nil)
	w := httptest.NewRecorder()
	pc, err := h.proxy.Prepare(w, req, "api", "/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(up.requests()); n != 0 || h.secrets.reads != 0 {
		t.Fatalf("prepare sent %d requests and read the secret %d times", n, h.secrets.reads)
	}
	if c, err := h.proxy.Send(w, req, pc); err != nil || c.Status != 200 || len(up.requests()) != 1 {
		t.Fatalf("send = %+v %v", c, err)
	}
}

// Rate-limit headers keyward set on the response before Send win over the
// upstream's, none of which is kept; without them the upstream's pass.
func TestKeywardRateLimitHeadersWin(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit-Limit", "5000")
		w.Header().Set("RateLimit-Remaining", "4999")
		w.Header().Set("RateLimit-Reset", "3600")
		w.Header().Set("RateLimit-Policy", "5000;w=3600")
		w.Header().Set("RateLimit", `"default";r=4999;t=3600`)
		w.Header().Set("X-RateLimit-Remaining", "4999")
		io.WriteString(w, "ok")
	})
	h.integration(t, Integration{Name: "api", Upstream: up.URL, AllowPrivate: true})

	w := httptest.NewRecorder()
	w.Header().Set("RateLimit-Limit", "10")
	w.Header().Set("RateLimit-Remaining", "7")
	w.Header().Set("RateLimit-Reset", "2")
	w.Header().Set("RateLimit-Policy", "10;w=60")
	if _, err := forward(h.proxy, w, httptest.NewRequest("GET", "/v1/gateway/api/x", nil), "api", "/x"); err != nil {
		t.Fatal(err)
	}
	got := w.Result().Header
	for k, want := range map[string]string{"RateLimit-Limit": "10", "RateLimit-Remaining": "7", "RateLimit-Reset": "2",
		"RateLimit-Policy": "10;w=60", "RateLimit": "", "X-RateLimit-Remaining": "4999"} {
		if vs := got.Values(k); want == "" && len(vs) != 0 || want != "" && (len(vs) != 1 || vs[0] != want) {
			t.Errorf("%s = %q, want %q", k, vs, want)
		}
	}

	w = httptest.NewRecorder()
	if _, err := forward(h.proxy, w, httptest.NewRequest("GET", "/v1/gateway/api/x", nil), "api", "/x"); err != nil {
		t.Fatal(err)
	}
	if got := w.Result().Header; got.Get("RateLimit-Limit") != "5000" || got.Get("RateLimit") == "" {
		t.Fatalf("without keyward's headers the upstream's pass through: %v", got)
	}
}

// The answer reaches the caller when the body ends, not when the edge has
// done its bookkeeping: a body of known length is flushed once at its end,
// one of unknown length after each write.
func TestForwardFlushesTheWholeAnswer(t *testing.T) {
	h := newHarness(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.Write([]byte("part"))
			w.(http.Flusher).Flush() // no Content-Length: chunked
			w.Write([]byte("rest"))
			return
		}
		w.Header().Set("Content-Length", "5")
		w.Write([]byte("whole"))
	})
	h.integration(t, Integration{Name: "api", Upstream: up.URL, AllowPrivate: true})
	for path, body := range map[string]string{"/fixed": "whole", "/chunked": "partrest"} {
		w, c, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/api"+path, nil))
		if err != nil || w.Body.String() != body || c.BytesOut != int64(len(body)) {
			t.Fatalf("%s: %q, %+v, %v", path, w.Body.String(), c, err)
		}
		if !w.Flushed {
			t.Errorf("%s: the answer was not flushed when its body ended", path)
		}
	}
}

// keyward answers CORS itself (--cors-origins): an upstream's
// Access-Control-* headers never reach the caller, and its Vary adds to
// keyward's "Vary: Origin" instead of replacing it.
func TestUpstreamCORSHeadersDropped(t *testing.T) {
	dst := http.Header{"Access-Control-Allow-Origin": {"https://app.example"}, "Vary": {"Origin"}}
	src := http.Header{"Access-Control-Allow-Origin": {"*"}, "Access-Control-Allow-Credentials": {"true"},
		"Access-Control-Expose-Headers": {"X-Internal"}, "Vary": {"Accept-Encoding"}, "Content-Type": {"text/plain"}}
	copyResponseHeader(dst, src, nil, nil)
	if got := dst.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app.example" {
		t.Errorf("Access-Control-Allow-Origin = %q", got)
	}
	for _, k := range []string{"Access-Control-Allow-Credentials", "Access-Control-Expose-Headers"} {
		if v := dst.Get(k); v != "" {
			t.Errorf("%s = %q, want none", k, v)
		}
	}
	if got := strings.Join(dst.Values("Vary"), ","); got != "Origin,Accept-Encoding" {
		t.Errorf("Vary = %q", got)
	}
	if dst.Get("Content-Type") != "text/plain" {
		t.Error("Content-Type lost")
	}
	// Without keyward's CORS: none of the upstream's either.
	dst = http.Header{}
	copyResponseHeader(dst, src, nil, nil)
	if v := dst.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("the upstream's Access-Control-Allow-Origin %q reached the caller", v)
	}
}
