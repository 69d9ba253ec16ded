package server

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

const seeSomePolicy = `name: see-some
rules:
  - resources: ["identities/users", "identities/services"]
    allow: [list]
  - resources: ["identities/users/u1", "identities/users/u3", "identities/services/u1", "identities/services/u3"]
    allow: [read]
`

// GET /v1/identities/users and /services page by name with ?limit= and
// ?cursor=; "next" is the last name of a full page, read before rows the
// caller may not see are dropped, so a filtered page still leads on.
func TestIdentityListPages(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	names := []string{"u3", "u0", "u4", "u1", "u2"}
	for _, n := range names {
		if c, out := raw(t, "POST", u+"/v1/identities/users", root, "application/json",
			`{"name":"`+n+`","password":"correct horse battery","policies":[]}`); c != 201 {
			t.Fatalf("create user %s = %d %v", n, c, out)
		}
		if c, out := raw(t, "POST", u+"/v1/identities/services", root, "application/json", `{"name":"`+n+`","policies":[]}`); c != 201 {
			t.Fatalf("create service %s = %d %v", n, c, out)
		}
	}
	putPolicy(t, u, root, seeSomePolicy)
	var some struct{ Token string }
	if c := call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"policies": []string{"see-some"}, "ttl": "10m"}, &some); c != 200 {
		t.Fatalf("token = %d", c)
	}

	// page returns the names of one page and its next cursor.
	page := func(kind, tok, query string) ([]string, string) {
		t.Helper()
		var out map[string]any
		if c := call(t, "GET", u+"/v1/identities/"+kind+query, tok, nil, &out); c != 200 {
			t.Fatalf("GET %s%s = %d %v", kind, query, c, out)
		}
		next, ok := out["next"].(string)
		if !ok {
			t.Fatalf("GET %s%s: no next in %v", kind, query, out)
		}
		var got []string
		for _, it := range out[kind].([]any) {
			got = append(got, it.(map[string]any)["name"].(string))
		}
		return got, next
	}
	for _, kind := range []string{"users", "services"} {
		// The default limit holds them all: one page, no next.
		if got, next := page(kind, root, ""); !slices.Equal(got, []string{"u0", "u1", "u2", "u3", "u4"}) || next != "" {
			t.Errorf("%s: %v next %q", kind, got, next)
		}
		// Cursors are sealed: they name no row (the last row of a page may
		// be one the caller may not read), and only a list's own open.
		for _, tc := range []struct {
			tok     string
			pages   [][]string
			hasNext []bool
		}{
			{root, [][]string{{"u0", "u1"}, {"u2", "u3"}, {"u4"}}, []bool{true, true, false}},
			{some.Token, [][]string{{"u1"}, {"u3"}, nil}, []bool{true, true, false}},
			{root, [][]string{{"u0"}, {"u1"}, {"u2"}, {"u3"}, {"u4"}, nil}, []bool{true, true, true, true, true, false}},
		} {
			cursor, limit := "", len(tc.pages[0])
			if tc.tok == some.Token {
				limit = 2
			}
			for i := range tc.pages {
				got, next := page(kind, tc.tok, "?limit="+strconv.Itoa(limit)+"&cursor="+cursor)
				if !slices.Equal(got, tc.pages[i]) || (next != "") != tc.hasNext[i] {
					t.Errorf("%s page %d: %v next %q, want %v (next: %v)", kind, i, got, next, tc.pages[i], tc.hasNext[i])
				}
				if slices.Contains([]string{"u0", "u1", "u2", "u3", "u4"}, next) {
					t.Errorf("%s page %d: next %q is a name", kind, i, next)
				}
				cursor = next
			}
		}
		other := "services"
		if kind == "services" {
			other = "users"
		}
		_, next := page(other, root, "?limit=1")
		if c, out := raw(t, "GET", u+"/v1/identities/"+kind+"?cursor="+next, root, "", ""); c != 400 || !strings.Contains(errMsg(out), "cursor") {
			t.Errorf("%s with a %s cursor = %d %v, want 400", kind, other, c, out)
		}

		for query, field := range map[string]string{
			"?limit=0": "limit", "?limit=1001": "limit", "?limit=-1": "limit", "?limit=ten": "limit", "?limit=": "",
			"?cursor=U1": "cursor", "?cursor=u1%2Fx": "cursor", "?cursor=" + strings.Repeat("u", 65): "cursor", "?cursor=u1%27--": "cursor",
		} {
			c, out := raw(t, "GET", u+"/v1/identities/"+kind+query, root, "", "")
			if field == "" {
				if c != 200 {
					t.Errorf("%s%s = %d %v, want 200 (an empty limit is the default)", kind, query, c, out)
				}
				continue
			}
			e, _ := out["error"].(map[string]any)
			if c != 400 || e["code"] != "invalid_argument" || !strings.Contains(errMsg(out), field) {
				t.Errorf("%s%s = %d %v, want 400 naming %s", kind, query, c, out, field)
			}
		}
	}
}
