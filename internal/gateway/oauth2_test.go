package gateway

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

const clientSecret = "cs-9f8e:7d/6c+5b=a&x" // keyward:allow (test fixture)

// tokenServer is an OAuth 2.0 authorization server's token endpoint that
// issues at-1, at-2, ... to the client (client-id, clientSecret), checking
// the request as RFC 6749 §4.4 and §2.3.1 have it.
type tokenServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	answer  func(n int64, w http.ResponseWriter) // nil: a bearer token for 3600 s
	delay   time.Duration
	forms   []url.Values
	basic   []string
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ts.fetches.Add(1)
		time.Sleep(ts.delay)
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, `{"error":"invalid_request"}`, 400)
			return
		}
		r.ParseForm()
		ts.mu.Lock()
		ts.forms = append(ts.forms, r.PostForm)
		ts.basic = append(ts.basic, r.Header.Get("Authorization"))
		answer := ts.answer
		ts.mu.Unlock()
		id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		if u, p, ok := r.BasicAuth(); ok {
			id, _ = url.QueryUnescape(u)
			secret, _ = url.QueryUnescape(p)
		}
		if r.PostForm.Get("grant_type") != "client_credentials" || id != "client-id" || secret != clientSecret {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"invalid_client","error_description":"bad secret `+secret+`"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if answer != nil {
			answer(n, w)
			return
		}
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"Bearer","expires_in":3600}`, n)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) setAnswer(f func(n int64, w http.ResponseWriter)) {
	ts.mu.Lock()
	ts.answer = f
	ts.mu.Unlock()
}

func oauthHarness(t *testing.T, up *upstream, ts *tokenServer, o OAuth2) *harness {
	t.Helper()
	h := newHarness(t)
	h.secrets.set("crm/prod/client", clientSecret)
	if o.TokenURL == "" {
		o.TokenURL = ts.URL + "/oauth2/token"
	}
	if o.ClientID == "" {
		o.ClientID = "client-id"
	}
	h.integration(t, Integration{Name: "crm", Upstream: up.URL, Secret: "crm/prod/client", Inject: "oauth2", OAuth2: &o, AllowPrivate: true})
	return h
}

// body is the answer's body to a call of path through "crm".
func (h *harness) body(t *testing.T, path string) string {
	t.Helper()
	w, err := h.get(t, path)
	if err != nil {
		t.Fatal(err)
	}
	return w.Body.String()
}

func (h *harness) get(t *testing.T, path string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	w, _, err := h.call(t, httptest.NewRequest("GET", "/v1/gateway/crm"+path, nil))
	return w, err
}

func TestOAuth2FetchesOnceAndInjects(t *testing.T) {
	for _, style := range []string{"basic", "post"} {
		t.Run(style, func(t *testing.T) {
			ts := newTokenServer(t)
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Echo-Auth", r.Header.Get("Authorization"))
				w.Header().Set("X-Echo-Token", strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
				w.Header().Set("X-Echo-Secret", "s="+url.QueryEscape(clientSecret))
				w.Header().Set("X-Fine", "kept")
				io.WriteString(w, "ok")
			})
			h := oauthHarness(t, up, ts, OAuth2{Scopes: []string{"api", "refresh_token", "api"}, Audience: "https://crm.example/", AuthStyle: style})
			for i := range 3 {
				w, err := h.get(t, "/v1/accounts")
				if err != nil || w.Code != 200 {
					t.Fatalf("call %d: %d %v", i, w.Code, err)
				}
				for _, k := range []string{"X-Echo-Auth", "X-Echo-Token", "X-Echo-Secret"} {
					if v := w.Header().Get(k); v != "" {
						t.Errorf("response header %s carries the token or the client secret", k)
					}
				}
				if w.Header().Get("X-Fine") != "kept" {
					t.Error("an innocent response header was removed")
				}
			}
			if n := ts.fetches.Load(); n != 1 {
				t.Fatalf("%d token fetches for 3 calls, want 1", n)
			}
			for _, r := range up.requests() {
				if got := r.Header.Get("Authorization"); got != "Bearer at-1" {
					t.Fatalf("upstream saw Authorization %q", got)
				}
			}
			form, basic := ts.forms[0], ts.basic[0]
			if form.Get("scope") != "api refresh_token" || form.Get("audience") != "https://crm.example/" {
				t.Errorf("token request form %v", form)
			}
			switch style {
			case "basic":
				want := "Basic " + base64.StdEncoding.EncodeToString([]byte("client-id:"+url.QueryEscape(clientSecret)))
				if basic != want || form.Has("client_secret") {
					t.Errorf("basic: Authorization %q, form %v", basic, form)
				}
			case "post":
				if basic != "" || form.Get("client_id") != "client-id" || form.Get("client_secret") != clientSecret {
					t.Errorf("post: Authorization %q, form has client_id %q", basic, form.Get("client_id"))
				}
			}
		})
	}
}

// Concurrent first calls share one fetch.
func TestOAuth2OneFetchForConcurrentCalls(t *testing.T) {
	ts := newTokenServer(t)
	ts.delay = 50 * time.Millisecond
	up := newUpstream(t, nil)
	h := oauthHarness(t, up, ts, OAuth2{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 32 {
		wg.Go(func() {
			if w, err := h.get(t, "/x"); err != nil || w.Code != 200 {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 || ts.fetches.Load() != 1 {
		t.Fatalf("%d failed calls, %d fetches; want 0 and 1", failed.Load(), ts.fetches.Load())
	}
}

// A token is renewed before it expires; a 401 from the upstream drops it;
// a rotated client secret is used for the next fetch.
func TestOAuth2RenewalAndInvalidation(t *testing.T) {
	ts := newTokenServer(t)
	ts.setAnswer(func(n int64, w http.ResponseWriter) {
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"bearer","expires_in":"1"}`, n) // a string, as some servers send
	})
	deny := atomic.Bool{}
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if deny.Load() {
			w.WriteHeader(401)
			return
		}
		io.WriteString(w, r.Header.Get("Authorization"))
	})
	h := oauthHarness(t, up, ts, OAuth2{})
	body := func() string { t.Helper(); return h.body(t, "/x") }
	if got := body(); got != "Bearer at-1" {
		t.Fatalf("first call: %q", got)
	}
	// A 1 s token is renewed a fifth of its life early: after 0.8 s.
	time.Sleep(850 * time.Millisecond)
	if got := body(); got != "Bearer at-2" {
		t.Fatalf("after 0.85 s: %q, want a renewed token", got)
	}
	// A 401 drops only a token old enough.
	ts.setAnswer(nil) // 3600 s tokens from now on
	deny.Store(true)
	body()
	deny.Store(false)
	if got := body(); got != "Bearer at-2" {
		t.Fatalf("after a 401 to a young token: %q, want it kept", got)
	}
	defer func(d time.Duration) { minTokenAgeForDrop = d }(minTokenAgeForDrop)
	minTokenAgeForDrop = 0
	deny.Store(true)
	body()
	deny.Store(false)
	if got := body(); got != "Bearer at-3" {
		t.Fatalf("after a 401: %q, want a new token", got)
	}
	// A rotation: the old secret is refused from now on.
	h.secrets.set("crm/prod/client", "rotated-secret")
	h.proxy.SecretChanged("crm/prod/client")
	if _, err := h.get(t, "/x"); !errors.Is(err, ErrTokenUnavailable) {
		t.Fatalf("with a secret the token endpoint refuses: %v", err)
	}
	if n := ts.fetches.Load(); n != 4 {
		t.Fatalf("%d fetches, want 4", n)
	}
}

