package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w
}

// Every file goes out with its type and a policy that allows nothing but
// the dashboard's own files and calls to its own origin, and no framing.
func TestFilesAndHeaders(t *testing.T) {
	for path, typ := range map[string]string{"/ui/": "text/html", "/ui/index.html": "text/html", "/ui/app.js": "text/javascript", "/ui/app.css": "text/css"} {
		w := get(t, path)
		h := w.Header()
		if w.Code != 200 || !strings.HasPrefix(h.Get("Content-Type"), typ) || w.Body.Len() == 0 {
			t.Errorf("%s = %d %q (%d bytes)", path, w.Code, h.Get("Content-Type"), w.Body.Len())
		}
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
	for _, path := range []string{"/ui/nothing.js", "/ui/ui/app.js", "/ui/.", "/ui/%2e%2e/web.go"} {
		if w := get(t, path); w.Code != http.StatusNotFound {
			t.Errorf("%s = %d, want 404", path, w.Code)
		}
	}
}

// The policy forbids inline script and style: the pages must not need
// them (no <script> without src, no on* handler, no style attribute).
func TestNoInlineScriptOrStyle(t *testing.T) {
	ui, _ := fs.Sub(files, "ui")
	html, err := fs.ReadFile(ui, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>`), // checked below for src
		regexp.MustCompile(`\son[a-z]+\s*=`),
		regexp.MustCompile(`\sstyle\s*=`),
		regexp.MustCompile(`<style`),
	} {
		for _, m := range bad.FindAllString(string(html), -1) {
			if strings.HasPrefix(m, "<script") && strings.Contains(m, ` src="`) {
				continue
			}
			t.Errorf("index.html has %q", m)
		}
	}
	js, err := fs.ReadFile(ui, "app.js")
	if err != nil {
		t.Fatal(err)
	}
	// Data is rendered as text: no HTML sinks.
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(string(js), sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
	if !strings.Contains(string(js), "sessionStorage") || strings.Contains(string(js), "localStorage") || strings.Contains(string(js), "document.cookie") {
		t.Error("app.js must keep the token in sessionStorage only")
	}
}

// The script parses (when Node.js is here to say so; the browser test in
// internal/server runs it for real).
func TestScriptParses(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node to check the script's syntax")
	}
	js, err := fs.ReadFile(files, "ui/app.js")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "app.js")
	if err := os.WriteFile(path, js, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(node, "--check", path).CombinedOutput(); err != nil {
		t.Fatalf("app.js does not parse: %v\n%s", err, out)
	}
}
