package client_test

import (
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/keyward/keyward/client"
)

// A customer's own API checks the client API key of each request with
// keyward before serving it. The verifier's token needs read on the keys
// (policy: projects/shop/envs/prod/keys/** allow [read]).
func ExampleClient_VerifyKey() {
	kw, err := client.New(client.Config{}) // $KEYWARD_ADDR, $KEYWARD_TOKEN
	if err != nil {
		log.Fatal(err)
	}
	requireKey := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok {
				http.Error(w, "missing API key", http.StatusUnauthorized)
				return
			}
			ip, _, _ := net.SplitHostPort(r.RemoteAddr)
			v, err := kw.VerifyKey(r.Context(), client.VerifyKeyRequest{Key: key, Resource: "integrations/maps", SourceAddr: ip})
			switch {
			case err != nil:
				http.Error(w, "cannot verify the API key now", http.StatusServiceUnavailable)
			case v.Code == "RATE_LIMITED" || v.Code == "USAGE_EXCEEDED":
				http.Error(w, "slow down", http.StatusTooManyRequests)
			case !v.Valid:
				http.Error(w, "invalid API key", http.StatusUnauthorized)
			case v.EnvironmentKind != "live":
				http.Error(w, "a test key cannot be used in production", http.StatusForbidden)
			default:
				next.ServeHTTP(w, r) // v.Owner, v.Meta name the caller
			}
		})
	}
	http.Handle("/geocode", requireKey(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})))
}
