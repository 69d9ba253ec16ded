package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

type macFunc func(purpose string, data []byte) []byte

func (f macFunc) MAC(purpose string, data []byte) []byte { return f(purpose, data) }

type allowAll struct{}

func (allowAll) Decide(*Caller, string, string) (bool, string) { return true, "test" }

// keysAPI serves the key routes over a SQLite store with one key, test
// fixture "plain", that every caller may read.
func keysAPI(t testing.TB) (api *API, plain string) {
	t.Helper()
	svc := apikey.New(storagetest.OpenSQLite(t, storage.Options{}), macFunc(func(p string, d []byte) []byte {
		m := hmac.New(sha256.New, []byte("test/"+p))
		m.Write(d)
		return m.Sum(nil)
	}), apikey.Options{})
	plain, _, err := svc.Create(context.Background(), apikey.CreateRequest{Project: "shop", Env: "prod", Name: "n",
		Scopes: []string{"integrations/maps"}, Quota: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewErrorMapper()
	MapKeyErrors(m)
	return New(Deps{Auth: fakeAuth{token: "tok"}, Authz: allowAll{}, Errors: m}, (&Keys{Svc: svc, Authz: allowAll{}}).Routes()), plain
}

// Whatever the body, verify answers 200 with a known code or a 4xx error
// object, never a 5xx, and reports valid only for the real key.
func FuzzVerifyRequest(f *testing.F) {
	api, plain := keysAPI(f)
	for _, s := range []string{
		`{"key":"` + plain + `"}`, `{"key":"` + plain + `","consume":false,"resource":"integrations/maps","source_addr":"10.0.0.1"}`,
		`{}`, `{"key":""}`, `{"key":5}`, `[]`, `null`, `{"key":"kwk_x"}`, `{"key":"x","source_addr":"::1%eth0"}`,
		`{"key":"a"}{"key":"b"}`, `{"key":"` + plain + `","resource":"` + strings.Repeat("a/", 600) + `"}`,
	} {
		f.Add(s)
	}
	codes := map[string]bool{VerifyValid: true, VerifyNotFound: true, VerifyExpired: true, VerifyRevoked: true,
		VerifyRateLimited: true, VerifyUsageExceeded: true, VerifyForbidden: true, VerifyDisabled: true}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/v1/keys/verify", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%q: %d, not JSON: %q", body, rec.Code, rec.Body.String())
		}
		switch {
		case rec.Code == http.StatusOK:
			code, _ := out["code"].(string)
			if !codes[code] {
				t.Fatalf("%q: unknown code %v", body, out)
			}
			var in VerifyKeyRequest
			if out["valid"] == true && (json.Unmarshal([]byte(body), &in) != nil || in.Key != plain) {
				t.Fatalf("%q: valid without the key", body)
			}
		case rec.Code >= 400 && rec.Code < 500:
			if _, ok := out["error"].(map[string]any); !ok {
				t.Fatalf("%q: %d without an error object: %v", body, rec.Code, out)
			}
		default:
			t.Fatalf("%q: status %d %v", body, rec.Code, out)
		}
	})
}

func TestVerifyRequestShape(t *testing.T) {
	api, plain := keysAPI(t)
	do := func(body string) (int, map[string]any) {
		req := httptest.NewRequest("POST", "/v1/keys/verify", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		var out map[string]any
		json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	if c, out := do(`{"key":"` + plain + `","resource":"integrations/maps"}`); c != 200 || out["valid"] != true || out["environment_kind"] != "live" ||
		out["remaining"] != float64(999) {
		t.Fatalf("valid = %d %v", c, out)
	}
	if c, out := do(`{"key":"` + plain + `","consume":false}`); c != 200 || out["remaining"] != float64(999) {
		t.Fatalf("peek = %d %v", c, out)
	}
	for body, want := range map[string]string{`{}`: "key is required", `{"key":"x","source_addr":"nope"}`: "source_addr",
		`{"key":"x","bogus":true}`: "bogus", `not json`: "JSON"} {
		c, out := do(body)
		msg, _ := out["error"].(map[string]any)["message"].(string)
		if c != 400 || !strings.Contains(msg, want) {
			t.Errorf("%s = %d %q, want 400 naming %q", body, c, msg, want)
		}
	}
}

// Whatever the body, PATCH .../keys/{id} answers 200 or a 4xx error
// object, never a 5xx; a 4xx leaves the stored key as it was, and a 200
// answers the key as stored.
func FuzzUpdateKeyRequest(f *testing.F) {
	st := storagetest.OpenSQLite(f, storage.Options{})
	svc := apikey.New(st, macFunc(func(p string, d []byte) []byte {
		m := hmac.New(sha256.New, []byte("test/"+p))
		m.Write(d)
		return m.Sum(nil)
	}), apikey.Options{})
	_, k, err := svc.Create(context.Background(), apikey.CreateRequest{Project: "shop", Env: "prod", Name: "n",
		Scopes: []string{"integrations/maps"}, Quota: 1000, Refill: apikey.Refill{Period: "monthly"}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	m := NewErrorMapper()
	MapKeyErrors(m)
	api := New(Deps{Auth: fakeAuth{token: "tok"}, Authz: allowAll{}, Errors: m}, (&Keys{Svc: svc, Authz: allowAll{}}).Routes())
	for _, s := range []string{
		`{"quota":5000,"rate":"10/min","cidrs":["10.0.0.0/8"],"ttl":"30d"}`, `{"remaining":3}`, `{"rate":"","cidrs":[],"ttl":"never"}`,
		`{"quota":0}`, `{"refill":"daily","refill_amount":7}`, `{"scopes":["integrations/*"],"meta":{"a":"b"},"name":"x","owner":"y"}`,
		`{}`, `[]`, `null`, `{"quota":-1}`, `{"quota":1e30}`, `{"meta":{}}`, `{"ttl":"0s"}`, `{"refill_amount":1}`,
		`{"name":"a"}{"name":"b"}`, `{"scopes":[""]}`, `{"cidrs":["::1%eth0"]}`,
	} {
		f.Add(s)
	}
	path := "/v1/projects/shop/envs/prod/keys/" + k.ID
	now := time.Now()
	f.Fuzz(func(t *testing.T, body string) {
		before, err := svc.Get(context.Background(), "shop", "prod", k.ID)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("PATCH", path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		after, err := svc.Get(context.Background(), "shop", "prod", k.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case rec.Code == http.StatusOK:
			var got KeyInfo
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.ID != k.ID {
				t.Fatalf("%q: 200 with %q", body, rec.Body.String())
			}
			want, _ := json.Marshal(NewKeyInfo(after, time.Now()))
			gotJSON, _ := json.Marshal(&got)
			if string(gotJSON) != string(want) {
				t.Fatalf("%q: answered %s, stored %s", body, gotJSON, want)
			}
		case rec.Code >= 400 && rec.Code < 500:
			var out map[string]any
			if json.Unmarshal(rec.Body.Bytes(), &out) != nil || out["error"] == nil {
				t.Fatalf("%q: %d without an error object: %q", body, rec.Code, rec.Body.String())
			}
			b, _ := json.Marshal(NewKeyInfo(before, now))
			a, _ := json.Marshal(NewKeyInfo(after, now))
			if string(a) != string(b) {
				t.Fatalf("%q: refused with %d, yet the key changed:\n%s\n%s", body, rec.Code, b, a)
			}
		default:
			t.Fatalf("%q: %d %q", body, rec.Code, rec.Body.String())
		}
	})
}
