package httpapi

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/gateway"
)

// dispatchAPI is an API with the gateway's routes and a few neighbours,
// whose handlers report the pattern and integration they were given.
func dispatchAPI(t *testing.T, extra ...Route) *API {
	t.Helper()
	report := func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s", r.Pattern, IntegrationOf(r))
	}
	var routes []Route
	for _, m := range gateway.Methods {
		routes = append(routes, Route{Pattern: m + " " + gatewayPattern, Open: true, WhileSealed: true, Raw: report})
	}
	routes = append(routes,
		Route{Pattern: "GET /v1/integrations/{name}", Open: true, WhileSealed: true, Raw: report},
		Route{Pattern: "POST /v1/keys/verify", Open: true, WhileSealed: true, Raw: report})
	return New(Deps{}, append(routes, extra...))
}

// serve answers one request in the request-line form target (sent as is,
// so escapes reach the URL parser as a client wrote them).
func serve(t *testing.T, h http.Handler, method, target string) (int, string) {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: k\r\n\r\n")))
	if err != nil {
		return -1, err.Error()
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// The dispatch that skips the mux for gateway calls must answer every
// request exactly as the mux would: same route, same integration name,
// same status for what it leaves to the mux.
func TestGatewayDispatchMatchesMux(t *testing.T) {
	fast := dispatchAPI(t)
	if fast.gateway == nil || len(fast.gateway) != len(gateway.Methods) {
		t.Fatalf("the gateway dispatch is not set up: %v", fast.gateway)
	}
	slow := dispatchAPI(t)
	slow.gateway = nil // the mux alone
	targets := []string{
		"/v1/gateway/up/v1/ping", "/v1/gateway/up/", "/v1/gateway/up", "/v1/gateway/", "/v1/gateway",
		"/v1/gateway/up/a/b/c?x=1", "/v1/gateway/a%20b/x", "/v1/gateway/a%2Fb/x", "/v1/gateway/a%252Fb/x",
		"/v1/gateway/%75p/x", "/v1/%67ateway/up/x", "/v1/gateway/up/%2e%2e/x", "/v1/gateway/up/../x",
		"/v1/gateway/up//x", "/v1/gateway//x", "/v1/gateway/./x", "/v1/gateway/up/x/", "/v1/gateway/a%zzb/x",
		"/v1/gateway/%2F/x", "/v1/gateway/ü/x", "/v1/gateway/up/x%2Fy", "/V1/gateway/up/x", "/v1/Gateway/up/x",
		"/v1/integrations/up", "/v1/keys/verify", "/", "*", "http://k/v1/gateway/up/x",
	}
	methods := append([]string{"CONNECT", "TRACE", "get", "PROPFIND"}, gateway.Methods...)
	for _, target := range targets {
		for _, m := range methods {
			fc, fb := serve(t, fast, m, target)
			sc, sb := serve(t, slow, m, target)
			// Error bodies carry a request id of their own.
			if fc != sc || (fc == 200 && fb != sb) {
				t.Errorf("%s %s: dispatch answered %d %q, the mux %d %q", m, target, fc, fb, sc, sb)
			}
		}
	}
	if c, b := serve(t, fast, "GET", "/v1/gateway/up/v1/ping"); c != 200 || b != "GET "+gatewayPattern+"|up" {
		t.Errorf("a gateway call answered %d %q", c, b)
	}
}

// A route sharing the gateway's prefix turns the dispatch off: the mux
// would prefer its literal segment.
func TestGatewayDispatchYieldsToNeighbours(t *testing.T) {
	a := dispatchAPI(t, Route{Pattern: "POST /v1/gateway/status/{x...}", Open: true, WhileSealed: true,
		Raw: func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "status") }})
	if a.gateway != nil {
		t.Fatal("the dispatch stayed on beside a route under /v1/gateway")
	}
	if c, b := serve(t, a, "POST", "/v1/gateway/status/x"); c != 200 || b != "status" {
		t.Errorf("POST /v1/gateway/status/x answered %d %q, want the literal route", c, b)
	}
}
