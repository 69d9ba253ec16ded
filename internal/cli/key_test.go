package cli

import (
	"net/http"
	"strings"
	"testing"
)

const testKey = "kwk_testAbCdEfGhIjKlMnOpQrStUvWxYz0123456789ab" // keyward:allow (test fixture)

const issuedKeyJSON = `{"key":"` + testKey + `","id":"key_AAAAAAAAAAAAAAAAAAAA","project":"shop","env":"prod",` +
	`"environment_kind":"live","name":"acme","status":"active","scopes":["integrations/maps"],"rate":"100/min","quota":10000,` +
	`"remaining":10000,"refill":"monthly","refill_amount":10000,"cidrs":["10.0.0.0/8"],"meta":{"team":"x"},` +
	`"created_by":"user:alice","created_at":"2030-01-01T00:00:00Z","expires_at":"2099-01-01T00:00:00Z"}`

const keyInfoJSON = `{"id":"key_AAAAAAAAAAAAAAAAAAAA","project":"shop","env":"prod","environment_kind":"live","name":"acme",` +
	`"status":"active","scopes":["integrations/maps"],"created_by":"user:alice","created_at":"2030-01-01T00:00:00Z",` +
	`"last_used_at":"2030-01-02T00:00:00Z","last_used_addr":"10.1.2.3"}`