// A refused or unusable answer fails the call with the endpoint's status
// and OAuth error code only; no new fetch for a moment, then one.
func TestOAuth2TokenEndpointFailures(t *testing.T) {
	for name, tc := range map[string]struct {
		answer func(w http.ResponseWriter)
		want   string
	}{
		"refused":         {func(w http.ResponseWriter) { w.WriteHeader(400); io.WriteString(w, `{"error":"invalid_scope"}`) }, "400 (invalid_scope)"},
		"odd error code":  {func(w http.ResponseWriter) { w.WriteHeader(400); io.WriteString(w, `{"error":"<script>"}`) }, "400 (no OAuth error code)"},
		"not JSON":        {func(w http.ResponseWriter) { io.WriteString(w, `<html>`) }, "not a JSON token response"},
		"no token":        {func(w http.ResponseWriter) { io.WriteString(w, `{"token_type":"Bearer"}`) }, "no usable access_token"},
		"token with a LF": {func(w http.ResponseWriter) { io.WriteString(w, `{"access_token":"a\nb"}`) }, "no usable access_token"},
		"not bearer":      {func(w http.ResponseWriter) { io.WriteString(w, `{"access_token":"x","token_type":"mac"}`) }, `token_type "mac"`},
		"bad expires_in":  {func(w http.ResponseWriter) { io.WriteString(w, `{"access_token":"x","expires_in":-5}`) }, "expires_in"},
		"too large": {func(w http.ResponseWriter) {
			io.WriteString(w, `{"access_token":"x","pad":"`+strings.Repeat("a", maxTokenResponse)+`"}`)
		}, "larger than"},
	} {
		t.Run(name, func(t *testing.T) {
			ts := newTokenServer(t)
			ts.setAnswer(func(_ int64, w http.ResponseWriter) { tc.answer(w) })
			up := newUpstream(t, nil)
			h := oauthHarness(t, up, ts, OAuth2{})
			_, err := h.get(t, "/x")
			if !errors.Is(err, ErrTokenUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrTokenUnavailable mentioning %q", err, tc.want)
			}
			if _, err2 := h.get(t, "/x"); err2 == nil || ts.fetches.Load() != 1 {
				t.Fatalf("second call at once: %v after %d fetches; want the same failure, no new fetch", err2, ts.fetches.Load())
			}
			if len(up.requests()) != 0 {
				t.Fatal("the upstream was called without a token")
			}
		})
	}
	// A refused client: the description (which here echoes the secret) is
	// never shown.
	ts := newTokenServer(t)
	up := newUpstream(t, nil)
	h := oauthHarness(t, up, ts, OAuth2{ClientID: "other-client"})
	_, err := h.get(t, "/x")
	if !errors.Is(err, ErrTokenUnavailable) || !strings.Contains(err.Error(), "401 (invalid_client)") || strings.Contains(err.Error(), clientSecret) {
		t.Fatalf("err = %v", err)
	}
}

