package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The dashboard in a real browser (headless Chromium through ChromeDriver,
// spoken to in plain WebDriver): sign in with a token, see the inventory,
// the audit log with the dashboard's own reads in it, no secret value on
// the page, the token in the tab's sessionStorage and no cookie; sign out
// forgets it. Skipped without chromedriver unless KEYWARD_TEST_BROWSER is
// "required" (.ci/run installs Debian's chromium and chromium-driver and
// sets it).
func TestDashboardInBrowser(t *testing.T) {
	driver, chromium := browserTools(t)
	r, root := devNode(t)
	u := r.url
	const value = "dashboard-secret-value-5e1f" // keyward:allow (test fixture)
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)
	if c := call(t, "PUT", u+"/v1/projects/shop/envs/prod/secrets/maps-key", root, map[string]string{"value": value}, nil); c != 200 && c != 201 {
		t.Fatalf("put secret = %d", c)
	}
	if c := call(t, "POST", u+"/v1/integrations", root, map[string]any{"name": "maps", "upstream": "https://maps.example.com",
		"secret": "shop/prod/maps-key", "inject": "query:key"}, nil); c != 201 {
		t.Fatalf("create integration = %d", c)
	}

	wd := startWebDriver(t, driver, chromium)
	wd.post("url", map[string]any{"url": u + "/ui/"})
	wd.click("#signin-button") // no token yet
	wd.waitText("#error", "Paste a token first")
	wd.typeInto("#token", root)
	wd.click("#signin-button")
	wd.waitText("#who", "Signed in as root")
	wd.waitText("#inventory table", "integration")
	wd.waitText("#inventory table", "shop/prod/maps-key")

	// Filters go to the API.
	wd.typeInto("#inventory-unused", "1h")
	wd.click("#inventory-load")
	wd.waitText("#inventory .result", "No credential matches.")

	for range 110 { // more than a page of the audit log
		call(t, "GET", u+"/v1/projects", root, nil, nil)
	}
	wd.click(`button[data-tab="audit"]`)
	wd.waitText("#audit-page", "(newest)")
	wd.waitVisible("#audit-older")
	wd.click("#audit-older")
	wd.waitText("#audit-page", "(older page)")
	wd.waitText("#audit table", "sys/inventory") // the dashboard's own reads, on the older page
	wd.typeInto("#audit-principal", "user:nobody")
	wd.click("#audit-load")
	wd.waitText("#audit .result", "No entries.")
	wd.typeInto("#audit-principal", "root")
	wd.typeInto("#audit-resource", "sys/inventory")
	wd.click("#audit-load")
	wd.waitText("#audit table", "sys/inventory")
	if got := wd.script(`return [...document.querySelectorAll("#audit tbody tr td:nth-child(5)")].every(td => td.textContent.startsWith("sys/inventory"))`); got != true {
		t.Errorf("the resource filter did not reach the API: every row sys/inventory = %v", got)
	}
	// Access requests: the caller's own, pending ones first.
	if c, out := raw(t, "PUT", u+"/v1/policies/ops-read", root, "application/yaml",
		"name: ops-read\nrules:\n  - resources: [projects/shop/**]\n    allow: [read]\n"); c != 200 {
		t.Fatalf("put policy = %d %v", c, out)
	}
	if c := call(t, "POST", u+"/v1/access/requests", root, map[string]any{"policies": []string{"ops-read"}, "ttl": "10m", "reason": "INC-77 from the dashboard test"}, nil); c != 201 {
		t.Fatalf("access request = %d", c)
	}
	wd.click(`button[data-tab="access"]`)
	wd.waitText("#access table", "INC-77 from the dashboard test")
	wd.script(`document.getElementById("access-state").value = "denied"`)
	wd.click("#access-load")
	wd.waitText("#access .result", "No denied request.")
	if src := wd.get("source").(string); strings.Contains(src, value) {
		t.Error("the page shows a secret value")
	}
	if got := wd.script(`return [document.cookie, sessionStorage.getItem("keyward-token") !== null, localStorage.length]`); fmt.Sprint(got) != "[ true 0]" {
		t.Errorf("cookie, token in sessionStorage, localStorage items = %v", got)
	}
	wd.click("#signout")
	wd.waitVisible("#signin")
	if got := wd.script(`return sessionStorage.getItem("keyward-token")`); got != nil {
		t.Errorf("the token outlived sign-out: %v", got)
	}

	// A reviewer's token (the policy of docs/operations.md) reads the
	// inventory; a token without it is told so.
	if c, out := raw(t, "PUT", u+"/v1/policies/reviewer", root, "application/yaml",
		"name: reviewer\nrules:\n  - resources: [sys/inventory, sys/alerts, sys/usage, sys/audit, sys/access]\n    allow: [read]\n"); c != 200 {
		t.Fatalf("put policy = %d %v", c, out)
	}
	tokenFor := func(policy string) string {
		var tok struct{ Token string }
		if c := call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"ttl": "10m", "policies": []string{policy}}, &tok); c != 200 && c != 201 {
			t.Fatalf("token for %s = %d", policy, c)
		}
		return tok.Token
	}
	wd.typeInto("#token", tokenFor("reviewer"))
	wd.click("#signin-button")
	wd.waitText("#inventory table", "shop/prod/maps-key")
	wd.click("#signout")
	wd.typeInto("#token", tokenFor("default"))
	wd.click("#signin-button")
	wd.waitText("#error", "Your token may not read this")
	wd.click("#signout")

	// A user signs in with a password; the dashboard's token is revoked on
	// sign-out, and a wrong password is refused.
	if c := call(t, "POST", u+"/v1/identities/users", root, map[string]any{"name": "ana", "password": "correct horse battery", "policies": []string{"reviewer"}}, nil); c != 201 {
		t.Fatalf("create user = %d", c)
	}
	wd.typeInto("#username", "ana")
	wd.typeInto("#password", "wrong horse battery")
	wd.click("#login-button")
	wd.waitText("#error", "invalid")
	wd.typeInto("#password", "correct horse battery")
	wd.click("#login-button")
	wd.waitText("#who", "Signed in as user:ana")
	wd.waitText("#inventory table", "shop/prod/maps-key")
	wd.click("#signout")
	wd.waitVisible("#signin")
	revoked := false
	for deadline := time.Now().Add(5 * time.Second); !revoked && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var entries struct {
			Entries []struct{ Action, Resource string }
		}
		call(t, "GET", u+"/v1/audit?principal=user:ana&newest=true&limit=20", root, nil, &entries)
		for _, e := range entries.Entries {
			revoked = revoked || e.Action == "delete" && e.Resource == "auth/tokens/self"
		}
	}
	if !revoked {
		t.Error("the dashboard's own token was not revoked at sign-out")
	}

	// A bad token is refused with the server's message.
	wd.typeInto("#token", "kwt_notatoken")
	wd.click("#signin-button")
	wd.waitText("#error", "token")
}

