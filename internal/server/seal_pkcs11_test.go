//go:build pkcs11 && cgo

package server

import (
	"testing"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/seal/sealtest"
)

// The configured PKCS#11 seal against SoftHSM2: the key is made at init,
// the node unseals itself at every start, and a start whose token lacks
// the key fails instead of making a new one.
func TestPKCS11SealWithSoftHSM(t *testing.T) {
	hsm := sealtest.SoftHSM(t)
	cfg := testConfig(t.TempDir())
	cfg.Seal, cfg.PKCS11Lib, cfg.PKCS11Token, cfg.PKCS11Pin, cfg.PKCS11Key = config.SealPKCS11, hsm.Lib, hsm.Token, hsm.Pin, hsm.Key
	r := start(t, cfg, nil)
	var ir initOut
	if code := call(t, "POST", r.url+"/v1/sys/init", "", map[string]int{"shares": 3, "threshold": 2}, &ir); code != 200 {
		t.Fatalf("init = %d", code)
	}
	var h health
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 200 || h.Sealed || h.Seal != "pkcs11" {
		t.Fatalf("health after init = %d %+v", code, h)
	}
	r.stop(t)
	r = start(t, cfg, nil)
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 200 || h.Sealed {
		t.Fatalf("health after restart = %d %+v, want unsealed by the HSM", code, h)
	}
	r.stop(t)

	bad := cfg
	bad.PKCS11Key = "no-such-key"
	if _, err := New(t.Context(), bad, Options{}); err == nil {
		t.Fatal("a start whose token lacks the key succeeded (it must not make a new key once a wrapped root exists)")
	}
}