// The token endpoint passes the upstream's address checks: a private
// address is refused at dial time without allow_private.
func TestOAuth2TokenURLGuarded(t *testing.T) {
	ts := newTokenServer(t)
	h := newHarness(t)
	h.secrets.set("crm/prod/client", clientSecret)
	// A public upstream name, a token URL that resolves to loopback.
	u, _ := url.Parse(ts.URL)
	o := &OAuth2{TokenURL: "https://localhost:" + u.Port() + "/token", ClientID: "client-id"}
	h.integration(t, Integration{Name: "crm", Upstream: "https://crm.example.com", Secret: "crm/prod/client", Inject: "oauth2", OAuth2: o})
	_, err := h.get(t, "/x")
	if !errors.Is(err, ErrTokenUnavailable) || !errors.Is(err, ErrAddressBlocked) || ts.fetches.Load() != 0 {
		t.Fatalf("err = %v, fetches %d", err, ts.fetches.Load())
	}
}

func TestOAuth2Normalize(t *testing.T) {
	base := func() Integration {
		return Integration{Name: "crm", Upstream: "https://crm.example.com", Secret: "crm/prod/client", Inject: "oauth2",
			OAuth2: &OAuth2{TokenURL: "https://login.example.com/oauth2/token?api-version=1.0", ClientID: "abc"}}
	}
	in := base()
	in.OAuth2.Scopes = []string{"read", "write", "read"}
	if _, err := in.Normalize(); err != nil {
		t.Fatal(err)
	}
	if in.OAuth2.AuthStyle != "basic" || strings.Join(in.OAuth2.Scopes, ",") != "read,write" || in.Inject != "oauth2" {
		t.Fatalf("normalised to %+v", in.OAuth2)
	}
	for name, tc := range map[string]struct {
		edit func(*Integration)
		want string
	}{
		"no settings":          {func(in *Integration) { in.OAuth2 = nil }, "token_url and client_id"},
		"settings, not oauth2": {func(in *Integration) { in.Inject = "query:key" }, "inject is not oauth2"},
		"http token url":       {func(in *Integration) { in.OAuth2.TokenURL = "http://login.example.com/t" }, "token_url: http"},
		"user in token url":    {func(in *Integration) { in.OAuth2.TokenURL = "https://u:p@login.example.com/t" }, "no user"},
		"private token url":    {func(in *Integration) { in.OAuth2.TokenURL = "https://10.0.0.1/t" }, "internal address"},
		"fragment":             {func(in *Integration) { in.OAuth2.TokenURL = "https://login.example.com/t#x" }, "fragment"},
		"no client id":         {func(in *Integration) { in.OAuth2.ClientID = "" }, "client_id"},
		"client id with LF":    {func(in *Integration) { in.OAuth2.ClientID = "a\nb" }, "client_id"},
		"scope with space":     {func(in *Integration) { in.OAuth2.Scopes = []string{"a b"} }, "scope"},
		"too many scopes":      {func(in *Integration) { in.OAuth2.Scopes = make([]string, MaxScopes+1) }, "at most"},
		"auth style":           {func(in *Integration) { in.OAuth2.AuthStyle = "jwt" }, "auth_style"},
		"audience":             {func(in *Integration) { in.OAuth2.Audience = "\x00" }, "audience"},
	} {
		in := base()
		tc.edit(&in)
		_, err := in.Normalize()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, tc.want)
		}
	}
	// allow_private admits http and internal token URLs.
	in = base()
	in.AllowPrivate, in.OAuth2.TokenURL = true, "http://10.0.0.1:8080/token"
	if _, err := in.Normalize(); err != nil {
		t.Fatal(err)
	}
}