// browserTools finds chromedriver and chromium.
func browserTools(t *testing.T) (driver, chromium string) {
	t.Helper()
	driver, err := exec.LookPath("chromedriver")
	if err == nil {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if chromium, err = exec.LookPath(name); err == nil {
				return driver, chromium
			}
		}
	}
	if os.Getenv("KEYWARD_TEST_BROWSER") == "required" {
		t.Fatalf("KEYWARD_TEST_BROWSER=required but chromedriver and chromium are not both installed: %v", err)
	}
	t.Skip("no chromedriver and chromium (apt-get install chromium chromium-driver; .ci/run does)")
	return "", ""
}

// webDriver is a W3C WebDriver session.
type webDriver struct {
	t    *testing.T
	base string // http://127.0.0.1:PORT/session/ID/
}

// startWebDriver runs chromedriver and opens a headless Chromium session.
func startWebDriver(t *testing.T, driver, chromium string) *webDriver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(driver, fmt.Sprintf("--port=%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for i := 0; ; i++ {
		resp, err := http.Get(addr + "status")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 100 {
			t.Fatalf("chromedriver did not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wd := &webDriver{t: t, base: addr}
	out := wd.post("session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium,
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"}},
	}}})
	id, _ := out.(map[string]any)["sessionId"].(string)
	if id == "" {
		t.Fatalf("no WebDriver session: %v", out)
	}
	wd.base = addr + "session/" + id + "/"
	t.Cleanup(func() { wd.do("DELETE", "", nil) })
	return wd
}

// do sends one command and returns its value.
func (wd *webDriver) do(method, path string, body any) (any, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, wd.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Value     any    `json:"value"`
		SessionID string `json:"sessionId"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("webdriver %s %s: %d %v", method, path, resp.StatusCode, out.Value)
	}
	if out.SessionID != "" { // the legacy shape of a new session
		return map[string]any{"sessionId": out.SessionID}, nil
	}
	return out.Value, nil
}

func (wd *webDriver) post(path string, body any) any {
	wd.t.Helper()
	v, err := wd.do("POST", path, body)
	if err != nil {
		wd.t.Fatal(err)
	}
	if m, ok := v.(map[string]any); ok && path == "session" {
		if id, _ := m["sessionId"].(string); id != "" {
			return m
		}
	}
	return v
}

func (wd *webDriver) get(path string) any {
	wd.t.Helper()
	v, err := wd.do("GET", path, nil)
	if err != nil {
		wd.t.Fatal(err)
	}
	return v
}

// find returns the id of the element css selects, or "".
func (wd *webDriver) find(css string) string {
	v, err := wd.do("POST", "element", map[string]any{"using": "css selector", "value": css})
	if err != nil {
		return ""
	}
	m, _ := v.(map[string]any)
	id, _ := m["element-6066-11e4-a52e-4f735466cecf"].(string)
	return id
}

func (wd *webDriver) must(css string) string {
	wd.t.Helper()
	var id string
	wd.wait(css+" to exist", func() bool { id = wd.find(css); return id != "" })
	return id
}

func (wd *webDriver) click(css string) {
	wd.t.Helper()
	wd.post("element/"+wd.must(css)+"/click", map[string]any{})
}

func (wd *webDriver) typeInto(css, text string) {
	wd.t.Helper()
	id := wd.must(css)
	wd.post("element/"+id+"/clear", map[string]any{})
	wd.post("element/"+id+"/value", map[string]any{"text": text})
}

func (wd *webDriver) script(js string) any {
	wd.t.Helper()
	return wd.post("execute/sync", map[string]any{"script": js, "args": []any{}})
}

// waitText waits until the text of the element css selects holds want.
func (wd *webDriver) waitText(css, want string) {
	wd.t.Helper()
	var last string
	defer func() {
		if wd.t.Failed() {
			wd.t.Logf("%s last showed %q", css, last)
		}
	}()
	wd.wait(fmt.Sprintf("%s to show %q", css, want), func() bool {
		id := wd.find(css)
		if id == "" {
			return false
		}
		v, err := wd.do("GET", "element/"+id+"/text", nil)
		last, _ = v.(string)
		return err == nil && strings.Contains(last, want)
	})
}

func (wd *webDriver) waitVisible(css string) {
	wd.t.Helper()
	wd.wait(css+" to be shown", func() bool {
		id := wd.find(css)
		v, err := wd.do("GET", "element/"+id+"/displayed", nil)
		return id != "" && err == nil && v == true
	})
}

func (wd *webDriver) wait(what string, ok func() bool) {
	wd.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			wd.t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
