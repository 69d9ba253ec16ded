package client

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// An error answer that is not keyward's JSON keeps its body when that is a
// short line of plain text (a TLS server told plain HTTP, a proxy's
// message), and only the status otherwise (an HTML page, a long body).
func TestPlainErrorAnswers(t *testing.T) {
	bodies := map[string]string{
		"/tls":  "Client sent an HTTP request to an HTTPS server.\n",
		"/html": "<html><body>502 Bad Gateway</body></html>",
		"/long": strings.Repeat("x", 300),
		"/ctl":  "bad\x00byte",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(bodies[r.URL.Path]))
	}))
	defer srv.Close()
	c, err := New(Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/tls":  "keyward: HTTP 400: Client sent an HTTP request to an HTTPS server.",
		"/html": "keyward: HTTP 400",
		"/long": "keyward: HTTP 400",
		"/ctl":  "keyward: HTTP 400",
	} {
		_, err := c.do(t.Context(), http.MethodGet, path, nil, nil, nil)
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}