// The settings are stored and read back on every backend.
func TestOAuth2Stored(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s := NewService(st, nil)
		in := Integration{Name: "crm", Upstream: "https://crm.example.com", Secret: "crm/prod/client", Inject: "oauth2",
			OAuth2: &OAuth2{TokenURL: "https://login.example.com/token", ClientID: "abc", Scopes: []string{"api"}, Audience: "aud", AuthStyle: "post"}}
		if _, err := s.Create(t.Context(), in, "test", nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(t.Context(), "crm")
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(got.OAuth2)
		b, _ := json.Marshal(in.OAuth2)
		if string(a) != string(b) {
			t.Fatalf("stored %s, read back %s", b, a)
		}
		// Switching to another kind clears them.
		in.Inject, in.OAuth2 = "query:key", nil
		if _, err := s.Update(t.Context(), in, "test", nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(t.Context(), "crm"); got.OAuth2 != nil {
			t.Fatalf("oauth2 settings kept after switching to query: %+v", got.OAuth2)
		}
	})
}

// A token due for renewal but not expired is renewed behind the calls:
// they keep using it instead of waiting for the fetch.
func TestOAuth2RenewsBehindCalls(t *testing.T) {
	ts := newTokenServer(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Header.Get("Authorization")) })
	h := oauthHarness(t, up, ts, OAuth2{})
	body := func() string { t.Helper(); return h.body(t, "/x") }
	if got := body(); got != "Bearer at-1" {
		t.Fatalf("first call: %q", got)
	}
	// Make the token due for renewal; the next fetch is slow.
	c, err := h.svc.lookup(t.Context(), "crm")
	if err != nil {
		t.Fatal(err)
	}
	due := *c.cred.Load()
	due.renewAt = time.Now().Add(-time.Millisecond)
	c.cred.Store(&due)
	ts.delay = 300 * time.Millisecond
	start := time.Now()
	for range 5 {
		if got := body(); got != "Bearer at-1" {
			t.Fatalf("during the renewal: %q, want the current token", got)
		}
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Fatalf("calls waited %s for the renewal", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ts.fetches.Load() < 2 || c.cred.Load().renewAt.Before(time.Now()) {
		if time.Now().After(deadline) {
			t.Fatal("no renewal")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := body(); got != "Bearer at-2" {
		t.Fatalf("after the renewal: %q", got)
	}
	if n := ts.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (one renewal for five calls)", n)
	}
}
