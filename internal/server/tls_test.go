package server

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/h1"
	"github.com/keyward/keyward/internal/testtls"
)

// writeSelfSigned writes a certificate for 127.0.0.1 and its key under dir.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c := testtls.SelfSigned(t)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, c.Pool
}

func TestTLSRequiresVersion12(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Dev = true
	certFile, keyFile, pool := writeSelfSigned(t, t.TempDir())
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	r := start(t, cfg, nil)
	url := strings.Replace(r.url, "http://", "https://", 1) + "/v1/sys/health"

	client := func(max uint16) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: max},
		}}
	}
	resp, err := client(tls.VersionTLS13).Get(url)
	if err != nil {
		t.Fatalf("TLS 1.3 client: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("health over TLS = %d", resp.StatusCode)
	}
	resp, err = client(tls.VersionTLS12).Get(url)
	if err != nil {
		t.Fatalf("TLS 1.2 client: %v", err)
	}
	resp.Body.Close()
	_, err = client(tls.VersionTLS11).Get(url)
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("a TLS 1.1 client: err = %v, want a protocol version alert", err)
	}
	// Plain HTTP to a TLS listener is not served either.
	if resp, err := http.Get(r.url + "/v1/sys/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS listener")
		}
	}
	r.stop(t)
}

// A TLS client at a plain-HTTP address is told at once, on either HTTP
// server: its TLS stack reports "not TLS" instead of waiting for the
// header timeout, and the answer names the mistake.
func TestTLSToPlainAnsweredAtOnce(t *testing.T) {
	for _, engine := range []string{config.HTTPServerKeyward, config.HTTPServerNetHTTP} {
		t.Run(engine, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.Dev, cfg.HTTPServer = true, engine
			r := start(t, cfg, nil)
			addr := strings.TrimPrefix(r.url, "http://")
			start := time.Now()
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
			if err == nil {
				conn.Close()
				t.Fatal("a TLS handshake with a plain-HTTP address succeeded")
			}
			if !strings.Contains(err.Error(), "does not look like a TLS handshake") || time.Since(start) > 3*time.Second {
				t.Fatalf("after %v: %v", time.Since(start), err)
			}
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "\x16\x03\x01\x00\x05hello")
			line, _ := bufio.NewReader(c).ReadString('\n')
			if !strings.HasPrefix(line, "HTTP/1.1 400 Bad Request: "+h1.TLSToPlainReason) {
				t.Fatalf("answer %q", line)
			}
			// Plain HTTP still works.
			if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, nil); code != 200 {
				t.Fatalf("health = %d", code)
			}
		})
	}
}
