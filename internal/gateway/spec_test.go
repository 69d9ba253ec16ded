package gateway

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseInject(t *testing.T) {
	good := []struct {
		in, canonical string
		want          Inject
	}{
		{"header:Authorization=Bearer {{secret}}", "", Inject{Kind: InjectHeader, Name: "Authorization", Prefix: "Bearer "}},
		{"header:x-api-key={{secret}}", "header:X-Api-Key={{secret}}", Inject{Kind: InjectHeader, Name: "X-Api-Key"}},
		{"header:Authorization=Token token=\"{{secret}}\"", "", Inject{Kind: InjectHeader, Name: "Authorization", Prefix: "Token token=\"", Suffix: "\""}},
		{"query:key", "", Inject{Kind: InjectQuery, Name: "key"}},
		{"query:api_key.v2~x", "", Inject{Kind: InjectQuery, Name: "api_key.v2~x"}},
		{"basic:api", "", Inject{Kind: InjectBasic, User: "api"}},
		{"basic:", "", Inject{Kind: InjectBasic}},
		{"basic:{{secret}}", "", Inject{Kind: InjectBasic, User: SecretPlaceholder}},
	}
	for _, tc := range good {
		got, err := ParseInject(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseInject(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		want := tc.canonical
		if want == "" {
			want = tc.in
		}
		if got.String() != want {
			t.Errorf("ParseInject(%q).String() = %q, want %q", tc.in, got.String(), want)
		}
	}
	bad := map[string]string{
		"":                                 "want header",
		"Authorization: Bearer {{secret}}": "kind must be",
		"header:Authorization":             "header:NAME=TEMPLATE",
		"header:Authorization=Bearer":      "exactly once",
		"header:Authorization={{secret}}{{secret}}": "exactly once",
		"header:Author ization={{secret}}":          "not a valid header name",
		"header:=x{{secret}}":                       "not a valid header name",
		"header:Host={{secret}}":                    "cannot carry",
		"header:connection={{secret}}":              "cannot carry",
		"header:Proxy-Authorization={{secret}}":     "cannot carry",
		"header:X-Keyward-Token={{secret}}":         "cannot carry",
		"header:X=a\r\nInjected: 1{{secret}}":       "printable ASCII",
		"header:X={{secret}}\x00":                   "printable ASCII",
		"query:":                                    "query parameter name",
		"query:a b":                                 "query parameter name",
		"query:a&b":                                 "query parameter name",
		"basic:us:er":                               "basic user",
		"basic:x{{secret}}":                         "basic user",
		"basic:\x01":                                "basic user",
		"cookie:session":                            "kind must be",
		"header:X=" + strings.Repeat("a", 600):      "longer than",
	}
	for in, want := range bad {
		_, err := ParseInject(in)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseInject(%q) = %v, want an ErrInvalid naming %q", in, err, want)
		}
	}
}

func TestInjectValue(t *testing.T) {
	secret := "s3cr3t" // keyward:allow (test fixture)
	for spec, want := range map[string]string{
		"header:Authorization=Bearer {{secret}}": "Bearer s3cr3t",
		"query:key":                              "s3cr3t",
		"basic:api":                              "Basic YXBpOnMzY3IzdA==", // api:s3cr3t
		"basic:{{secret}}":                       "Basic czNjcjN0Og==",     // s3cr3t:
	} {
		in, err := ParseInject(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := in.value(secret); got != want {
			t.Errorf("%s: value = %q, want %q", spec, got, want)
		}
	}
}

func segs(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(strings.Trim(p, "/"), "/")
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		glob string
		yes  []string
		no   []string
	}{
		{"/**", []string{"/", "/a", "/a/b/c"}, nil},
		{"/", []string{"/"}, []string{"/a"}},
		{"/v1/**", []string{"/v1", "/v1/a", "/v1/a/b"}, []string{"/", "/v2", "/v1x/a", "/a/v1"}},
		{"/v1/*", []string{"/v1/a"}, []string{"/v1", "/v1/a/b"}},
		{"/users/*/orders", []string{"/users/42/orders"}, []string{"/users/orders", "/users/1/2/orders", "/users/42/orders/x"}},
		{"/a/**/z", []string{"/a/z", "/a/b/z", "/a/b/c/z"}, []string{"/a", "/a/z/b", "/z"}},
		{"/**/z/**/y", []string{"/z/y", "/a/z/b/y", "/z/z/y", "/a/z/y/y"}, []string{"/z", "/y/z", "/a/z/b"}},
		{"/*/*", []string{"/a/b"}, []string{"/a", "/a/b/c"}},
		{"/V1/x", []string{"/V1/x"}, []string{"/v1/x"}},
	}
	for _, tc := range cases {
		g, err := ParseGlob(tc.glob)
		if err != nil {
			t.Fatalf("ParseGlob(%q): %v", tc.glob, err)
		}
		for _, p := range tc.yes {
			if !g.Match(segs(p)) {
				t.Errorf("%s should match %s", tc.glob, p)
			}
		}
		for _, p := range tc.no {
			if g.Match(segs(p)) {
				t.Errorf("%s should not match %s", tc.glob, p)
			}
		}
	}
	for _, bad := range []string{"", "v1/**", "/v1//x", "/v1/", "/v1/../x", "/./x", "/v1/a*", "/v1/%2e", "/v1/a b", "/v1/\x00",
		"/" + strings.Repeat("a/", 40) + "a"} {
		if _, err := ParseGlob(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseGlob(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// globRef is the obvious recursive matcher, to check Match against.
func globRef(g, p []string) bool {
	if len(g) == 0 {
		return len(p) == 0
	}
	if g[0] == "**" {
		for i := 0; i <= len(p); i++ {
			if globRef(g[1:], p[i:]) {
				return true
			}
		}
		return false
	}
	return len(p) > 0 && (g[0] == "*" || g[0] == p[0]) && globRef(g[1:], p[1:])
}

func TestParsePath(t *testing.T) {
	good := map[string][]string{
		"":                   nil,
		"/":                  nil,
		"/v1/users/42":       {"v1", "users", "42"},
		"/v1/users/":         {"v1", "users"},
		"/a%20b/c":           {"a b", "c"},
		"/%75sers":           {"users"},
		"/caf%C3%A9":         {"café"},
		"/a;b=c/...":         {"a;b=c", "..."},
		"/.well-known/x":     {".well-known", "x"},
		"/v1/items:batchGet": {"v1", "items:batchGet"},
	}
	for in, want := range good {
		p, err := ParsePath(in)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", in, err)
			continue
		}
		if strings.Join(p.Segs, "|") != strings.Join(want, "|") {
			t.Errorf("ParsePath(%q) = %q, want %q", in, p.Segs, want)
		}
	}
	bad := []string{
		"v1", "//", "/a//b", "/..", "/a/../b", "/a/./b", "/.", "/a/..;/b", "/..;x",
		"/%2e%2e/admin", "/%2E%2E/admin", "/.%2e/admin", "/%2e/admin", "/a/%2e%2e;/b",
		"/a%2fb", "/a%2F..%2Fb", "/a%5cb", "/a%5C..%5Cb", "/%252e%252e/admin", "/a%252fb", "/%25",
		"/a%00b", "/a%0d%0aX-Injected:%201", "/a%7f", "/%zz", "/a%2", "/%c0%ae%c0%ae/x", "/%ff",
		"/" + strings.Repeat("a/", 70) + "a", "/" + strings.Repeat("a", MaxRequestPath),
	}
	for _, in := range bad {
		if _, err := ParsePath(in); !errors.Is(err, ErrBadPath) {
			t.Errorf("ParsePath(%q) = %v, want ErrBadPath", in, err)
		}
	}
}

func FuzzParseInject(f *testing.F) {
	for _, s := range []string{"header:Authorization=Bearer {{secret}}", "query:key", "basic:user", "basic:{{secret}}",
		"header:X={{secret}}{{secret}}", "header:X=\r\n{{secret}}", "query:", ":", "header:=", "basic:a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in, err := ParseInject(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		// The canonical form parses back to the same spec.
		again, err := ParseInject(in.String())
		if err != nil || again != in {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", s, again, err, in)
		}
		// Whatever the spec, an injected value never carries CR, LF or NUL.
		if v := in.value("secret"); strings.ContainsAny(v, "\r\n\x00") || !utf8.ValidString(v) {
			t.Fatalf("value %q of %q", v, s)
		}
		if in.Kind == InjectHeader && (refusedInjectHeaders[in.Name] || !validHeaderName(in.Name)) {
			t.Fatalf("header %q accepted", in.Name)
		}
	})
}

func FuzzGlob(f *testing.F) {
	f.Add("/v1/**", "/v1/a/b")
	f.Add("/**/z/**/y", "/a/z/b/y")
	f.Add("/users/*/orders", "/users/%2e%2e/orders")
	f.Add("/a/*", "/a/..;/b")
	f.Add("/", "/")
	f.Add("/*", "/%2f")
	f.Fuzz(func(t *testing.T, glob, path string) {
		g, err := ParseGlob(glob)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("glob error %v is not ErrInvalid", err)
			}
			return
		}
		p, err := ParsePath(path)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("path error %v is not ErrBadPath", err)
			}
			return
		}
		for _, s := range p.Segs {
			if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\%\x00\r\n") || !utf8.ValidString(s) {
				t.Fatalf("ParsePath(%q) let segment %q through", path, s)
			}
		}
		if got, want := g.Match(p.Segs), globRef(g.segs, p.Segs); got != want {
			t.Fatalf("%q.Match(%q) = %v, reference says %v", glob, p.Segs, got, want)
		}
	})
}
