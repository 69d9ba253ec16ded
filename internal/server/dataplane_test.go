package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/h1"
)

// The data-plane listener serves the gateway, token exchange, key
// verification and health, and nothing of the management API; DPoP proofs
// on it name its own public URL.
func TestDataPlaneListener(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	cfg.GatewayListen = "127.0.0.1:0"
	r := start(t, cfg, nil)
	root, u, gw := r.node.DevRootToken(), r.url, r.gwURL
	if gw == "" || gw == u {
		t.Fatalf("data-plane URL = %q (API %q)", gw, u)
	}
	up := newUpstream(t)
	const upKey = "dataplane-upstream-key-51c2" // keyward:allow (test fixture)
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "maps"}, nil)
	if c := call(t, "PUT", u+"/v1/projects/maps/envs/prod/secrets/k", root, map[string]string{"value": upKey}, nil); c != 200 && c != 201 {
		t.Fatalf("put secret = %d", c)
	}
	var created struct {
		GatewayURL string `json:"gateway_url"`
	}
	if c := call(t, "POST", u+"/v1/integrations", root, map[string]any{"name": "maps", "upstream": up.srv.URL,
		"secret": "maps/prod/k", "inject": "header:Authorization=Bearer {{secret}}", "allow_private": true}, &created); c != 201 {
		t.Fatalf("create integration = %d", c)
	}
	// The API names the data-plane address apps call the integration at.
	if created.GatewayURL != gw+"/v1/gateway/maps/" {
		t.Fatalf("gateway_url = %q, want %q", created.GatewayURL, gw+"/v1/gateway/maps/")
	}

	// The management API is not there, whatever the token.
	for _, rt := range []struct{ method, path string }{
		{"GET", "/v1/projects"}, {"POST", "/v1/sys/seal"}, {"GET", "/v1/integrations"},
		{"GET", "/v1/audit"}, {"GET", "/metrics"}, {"GET", "/v1/sys/openapi.json"},
		{"POST", "/v1/auth/token/create"}, {"POST", "/v1/sys/unseal"},
	} {
		if c := call(t, rt.method, gw+rt.path, root, nil, nil); c != http.StatusNotFound {
			t.Errorf("%s %s on the data plane = %d, want 404", rt.method, rt.path, c)
		}
		if rt.method != "GET" {
			continue // (sealing the node on the API would end the test)
		}
		if c := call(t, rt.method, u+rt.path, root, nil, nil); c == http.StatusNotFound {
			t.Errorf("%s %s on the API = 404, want it served", rt.method, rt.path)
		}
	}
	if c := call(t, "GET", gw+"/v1/sys/health", "", nil, nil); c != 200 {
		t.Errorf("health on the data plane = %d", c)
	}

	// A DPoP-bound app token, exchanged on the data plane, calls the
	// gateway there; its proofs name the data-plane URL, so a proof made
	// for the API's URL does not pass.
	idp := newOIDCIssuer(t)
	setUpMobile(t, u, root, idp)
	device, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	proof := func(method, target, tok string) string { return mustProof(t, device, method, target, tok) }
	ex := post(t, gw+"/v1/oauth/token", exchangeForm(idp.idToken(t, "alice", 10*time.Minute, nil)), "", proof("POST", gw+"/v1/oauth/token", ""))
	at, _ := ex.body["access_token"].(string)
	if ex.status != 200 || at == "" {
		t.Fatalf("exchange on the data plane = %d %v", ex.status, ex.body)
	}
	target := gw + "/v1/gateway/maps/v1/geocode"
	if res := gatewayCall(t, target, "DPoP "+at, proof("GET", target, at)); res.status != 200 || !strings.Contains(res.body, `"path":"/v1/geocode"`) {
		t.Fatalf("gateway call on the data plane = %d %s", res.status, res.body)
	}
	if seen := up.seen(); len(seen) != 1 || seen[0] != "Bearer "+upKey {
		t.Fatalf("upstream saw %q, want the injected key once", seen)
	}
	if res := gatewayCall(t, target, "DPoP "+at, proof("GET", u+"/v1/gateway/maps/v1/geocode", at)); res.status != 401 {
		t.Errorf("a proof naming the API's URL = %d, want 401", res.status)
	}

	// Key verification is there too, and revocation (RFC 7009) reaches the
	// token at once.
	key := createKey(t, u, root, "maps", "prod", map[string]any{"name": "partner", "scopes": []string{"integrations/maps"}})
	if c, v, _ := verifyKey(t, gw, root, map[string]any{"key": key.Key}); c != 200 || !v.Valid {
		t.Fatalf("verify on the data plane = %d %+v", c, v)
	}
	if res := post(t, gw+"/v1/oauth/revoke", map[string][]string{"token": {at}}, "", ""); res.status != 200 {
		t.Fatalf("revoke on the data plane = %d %v", res.status, res.body)
	}
	if res := gatewayCall(t, target, "DPoP "+at, proof("GET", target, at)); res.status != 401 {
		t.Errorf("a revoked token on the data plane = %d, want 401", res.status)
	}
}

