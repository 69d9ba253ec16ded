package server

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/keyward/keyward/internal/config"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyward/keyward/internal/token"
)

// BenchmarkGatewayCall measures one proxied call through a whole node
// (token check, policy, proxy to a local upstream, audit entry) from 64
// keep-alive connections. Profile with -cpuprofile.
func BenchmarkGatewayCall(b *testing.B) {
	cfg := testConfig(b.TempDir())
	cfg.Dev = true
	r := startB(b, cfg)
	root := r.node.DevRootToken()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true,"service":"up"}`+"\n")
	}))
	defer up.Close()
	tb := testing.TB(b)
	mustCall := func(method, path string, body any, want int) {
		if code := callTB(tb, method, r.url+path, root, body); code != want {
			b.Fatalf("%s %s = %d", method, path, code)
		}
	}
	mustCall("POST", "/v1/projects", map[string]string{"name": "bench"}, 201)
	mustCall("PUT", "/v1/projects/bench/envs/prod/secrets/k", map[string]string{"value": mapsKey}, 200)
	mustCall("POST", "/v1/integrations", map[string]any{"name": "up", "upstream": up.URL, "secret": "bench/prod/k",
		"inject": "header:Authorization=Bearer {{secret}}", "allow_private": true}, 201)
	app, _, err := r.node.tokens.Issue(b.Context(), token.Request{Principal: "app:bench", AuthMethod: "token", Policies: []string{"root"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", r.url+"/v1/gateway/up/ping", nil)
			req.Header.Set("Authorization", "Bearer "+app)
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

func startB(b *testing.B, cfg config.Config) *running {
	node, err := New(b.Context(), cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := node.Listen()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{node: node, url: "http://" + ln.API.Addr().String(), cancel: cancel, done: make(chan struct{})}
	if ln.Gateway != nil {
		r.gwURL = "http://" + ln.Gateway.Addr().String()
	}
	go func() {
		r.err = node.Serve(ctx, ln)
		close(r.done)
	}()
	b.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func callTB(t testing.TB, method, url, tok string, body any) int {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
