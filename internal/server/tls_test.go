package server

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