// A data-plane address already in use is named in the error, and the API
// listener is not left bound.
func TestDataPlaneListenerAddressInUse(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	cfg.GatewayListen = "127.0.0.1:0"
	busy := start(t, cfg, nil)
	cfg2 := testConfig(t.TempDir())
	cfg2.Dev = true
	cfg2.GatewayListen = strings.TrimPrefix(busy.gwURL, "http://")
	node, err := New(t.Context(), cfg2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if _, err := node.Listen(); err == nil || !strings.Contains(err.Error(), "--gateway-listen") || !strings.Contains(err.Error(), cfg2.GatewayListen) {
		t.Fatalf("Listen = %v, want an error naming --gateway-listen and the address", err)
	}
}

// Over TLS the data-plane listener serves HTTP/1.1 clients itself (h1) and
// hands those that negotiate h2 to net/http's server; both stop with the
// node.
func TestDataPlaneListenerTLS(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	cfg.GatewayListen = "127.0.0.1:0"
	certFile, keyFile, pool := writeSelfSigned(t, t.TempDir())
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	r := start(t, cfg, nil)
	url := strings.Replace(r.gwURL, "http://", "https://", 1) + "/v1/sys/health"
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		resp.Body.Close()
		want := 1
		if h2 {
			want = 2
		}
		if resp.StatusCode != 200 || resp.ProtoMajor != want || resp.TLS == nil {
			t.Errorf("health with h2=%v: %d over %s", h2, resp.StatusCode, resp.Proto)
		}
		tr.CloseIdleConnections()
	}
	r.stop(t)
}

// A WebSocket session through the data-plane listener: h1 hands the
// connection to the gateway, frames pass both ways, and the node stops
// without waiting for the session, which ends with it.
func TestDataPlaneWebSocket(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	cfg.GatewayListen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 20 * time.Second
	r, root := wsRealtimeOn(t, time.Second, cfg)
	conn, br, _ := wsOpen(t, r.gwURL, root)
	io.WriteString(conn, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	stopping := time.Now()
	r.stop(t)
	if d := time.Since(stopping); d > cfg.ShutdownTimeout/2 {
		t.Errorf("the node took %s to stop with a session open", d)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Error("the session goes on after the node stopped")
	}
}

// Both listeners are served by keyward's own HTTP/1.1 server unless
// http_server = "net/http", and either way they answer.
func TestHTTPServerSetting(t *testing.T) {
	for _, tc := range []struct {
		server string
		h1     bool
	}{{config.HTTPServerKeyward, true}, {config.HTTPServerNetHTTP, false}} {
		t.Run(tc.server, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.Dev = true
			cfg.GatewayListen = "127.0.0.1:0"
			cfg.HTTPServer = tc.server
			r := start(t, cfg, nil)
			_, isH1 := r.node.listenerServer(http.NotFoundHandler(), nil).(*h1.Server)
			if isH1 != tc.h1 {
				t.Errorf("listenerServer is h1: %v, want %v", isH1, tc.h1)
			}
			for _, u := range []string{r.url, r.gwURL} {
				if c := call(t, "GET", u+"/v1/sys/health", "", nil, nil); c != http.StatusOK {
					t.Errorf("%s: health = %d", u, c)
				}
			}
		})
	}
}

// Where integrations say apps call them: gateway_public_url when set; the
// data-plane listener's host and port, the request's host when the
// listener is on every interface; nothing without a data-plane address.
func TestDataPlaneURL(t *testing.T) {
	for _, tc := range []struct {
		publicURL, addr, host, tls, want string
	}{
		{"https://api.example.com", "0.0.0.0:8443", "10.0.0.5:8270", "", "https://api.example.com"},
		{"", "0.0.0.0:8443", "keyward.internal:8270", "", "http://keyward.internal:8443"},
		{"", "[::]:8443", "[fd00::5]:8270", "cert.pem", "https://[fd00::5]:8443"},
		{"", "10.0.0.9:8443", "keyward.internal:8270", "", "http://10.0.0.9:8443"},
		{"", "", "keyward.internal:8270", "", ""},
	} {
		n := &Node{}
		n.cfg.GatewayPublicURL, n.cfg.TLSCert = tc.publicURL, tc.tls
		if tc.addr != "" {
			n.gatewayAddr.Store(&tc.addr)
		}
		r, _ := http.NewRequest("GET", "http://"+tc.host+"/v1/integrations", nil)
		if got := n.dataPlaneURL(r); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc, got, tc.want)
		}
	}
}
