package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
)

// fakeKeyward is a small stand-in for the server: handlers registered per
// ServeMux pattern, every request recorded, and a check that no credential
// the test names ever appears in a URL.
type fakeKeyward struct {
	t       *testing.T
	mux     *http.ServeMux
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []fakeRequest
	secrets []string // must never appear in a URL
}

type fakeRequest struct {
	Method, Path, Query, Auth, ContentType, Body string
}

func newFakeKeyward(t *testing.T, secrets ...string) *fakeKeyward {
	t.Helper()
	f := &fakeKeyward{t: t, mux: http.NewServeMux(), secrets: secrets}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.reqs = append(f.reqs, fakeRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(body)})
		f.mu.Unlock()
		for _, s := range f.secrets {
			if strings.Contains(r.URL.String(), s) {
				t.Errorf("a credential is in the URL %s", r.URL)
			}
		}
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// handle registers a handler that answers status with body (JSON).
func (f *fakeKeyward) handle(pattern string, status int, body string) {
	f.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
}

// requests returns the recorded requests matching "METHOD /path".
func (f *fakeKeyward) requests(route string) []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeRequest
	for _, r := range f.reqs {
		if r.Method+" "+r.Path == route {
			out = append(out, r)
		}
	}
	return out
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg, "request_id": "req-1"}})
}

func bodyMap(t *testing.T, body string) map[string]any {
	t.Helper()
	m := map[string]any{}
	if body == "" {
		return m
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("request body %q: %v", body, err)
	}
	return m
}

// harness runs keyward commands against a fake server with a private home
// directory.
type harness struct {
	t    *testing.T
	fake *fakeKeyward
	vars map[string]string
}

func newHarness(t *testing.T, secrets ...string) *harness {
	f := newFakeKeyward(t, secrets...)
	return &harness{t: t, fake: f, vars: map[string]string{"KEYWARD_ADDR": f.srv.URL, "HOME": t.TempDir()}}
}

type result struct {
	code           int
	stdout, stderr string
}

func (h *harness) run(stdin string, args ...string) result {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	env := &Env{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return h.vars[k] }}
	code := Run(env, args)
	return result{code, stdout.String(), stderr.String()}
}