func TestKeyCreate(t *testing.T) {
	h := newHarness(t, testKey)
	h.vars["KEYWARD_TOKEN"] = "kwt_caller"
	h.fake.handle("POST /v1/projects/shop/envs/prod/keys", 201, issuedKeyJSON)

	r := h.must("", "key", "create", "-p", "shop", "-e", "prod", "--name", "acme", "--scope", "integrations/maps", "--ttl", "90d",
		"--rate", "100/min", "--quota", "10000", "--refill", "monthly", "--cidr", "10.0.0.0/8", "--meta", `{"team":"x"}`, "--owner", "acme-corp")
	for _, want := range []string{"Key:          " + testKey, "ID:           key_AAAAAAAAAAAAAAAAAAAA", "shop/prod (live key)",
		"Rate limit:   100/min", "Quota:        10000 of 10000 left, refilled monthly to 10000", `Meta:         {"team":"x"}`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Count(r.stdout, testKey) != 1 || !strings.Contains(r.stderr, "shown once") || strings.Contains(r.stderr, testKey) {
		t.Errorf("the key must be printed once, on stdout only:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	body := bodyMap(t, h.fake.requests("POST /v1/projects/shop/envs/prod/keys")[0].Body)
	if body["name"] != "acme" || body["ttl"] != "90d" || body["rate"] != "100/min" || body["quota"] != float64(10000) || body["refill"] != "monthly" ||
		body["owner"] != "acme-corp" || body["meta"].(map[string]any)["team"] != "x" || body["cidrs"].([]any)[0] != "10.0.0.0/8" ||
		body["scopes"].([]any)[0] != "integrations/maps" {
		t.Errorf("create body %v", body)
	}

	h.vars["KEYWARD_PROJECT"], h.vars["KEYWARD_ENV"] = "shop", "prod"
	r = h.must("", "key", "create", "--name", "acme", "--scope", "integrations/maps", "-o", "json")
	if !strings.Contains(r.stdout, `"key": "`+testKey+`"`) || !strings.Contains(r.stdout, `"environment_kind": "live"`) {
		t.Errorf("-o json:\n%s", r.stdout)
	}
}

func TestKeyCreateUsageErrors(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_caller"
	base := []string{"key", "create", "-p", "shop", "-e", "prod"}
	for args, want := range map[string]string{
		"--scope a":                                    "--name",
		"--name n":                                     "--scope",
		"--name n --scope a//b":                        "empty segment",
		"--name n --scope a --ttl 90x":                 "ttl",
		"--name n --scope a --rate 100/week":           "rate",
		"--name n --scope a --rate 0/min":              "rate",
		"--name n --scope a --refill daily":            "--quota",
		"--name n --scope a --refill weekly --quota 5": "refill",
		"--name n --scope a --cidr 10.0.0.0/33":        "--cidr",
		"--name n --scope a --meta {bad":               "meta",
		"--name n --scope a --meta [1]":                "meta",
		"--name n --scope a --quota -1":                "negative",
	} {
		r := h.run("", append(base, strings.Fields(args)...)...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want usage naming %q", args, r.code, r.stderr, want)
		}
	}
	if r := h.run("", "key", "create", "--name", "n", "--scope", "a"); r.code != ExitUsage || !strings.Contains(r.stderr, "-p PROJECT -e ENV") {
		t.Errorf("no project: %d %q", r.code, r.stderr)
	}
	if n := len(h.fake.requests("POST /v1/projects/shop/envs/prod/keys")); n != 0 {
		t.Errorf("bad flags sent %d requests", n)
	}
}

func TestKeyGetRevokeRotateList(t *testing.T) {
	h := newHarness(t, testKey)
	h.vars["KEYWARD_TOKEN"] = "kwt_caller"
	base := "/v1/projects/shop/envs/prod/keys/key_AAAAAAAAAAAAAAAAAAAA"
	h.fake.handle("GET "+base, 200, keyInfoJSON)
	h.fake.handle("POST "+base+"/revoke", 200, strings.Replace(keyInfoJSON, `"active"`, `"revoked","revoked_at":"2030-01-03T00:00:00Z"`, 1))
	h.fake.handle("POST "+base+"/rotate", 200, strings.TrimSuffix(issuedKeyJSON, "}")+
		`,"previous":{"id":"key_AAAAAAAAAAAAAAAAAAAA","status":"grace","grace_until":"2030-01-04T00:00:00Z"}}`)

	r := h.must("", "key", "get", "-p", "shop", "-e", "prod", "key_AAAAAAAAAAAAAAAAAAAA")
	if !strings.Contains(r.stdout, "Last used:    2030-01-02T00:00:00Z from 10.1.2.3") {
		t.Errorf("get:\n%s", r.stdout)
	}
	r = h.must("", "key", "revoke", "-p", "shop", "-e", "prod", "key_AAAAAAAAAAAAAAAAAAAA")
	if !strings.Contains(r.stdout, "Status:       revoked") {
		t.Errorf("revoke:\n%s", r.stdout)
	}
	r = h.must("", "key", "rotate", "-p", "shop", "-e", "prod", "key_AAAAAAAAAAAAAAAAAAAA", "--grace", "7d")
	if !strings.Contains(r.stdout, testKey) || !strings.Contains(r.stdout, "works until 2030-01-04T00:00:00Z") || !strings.Contains(r.stderr, "shown once") {
		t.Errorf("rotate:\n%s\n%s", r.stdout, r.stderr)
	}
	if b := bodyMap(t, h.fake.requests("POST " + base + "/rotate")[0].Body); b["grace"] != "7d" {
		t.Errorf("rotate body %v", b)
	}
	for _, args := range [][]string{{"key", "get", "-p", "shop", "-e", "prod", "nope"}, {"key", "revoke", "-p", "shop", "-e", "prod", testKey},
		{"key", "rotate", "-p", "shop", "-e", "prod", "key_AAAAAAAAAAAAAAAAAAAA", "--grace", "soon"}} {
		r := h.run("", args...)
		if r.code != ExitUsage || strings.Contains(r.stderr, testKey) {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}

	// list follows the cursor.
	h.fake.mux.HandleFunc("GET /v1/projects/shop/envs/prod/keys", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("cursor") == "" {
			w.Write([]byte(`{"keys":[` + keyInfoJSON + `],"next":"key_AAAAAAAAAAAAAAAAAAAA"}`))
			return
		}
		w.Write([]byte(`{"keys":[` + strings.Replace(keyInfoJSON, "AAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBB", 1) + `],"next":""}`))
	})
	r = h.must("", "key", "list", "-p", "shop", "-e", "prod")
	if !strings.Contains(r.stdout, "key_AAAAAAAAAAAAAAAAAAAA") || !strings.Contains(r.stdout, "key_BBBBBBBBBBBBBBBBBBBB") || !strings.Contains(r.stdout, "live") {
		t.Errorf("list:\n%s", r.stdout)
	}
}

func TestKeyVerifyReadsStdin(t *testing.T) {
	h := newHarness(t, testKey)
	h.vars["KEYWARD_TOKEN"] = "kwt_caller"
	h.fake.mux.HandleFunc("POST /v1/keys/verify", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		b := make([]byte, 4096)
		n, _ := r.Body.Read(b)
		if strings.Contains(string(b[:n]), testKey) {
			w.Write([]byte(`{"valid":true,"code":"VALID","key_id":"key_AAAAAAAAAAAAAAAAAAAA","name":"acme","project":"shop","env":"prod",` +
				`"environment_kind":"live","scopes":["integrations/maps"],"remaining":41,"ratelimit":{"limit":100,"remaining":99,"reset":1}}`))
			return
		}
		w.Write([]byte(`{"valid":false,"code":"NOT_FOUND"}`))
	})
	r := h.must(testKey+"\n", "key", "verify", "--resource", "integrations/maps", "--source-addr", "10.1.2.3", "--no-consume")
	for _, want := range []string{"Valid:        yes", "Code:         VALID", "shop/prod (live)", "Remaining:    41", "99 of 100 left"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, testKey) {
		t.Error("verify printed the key")
	}
	b := bodyMap(t, h.fake.requests("POST /v1/keys/verify")[0].Body)
	if b["key"] != testKey || b["resource"] != "integrations/maps" || b["source_addr"] != "10.1.2.3" || b["consume"] != false {
		t.Errorf("verify body %v", b)
	}
	// Not valid: exit 1.
	if r := h.run("kwk_wrong\n", "key", "verify"); r.code != ExitFailure || !strings.Contains(r.stdout, "NOT_FOUND") || !strings.Contains(r.stdout, "checksum") {
		t.Errorf("invalid key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// No key, or a key given as an argument: usage.
	if r := h.run("", "key", "verify"); r.code != ExitUsage {
		t.Errorf("empty stdin: exit %d", r.code)
	}
	if r := h.run("", "key", "verify", testKey); r.code != ExitUsage || strings.Contains(r.stderr, testKey[8:]) {
		t.Errorf("key as an argument: exit %d %q", r.code, r.stderr)
	}
}

// key create prints the server's warnings (a scope matching no
// integration) on stderr.
func TestKeyCreateWarnings(t *testing.T) {
	h := newHarness(t, testKey)
	h.vars["KEYWARD_TOKEN"] = "kwt_caller"
	h.fake.handle("POST /v1/projects/shop/envs/prod/keys", 201, strings.TrimSuffix(issuedKeyJSON, "}")+
		`,"warnings":["scope \"integrations/mapz\" matches no integration: the key can call nothing through it until one of that name is created"]}`)
	r := h.must("", "key", "create", "-p", "shop", "-e", "prod", "--name", "acme", "--scope", "integrations/mapz")
	if !strings.Contains(r.stderr, `Warning: scope "integrations/mapz" matches no integration`) || strings.Contains(r.stdout, "Warning") {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

// key update sends only the settings named by its flags, with the
// spellings "none", "never" and --any-network turned into the API's; bad
// flags are usage errors that send nothing.
func TestKeyUpdate(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_caller"
	const path = "PATCH /v1/projects/shop/envs/prod/keys/key_AAAAAAAAAAAAAAAAAAAA"
	h.fake.handle(path, 200, keyInfoJSON)
	base := []string{"key", "update", "-p", "shop", "-e", "prod", "key_AAAAAAAAAAAAAAAAAAAA"}

	r := h.must("", append(base, "--quota", "50000", "--rate", "none", "--any-network", "--ttl", "never", "--meta", `{"plan":"gold"}`)...)
	if !strings.Contains(r.stdout, "ID:           key_AAAAAAAAAAAAAAAAAAAA") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	body := bodyMap(t, h.fake.requests(path)[0].Body)
	if len(body) != 5 || body["quota"] != float64(50000) || body["rate"] != "" || len(body["cidrs"].([]any)) != 0 || body["ttl"] != "never" ||
		body["meta"].(map[string]any)["plan"] != "gold" {
		t.Errorf("update body %v", body)
	}
	h.must("", append(base, "--remaining", "0", "--scope", "integrations/a", "--scope", "integrations/b", "--refill", "none")...)
	body = bodyMap(t, h.fake.requests(path)[1].Body)
	if len(body) != 3 || body["remaining"] != float64(0) || len(body["scopes"].([]any)) != 2 || body["refill"] != "" {
		t.Errorf("second update body %v", body)
	}

	h.must("", append(base, "--disable")...)
	h.must("", append(base, "--enable")...)
	if d, e := bodyMap(t, h.fake.requests(path)[2].Body), bodyMap(t, h.fake.requests(path)[3].Body); len(d) != 1 || d["disabled"] != true ||
		len(e) != 1 || e["disabled"] != false {
		t.Errorf("--disable sent %v, --enable %v", d, e)
	}

	for args, want := range map[string]string{
		"--disable --enable":              "exclude",
		"":                                "nothing to change",
		"--ttl 0s":                        "--ttl",
		"--ttl soon":                      "--ttl",
		"--rate 100/week":                 "rate",
		"--quota -5":                      "negative",
		"--cidr 10.0.0.0/33":              "--cidr",
		"--cidr 10.0.0.0/8 --any-network": "exclude",
		"--meta [1]":                      "meta",
		"--scope a//b":                    "empty segment",
		"--refill weekly":                 "refill",
	} {
		r := h.run("", append(base, strings.Fields(args)...)...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, want) {
			t.Errorf("%q: exit %d, stderr %q; want usage naming %q", args, r.code, r.stderr, want)
		}
	}
	if r := h.run("", "key", "update", "-p", "shop", "-e", "prod", "kwk_live123456789", "--quota", "1"); r.code != ExitUsage ||
		strings.Contains(r.stderr, "kwk_live123456789") {
		t.Errorf("a key instead of its id: %d %q", r.code, r.stderr)
	}
	if n := len(h.fake.requests(path)); n != 4 {
		t.Errorf("%d requests sent, want the 4 good ones", n)
	}
}
