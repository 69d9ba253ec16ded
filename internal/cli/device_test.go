package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeviceKeyFile(t *testing.T) {
	env := &Env{Stderr: io.Discard}
	dir := t.TempDir()
	made := filepath.Join(dir, "new.pem")
	k, err := deviceKey(env, made)
	if err != nil {
		t.Fatal(err)
	}
	again, err := deviceKey(env, made)
	if err != nil || !again.Equal(k) {
		t.Fatalf("reading the key made: %v", err)
	}
	sec1 := filepath.Join(dir, "sec1.pem")
	der, _ := x509.MarshalECPrivateKey(k)
	os.WriteFile(sec1, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	if got, err := deviceKey(env, sec1); err != nil || !got.Equal(k) {
		t.Fatalf("SEC 1 key: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ = x509.MarshalPKCS8PrivateKey(p384)
	for name, tc := range map[string]struct {
		body []byte
		want string
	}{
		"not pem":   {[]byte("hello"), "not a PEM file"},
		"cert":      {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), "want an EC PRIVATE KEY"},
		"p384":      {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), "P-256"},
		"truncated": {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x01}}), filepath.Join(dir, "truncated.pem")},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "")+".pem")
		os.WriteFile(p, tc.body, 0o600)
		if _, err := deviceKey(env, p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
}

func TestDeviceCommandsNeedTheirArguments(t *testing.T) {
	h := newHarness(t)
	for _, args := range [][]string{{"device", "enroll", "kwe_x"}, {"device", "token", "dev_x"}, {"device", "enrollment", "create"}, {"device", "get"}} {
		if r := h.run("", args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%q)", args, r.code, ExitUsage, r.stderr)
		}
	}
}
