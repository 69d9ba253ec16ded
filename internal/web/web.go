// Package web serves keyward's dashboard: a few static files (HTML, one
// script, one style sheet) embedded in the binary. The dashboard holds no
// data of its own: in the browser it calls the same API as the CLI, with
// a token the user pastes in, kept in the tab's sessionStorage (never a
// cookie, so no request can ride on it from another site) and sent as a
// bearer token. Every page is served with a Content-Security-Policy that
// allows only these files and the API of the same origin: no inline
// script, no other host, no framing.
package web

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed ui
var files embed.FS

// Prefix is where the dashboard is served.
const Prefix = "/ui/"

// csp allows the dashboard's own files and calls to its own origin only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the dashboard's files under Prefix.
func Handler() http.Handler {
	ui, _ := fs.Sub(files, "ui")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		if name == "" {
			name = "index.html"
		}
		b, err := fs.ReadFile(ui, name)
		if err != nil || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-cache")
		w.Write(b)
	})
}
