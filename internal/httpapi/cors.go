package httpapi

import (
	"net/http"
	"slices"
	"strings"
)

// CORS (the Fetch standard's cross-origin checks) for web apps that call
// the data plane from a page on another origin: the gateway, token
// exchange and revocation. Only DataPlane routes answer cross-origin
// requests, and only for the origins configured (Deps.CORSOrigins; "*"
// for any). Credentials are bearer tokens in headers, never cookies, so
// no response allows credentials mode.

// corsAllowHeaders are the request headers a page may send: the
// credential, its DPoP proof, and the usual content headers.
var corsAllowHeaders = []string{"Authorization", "Content-Type", "Dpop", "Accept", "Accept-Language", "Content-Language",
	"Idempotency-Key", "If-Match", "If-None-Match", "Range", "X-Request-Id"}

// corsExposeHeaders are the response headers a page may read.
const corsExposeHeaders = "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy, WWW-Authenticate, DPoP-Nonce"

// corsOrigin returns the request's Origin when it may call this API
// cross-origin, else "".
func (a *API) corsOrigin(r *http.Request) string {
	if len(a.deps.CORSOrigins) == 0 {
		return ""
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return ""
	}
	if slices.Contains(a.deps.CORSOrigins, "*") || slices.Contains(a.deps.CORSOrigins, strings.ToLower(o)) {
		return o
	}
	return ""
}

// dataPlaneRoute reports whether method on r's path is a DataPlane route.
func (a *API) dataPlaneRoute(r *http.Request, method string) bool {
	probe := r
	if method != r.Method {
		probe = r.Clone(r.Context())
		probe.Method = method
	}
	_, pattern := a.mux.Handler(probe)
	return a.dataPlane[pattern]
}

// cors handles a cross-origin request before routing: it answers a
// preflight (true: nothing more to do), or adds the headers a page needs
// to read the answer.
func (a *API) cors(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	// Every answer depends on Origin once CORS is on, also those without
	// CORS headers: a shared cache must not serve one to another origin.
	h.Add("Vary", "Origin")
	origin := a.corsOrigin(r)
	if origin == "" {
		return false
	}
	reqMethod := r.Header.Get("Access-Control-Request-Method")
	if r.Method == http.MethodOptions && reqMethod != "" {
		if !a.dataPlaneRoute(r, reqMethod) {
			return false // not a route pages may call: no CORS headers, the usual answer
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", reqMethod)
		h.Set("Access-Control-Allow-Headers", strings.Join(corsAllowHeaders, ", "))
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	if a.dataPlaneRoute(r, r.Method) {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	}
	return false
}
