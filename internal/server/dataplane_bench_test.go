package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testupstream"
	"github.com/keyward/keyward/internal/token"
)

// BenchmarkDataPlaneCall measures one proxied call through a whole node's
// data-plane listener (keyward's HTTP/1.1 server): token check, policy,
// the integration's checks, the injection, the upstream exchange and the
// audit entry, as bench/gateway's gateway target does, from 64 keep-alive
// connections. The callers and the upstream are minimal raw HTTP/1.1 over
// loopback, so allocs/op is almost all keyward's and ns/op mostly is.
// The upstream answers 401 without the injected key, so a 200 proves it.
//
//	go test ./internal/server -run '^$' -bench DataPlaneCall -benchmem -count 6
func BenchmarkDataPlaneCall(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(DefaultGCPercent)) // as keyward server runs
	cfg := testConfig(b.TempDir())
	cfg.Dev = true
	cfg.GatewayListen = "127.0.0.1:0"
	r := startB(b, cfg)
	root := r.node.DevRootToken()
	const upKey = "bench-dataplane-upstream-key-9d1e" // keyward:allow (test fixture)
	up := testupstream.Raw(b, "Authorization: Bearer "+upKey, "")
	mustCall := func(method, path string, body any, want int) {
		if code := callTB(b, method, r.url+path, root, body); code != want {
			b.Fatalf("%s %s = %d", method, path, code)
		}
	}
	mustCall("POST", "/v1/projects", map[string]string{"name": "bench"}, 201)
	mustCall("PUT", "/v1/projects/bench/envs/prod/secrets/k", map[string]string{"value": upKey}, 200)
	mustCall("POST", "/v1/integrations", map[string]any{"name": "up", "upstream": "http://" + up, "secret": "bench/prod/k",
		"inject": "header:Authorization=Bearer {{secret}}", "allow_private": true}, 201)
	if code, out := raw(b, "PUT", r.url+"/v1/policies/bench-app", root, "application/yaml",
		"name: bench-app\nrules:\n  - resources: [integrations/up]\n    allow: [proxy]\n"); code != 200 {
		b.Fatalf("put policy = %d %v", code, out)
	}
	app, _, err := r.node.tokens.Issue(b.Context(), token.Request{Principal: "app:bench", AuthMethod: "token", Policies: []string{"bench-app"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	req := []byte("GET /v1/gateway/up/v1/ping HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench/1\r\nAuthorization: Bearer " + app + "\r\n\r\n")
	addr := strings.TrimPrefix(r.gwURL, "http://")
	b.SetParallelism(32) // 64 callers on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			status, err := readRawResponse(br)
			if err != nil || status != 200 {
				b.Errorf("status %d, %v", status, err)
				return
			}
		}
	})
}

// readRawResponse reads one answer with a Content-Length body and returns
// its status.
func readRawResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil || len(line) < 12 {
		return 0, io.ErrUnexpectedEOF
	}
	status, _ := strconv.Atoi(string(line[9:12]))
	length := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	_, err = br.Discard(length)
	return status, err
}
