//go:build pkcs11 && cgo

// Package sealtest makes SoftHSM2 tokens for the tests of the PKCS#11 seal
// (binaries built with -tags pkcs11).
package sealtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/keyward/keyward/internal/seal"
)

// softHSMLib finds the SoftHSM2 module (Debian's package softhsm2).
func softHSMLib() string {
	for _, p := range []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// SoftHSM makes a fresh SoftHSM2 token in a temporary directory (through
// SOFTHSM2_CONF, so the test's environment must allow t.Setenv) and
// returns a config for it. Without SoftHSM2 the test skips, or fails when
// KEYWARD_TEST_HSM=required (set by .ci/run in CI).
func SoftHSM(t *testing.T) seal.PKCS11Config {
	t.Helper()
	lib := softHSMLib()
	util, err := exec.LookPath("softhsm2-util")
	if lib == "" || err != nil {
		if os.Getenv("KEYWARD_TEST_HSM") == "required" {
			t.Fatal("SoftHSM2 is not installed (apt-get install softhsm2) and KEYWARD_TEST_HSM=required")
		}
		t.Skip("SoftHSM2 not installed (apt-get install softhsm2)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", "keyward-test", "--so-pin", "87654321", "--pin", "12345678").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	return seal.PKCS11Config{Lib: lib, Token: "keyward-test", Pin: "12345678", Key: "keyward-root"}
}