// must runs a command that has to succeed.
func (h *harness) must(stdin string, args ...string) result {
	h.t.Helper()
	r := h.run(stdin, args...)
	if r.code != 0 {
		h.t.Fatalf("keyward %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func (h *harness) tokenFile() string {
	return tokenPath(&Env{Getenv: func(k string) string { return h.vars[k] }})
}

const issuedJSON = `{"token":"kwt_issuedtokenvalue","accessor":"acc123","policies":["dev","ops"],"expires_at":"2099-01-01T00:00:00Z","principal":"user:alice"}`

const tokenInfoJSON = `{"accessor":"acc123","principal":"user:alice","auth_method":"password","policies":["dev"],"ttl":"15m0s","renewable":true,"max_uses":5,"uses":2,"bound_cidrs":["10.0.0.0/8"],"created_at":"2030-01-01T00:00:00Z","expires_at":"2099-01-01T00:15:00Z"}`

func TestLoginSavesTokenFileAndLaterCommandsUseIt(t *testing.T) {
	h := newHarness(t, "hunter2pw", "kwt_issuedtokenvalue")
	h.vars["XDG_CONFIG_HOME"] = filepath.Join(h.vars["HOME"], "xdg")
	h.fake.mux.HandleFunc("POST /v1/auth/password/login", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m := bodyMap(t, string(b))
		if r.Header.Get("Authorization") != "" {
			t.Errorf("login sent a token")
		}
		if m["username"] != "alice" || m["password"] != "hunter2pw" {
			apiError(w, 401, "unauthenticated", "invalid credentials")
			return
		}
		io.WriteString(w, issuedJSON)
	})
	h.fake.mux.HandleFunc("GET /v1/auth/token/lookup-self", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer kwt_issuedtokenvalue" { // keyward:allow (test fixture)
			apiError(w, 401, "unauthenticated", "no token")
			return
		}
		io.WriteString(w, tokenInfoJSON)
	})

	r := h.must("hunter2pw\n", "login", "alice")
	path := filepath.Join(h.vars["XDG_CONFIG_HOME"], "keyward", "token")
	for _, want := range []string{"Logged in as user:alice", "dev, ops", "2099-01-01T00:00:00Z", "Token saved to " + path} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "hunter2pw") || strings.Contains(r.stdout+r.stderr, "kwt_issued") {
		t.Errorf("login printed the password or the token:\n%s\n%s", r.stdout, r.stderr)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	if dst, _ := os.Stat(filepath.Dir(path)); dst.Mode().Perm() != 0o700 {
		t.Errorf("token directory mode %v, want 0700", dst.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); strings.TrimSpace(string(b)) != "kwt_issuedtokenvalue" {
		t.Errorf("token file holds %q", b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("temporary files left beside the token: %v", ents)
	}

	// KEYWARD_TOKEN empty: the saved token is used.
	r = h.must("", "token", "lookup")
	if !strings.Contains(r.stdout, "acc123") || !strings.Contains(r.stdout, "2 of 5") {
		t.Errorf("lookup output:\n%s", r.stdout)
	}
	// KEYWARD_TOKEN wins over the file.
	h.vars["KEYWARD_TOKEN"] = "kwt_other"
	if r := h.run("", "token", "lookup"); r.code != 1 || !strings.Contains(r.stderr, "unauthenticated") {
		t.Errorf("with KEYWARD_TOKEN set: exit %d, stderr %q", r.code, r.stderr)
	}
	delete(h.vars, "KEYWARD_TOKEN")

	// A second login replaces the file atomically.
	h.must("hunter2pw\n", "login", "alice", "--password-stdin")
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("files beside the token after a second login: %v", ents)
	}

	// Wrong password: exit 1, nothing printed but the refusal.
	r = h.run("wrong\n", "login", "alice")
	if r.code != 1 || !strings.Contains(r.stderr, "invalid credentials") || strings.Contains(r.stderr, "wrong") {
		t.Errorf("wrong password: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestLoginTokenPathFallsBackToHome(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("POST /v1/auth/password/login", 200, issuedJSON)
	h.must("pw\n", "login", "alice")
	if _, err := os.Stat(filepath.Join(h.vars["HOME"], ".config", "keyward", "token")); err != nil {
		t.Fatalf("token not under $HOME/.config: %v", err)
	}
}

func TestLoginTOTP(t *testing.T) {
	h := newHarness(t, "pw-totp-user")
	h.fake.mux.HandleFunc("POST /v1/auth/password/login", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m := bodyMap(t, string(b))
		switch m["totp"] {
		case nil:
			apiError(w, 401, "totp_required", "a TOTP code is required")
		case "123456":
			io.WriteString(w, issuedJSON)
		default:
			apiError(w, 401, "unauthenticated", "invalid credentials")
		}
	})
	r := h.must("pw-totp-user\n123456\n", "login", "alice")
	if !strings.Contains(r.stderr, "TOTP code") {
		t.Errorf("no TOTP prompt: %q", r.stderr)
	}
	reqs := h.fake.requests("POST /v1/auth/password/login")
	if len(reqs) != 2 {
		t.Fatalf("%d login requests, want 2", len(reqs))
	}
	if m := bodyMap(t, reqs[1].Body); m["password"] != "pw-totp-user" || m["totp"] != "123456" {
		t.Errorf("retry body %v", m)
	}

	// --totp sends the code at once.
	h.must("pw-totp-user\n", "login", "alice", "--totp", "123456")
	if n := len(h.fake.requests("POST /v1/auth/password/login")); n != 3 {
		t.Errorf("%d login requests, want 3", n)
	}
	// No code on stdin: a clear failure.
	r = h.run("pw-totp-user\n", "login", "alice")
	if r.code != 1 || !strings.Contains(r.stderr, "TOTP") {
		t.Errorf("missing code: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestLoginRateLimited(t *testing.T) {
	h := newHarness(t)
	h.fake.mux.HandleFunc("POST /v1/auth/password/login", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		apiError(w, 429, "rate_limited", "too many failed login attempts; retry later")
	})
	r := h.run("pw\n", "login", "alice")
	if r.code != 1 || !strings.Contains(r.stderr, "retry after 30s") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(h.tokenFile()); !os.IsNotExist(err) {
		t.Errorf("a token file was written after a refused login: %v", err)
	}
}

func TestLoginServiceAndJWT(t *testing.T) {
	h := newHarness(t, "kws_clientsecret", "eyJhbGciOi.payload.sig")
	h.fake.handle("POST /v1/auth/service/login", 200, issuedJSON)
	h.fake.handle("POST /v1/auth/jwt/login", 200, issuedJSON)

	h.vars["KEYWARD_CLIENT_SECRET"] = "kws_clientsecret"
	h.must("", "login", "--service", "--client-id", "kwsvc-0123456789abcdef")
	m := bodyMap(t, h.fake.requests("POST /v1/auth/service/login")[0].Body)
	if m["client_id"] != "kwsvc-0123456789abcdef" || m["client_secret"] != "kws_clientsecret" {
		t.Errorf("service login body %v", m)
	}
	delete(h.vars, "KEYWARD_CLIENT_SECRET")
	h.must("kws_clientsecret\n", "login", "--service", "--client-id", "kwsvc-0123456789abcdef")
	if m := bodyMap(t, h.fake.requests("POST /v1/auth/service/login")[1].Body); m["client_secret"] != "kws_clientsecret" {
		t.Errorf("secret from stdin: %v", m)
	}

	jwtFile := filepath.Join(t.TempDir(), "id-token")
	os.WriteFile(jwtFile, []byte("eyJhbGciOi.payload.sig\n"), 0o600)
	r := h.must("", "login", "--jwt", "--issuer", "github", "--jwt-file", jwtFile, "--no-save", "-o", "json")
	m = bodyMap(t, h.fake.requests("POST /v1/auth/jwt/login")[0].Body)
	if m["issuer"] != "github" || m["jwt"] != "eyJhbGciOi.payload.sig" {
		t.Errorf("jwt login body %v", m)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out["token"] != "kwt_issuedtokenvalue" || out["token_file"] != nil {
		t.Errorf("--no-save -o json: %v %v", out, err)
	}
	h.vars["KEYWARD_JWT"] = "eyJhbGciOi.payload.sig"
	r = h.must("", "login", "--jwt", "--issuer", "github", "-o", "json")
	out = nil
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out["token"] != nil || out["token_file"] != h.tokenFile() {
		t.Errorf("saved -o json must not hold the token: %v %v", out, err)
	}
	r = h.must("", "login", "--jwt", "--issuer", "github", "--no-save")
	if !strings.Contains(r.stdout, "Token:     kwt_issuedtokenvalue") {
		t.Errorf("--no-save text: %q", r.stdout)
	}
}

func TestLogout(t *testing.T) {
	h := newHarness(t)
	h.fake.handle("POST /v1/auth/password/login", 200, issuedJSON)
	h.fake.mux.HandleFunc("POST /v1/auth/token/revoke-self", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer kwt_issuedtokenvalue" { // keyward:allow (test fixture)
			apiError(w, 401, "unauthenticated", "invalid token")
			return
		}
		io.WriteString(w, `{"revoked":3}`)
	})
	h.must("pw\n", "login", "alice")
	r := h.must("", "logout")
	if !strings.Contains(r.stdout, "Revoked 3 tokens") || !strings.Contains(r.stdout, "Deleted "+h.tokenFile()) {
		t.Errorf("logout output %q", r.stdout)
	}
	if _, err := os.Stat(h.tokenFile()); !os.IsNotExist(err) {
		t.Errorf("token file still there: %v", err)
	}
	if r := h.run("", "logout"); r.code != 1 || !strings.Contains(r.stderr, "not logged in") {
		t.Errorf("second logout: exit %d, stderr %q", r.code, r.stderr)
	}
	// A token the server no longer knows: the file is removed anyway.
	os.WriteFile(h.tokenFile(), []byte("kwt_stale\n"), 0o600)
	r = h.must("", "logout")
	if !strings.Contains(r.stdout, "already expired or been revoked") {
		t.Errorf("stale logout output %q", r.stdout)
	}
	if _, err := os.Stat(h.tokenFile()); !os.IsNotExist(err) {
		t.Errorf("stale token file still there: %v", err)
	}
}

func TestAuthUsageErrors(t *testing.T) {
	h := newHarness(t)
	for _, args := range [][]string{
		{"login"},
		{"login", "alice", "bob"},
		{"login", "--service"},
		{"login", "--service", "--jwt", "--client-id", "x", "--issuer", "y"},
		{"login", "--jwt"},
		{"login", "alice", "--client-id", "x"},
		{"login", "alice", "-o", "yaml"},
		{"logout", "extra"},
		{"token", "create", "--ttl", "soon"},
		{"token", "create", "--max-uses", "-1"},
		{"token", "renew", "--increment", "1 hour"},
		{"token", "lookup", "unexpected-arg"},
		{"token", "create", "--bogus"},
	} {
		if r := h.run("pw\n", args...); r.code != ExitUsage {
			t.Errorf("keyward %s: exit %d, want %d (stderr %q)", strings.Join(args, " "), r.code, ExitUsage, r.stderr)
		}
	}
	if n := len(h.fake.reqs); n != 0 {
		t.Errorf("usage errors made %d requests", n)
	}
}

func TestLineInput(t *testing.T) {
	in := newLineInput(&Env{Stdin: strings.NewReader("pass word\r\nsecond\nlast")})
	for _, want := range []string{"pass word", "second", "last"} {
		if got, err := in.line(); err != nil || got != want {
			t.Fatalf("line() = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := in.line(); err != errNoInput {
		t.Fatalf("after the end: %v", err)
	}
	long := strings.Repeat("x", maxInputLine+1)
	if _, err := newLineInput(&Env{Stdin: strings.NewReader(long)}).line(); err == nil {
		t.Fatal("an over-long line was accepted")
	}
	pw, err := newLineInput(&Env{Stdin: strings.NewReader("new-pass\n")}).newPassword(false)
	if err != nil || pw != "new-pass" {
		t.Fatalf("newPassword = %q, %v", pw, err)
	}
	if _, err := newLineInput(&Env{Stdin: strings.NewReader("\n")}).newPassword(true); err == nil {
		t.Fatal("an empty password was accepted")
	}
}

func TestAuthCommandsHaveExamples(t *testing.T) {
	root := NewRoot(&Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }})
	mine := map[string]bool{"login": true, "logout": true, "token": true, "user": true, "service": true, "issuer": true, "policy": true, "audit": true}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			t.Errorf("%q has no example in its help", c.CommandPath())
		}
		if c.Short == "" {
			t.Errorf("%q has no short help", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	for _, c := range root.Commands() {
		if mine[c.Name()] {
			walk(c)
		}
	}
}
