package server

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// POST /v1/auth/token/create takes "meta", bounded; lookups show it; a child
// does not inherit it, and introspection takes no client_id from it.
func TestTokenCreateMeta(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	putPolicy(t, u, root, "name: introspector\nrules:\n  - resources: [\"sys/introspect\", \"auth/tokens\", \"auth/tokens/**\"]\n    allow: [\"*\"]\n")
	var tok struct{ Token, Accessor string }
	body := `{"policies":["introspector"],"ttl":"10m","meta":{"team":"payments","ticket.id":"OPS-142","client_id":"bank-app"}}`
	if c, out := raw(t, "POST", u+"/v1/auth/token/create", root, "application/json", body); c != 200 {
		t.Fatalf("create = %d %v", c, out)
	} else {
		tok.Token, tok.Accessor = out["token"].(string), out["accessor"].(string)
	}
	wantMeta := func(what string, out map[string]any, want map[string]string) {
		t.Helper()
		m, _ := out["meta"].(map[string]any)
		if len(m) != len(want) {
			t.Errorf("%s: meta %v, want %v", what, out["meta"], want)
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s: meta %v, want %v", what, out["meta"], want)
			}
		}
	}
	want := map[string]string{"team": "payments", "ticket.id": "OPS-142", "client_id": "bank-app"}
	c, out := raw(t, "GET", u+"/v1/auth/token/lookup-self", tok.Token, "", "")
	if c != 200 {
		t.Fatalf("lookup-self = %d %v", c, out)
	}
	wantMeta("lookup-self", out, want)
	if c, out = raw(t, "GET", u+"/v1/auth/token/accessors/"+tok.Accessor, root, "", ""); c != 200 {
		t.Fatalf("accessor lookup = %d %v", c, out)
	}
	wantMeta("accessor lookup", out, want)

	// Introspection reports no client_id a caller wrote itself.
	c, out = raw(t, "POST", u+"/v1/oauth/introspect", tok.Token, "application/x-www-form-urlencoded", url.Values{"token": {tok.Token}}.Encode())
	if c != 200 || out["active"] != true || out["client_id"] != nil {
		t.Errorf("introspect = %d %v, want active without client_id", c, out)
	}

	// A child asking for no meta has none; one asking for its own has only its own.
	var child struct{ Token string }
	if c := call(t, "POST", u+"/v1/auth/token/create", tok.Token, map[string]any{"ttl": "5m"}, &child); c != 200 {
		t.Fatalf("child = %d", c)
	}
	if c, out = raw(t, "GET", u+"/v1/auth/token/lookup-self", child.Token, "", ""); c != 200 || out["meta"] != nil {
		t.Errorf("child without meta: lookup-self = %d %v", c, out)
	}
	if c := call(t, "POST", u+"/v1/auth/token/create", tok.Token, map[string]any{"ttl": "5m", "meta": map[string]string{"step": "2"}}, &child); c != 200 {
		t.Fatalf("child with meta = %d", c)
	}
	_, out = raw(t, "GET", u+"/v1/auth/token/lookup-self", child.Token, "", "")
	wantMeta("child with meta", out, map[string]string{"step": "2"})

	// Bad meta: 400 naming the key at fault (never a value); no token.
	var many []string
	for i := range 17 {
		many = append(many, fmt.Sprintf(`"k%d":"v"`, i))
	}
	for meta, wantMsg := range map[string]string{
		`{` + strings.Join(many, ",") + `}`:              "at most 16",
		`{"":"v"}`:                                       `key ""`,
		`{"` + strings.Repeat("k", 65) + `":"v"}`:        `key "` + strings.Repeat("k", 64) + `"`,
		`{"ok":"v","a/b":"v"}`:                           `key "a/b"`,
		`{"a b":"v"}`:                                    `key "a b"`,
		`{"big":"` + strings.Repeat("s3cr3t", 86) + `"}`: `key "big"`,
		`{"esc":"\u001b[2J"}`:                            `key "esc"`,
		`{"n":1}`:                                        "meta",
		`["a=b"]`:                                        "meta",
		`"team=payments"`:                                "meta",
		`{"ok":"v","nested":{"a":"b"}}`:                  "meta",
		`{"` + strings.Repeat("x", 40) + `\u0000":"v"}`:  `key "` + strings.Repeat("x", 40) + `\x00"`,
		`{"team":"payments","team.lead":"` + strings.Repeat("é", 257) + `"}`: `key "team.lead"`,
	} {
		c, out := raw(t, "POST", u+"/v1/auth/token/create", tok.Token, "application/json", `{"ttl":"5m","meta":`+meta+`}`)
		msg := errMsg(out)
		if c != 400 || !strings.Contains(msg, wantMsg) || out["token"] != nil {
			t.Errorf("meta %.60s: %d %q, want 400 naming %s", meta, c, msg, wantMsg)
		}
		if strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "\x1b") {
			t.Errorf("meta %.60s: the error shows a value: %q", meta, msg)
		}
	}
	// Nothing was stored: the parent still has exactly the two children made above.
	var rev map[string]any
	if c := call(t, "DELETE", u+"/v1/auth/token/accessors/"+tok.Accessor, root, nil, &rev); c != 200 || rev["revoked"] != float64(3) {
		t.Errorf("revoke the parent = %d %v, want 3 tokens revoked (itself and two children)", c, rev)
	}
}
