package server

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/redact"
	"github.com/keyward/keyward/internal/seal"
)

// softSeal is an HSM seal with the module's AES key in memory: the auto
// unseal path of internal/seal's PKCS#11 wrapper without cgo (that wrapper
// is tested against SoftHSM2 in internal/seal with -tags pkcs11).
type softSeal struct {
	seal.Wrapper
	closed int
}

func (s *softSeal) Close() error { s.closed++; return nil }

func newSoftSeal(t *testing.T) *softSeal {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	b, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(b)
	w, err := seal.NewAEAD(g, "pkcs11", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &softSeal{Wrapper: w}
}

// startSealed starts a node on cfg's data with w as its HSM seal (nil:
// Shamir shares only); the log goes to logw.
func startSealed(t *testing.T, cfg config.Config, w seal.Wrapper, logw io.Writer) *running {
	t.Helper()
	if logw == nil {
		logw = io.Discard
	}
	log := slog.New(redact.NewHandler(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return startOpts(t, cfg, Options{Log: log, Seal: w})
}

type initOut struct {
	Shares    []string `json:"shares"`
	RootToken string   `json:"root_token"`
	Seal      string   `json:"seal"`
	Sealed    bool     `json:"sealed"`
}

func TestAutoUnsealWithHSMSeal(t *testing.T) {
	cfg := testConfig(t.TempDir())
	hsm := newSoftSeal(t)
	r := startSealed(t, cfg, hsm, nil)
	var ir initOut
	if code := call(t, "POST", r.url+"/v1/sys/init", "", map[string]int{"shares": 3, "threshold": 2}, &ir); code != 200 || len(ir.Shares) != 3 || ir.Seal != "pkcs11" || ir.Sealed {
		t.Fatalf("init = %d, %d shares, seal %q, sealed %v; want 3 shares, unsealed by pkcs11", code, len(ir.Shares), ir.Seal, ir.Sealed)
	}
	// Unsealed from initialisation on, and serving.
	var h health
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 200 || h.Sealed || h.Seal != "pkcs11" {
		t.Fatalf("health after init = %d %+v, want 200 unsealed by pkcs11", code, h)
	}
	if code := call(t, "POST", r.url+"/v1/projects", ir.RootToken, map[string]string{"name": "app"}, nil); code != 201 {
		t.Fatalf("create project = %d", code)
	}
	// The stored wrapped key is not the root key: no share opens as it.
	wrapped := r.node.sys.wrapped
	if len(wrapped) == 0 {
		t.Fatal("no wrapped root key stored")
	}
	r.stop(t)
	if hsm.closed != 1 {
		t.Fatalf("the HSM session was closed %d times at stop, want 1", hsm.closed)
	}

	// A restart unseals itself, and what was written is there.
	r = startSealed(t, cfg, hsm, nil)
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 200 || h.Sealed {
		t.Fatalf("health after restart = %d %+v, want unsealed", code, h)
	}
	var projects struct {
		Projects []struct {
			Name string `json:"name"`
		} `json:"projects"`
	}
	if code := call(t, "GET", r.url+"/v1/projects", ir.RootToken, nil, &projects); code != 200 || len(projects.Projects) != 1 {
		t.Fatalf("projects after auto unseal = %d %+v", code, projects)
	}
	// Sealed by an operator, it stays sealed until its shares or a restart.
	if code := call(t, "POST", r.url+"/v1/sys/seal", ir.RootToken, nil, nil); code != 204 {
		t.Fatalf("seal = %d", code)
	}
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 503 || !h.Sealed {
		t.Fatalf("health after seal = %d %+v", code, h)
	}
	r.stop(t)

	// Without the HSM (seal shamir), the shares are recovery shares.
	r = startSealed(t, cfg, nil, nil)
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 503 || !h.Sealed || h.Seal != "shamir" {
		t.Fatalf("health without the HSM = %d %+v, want sealed, shamir", code, h)
	}
	unsealWith(t, r, ir.Shares[:2])
	r.stop(t)
}

func unsealWith(t *testing.T, r *running, shares []string) {
	t.Helper()
	var p struct {
		Sealed bool `json:"sealed"`
	}
	for _, s := range shares {
		if code := call(t, "POST", r.url+"/v1/sys/unseal", "", map[string]string{"share": s}, &p); code != 200 {
			t.Fatalf("unseal = %d", code)
		}
	}
	if p.Sealed {
		t.Fatal("still sealed after the threshold of shares")
	}
}

// A node initialised with shares only gets auto unseal from its first
// unseal by shares under an HSM seal; a wrapped key that no longer opens
// (another HSM key) leaves the node sealed, and the shares repair it.
func TestAutoUnsealEnabledAndRepairedByShares(t *testing.T) {
	cfg := testConfig(t.TempDir())
	r := startSealed(t, cfg, nil, nil)
	var ir initOut
	if code := call(t, "POST", r.url+"/v1/sys/init", "", map[string]int{"shares": 3, "threshold": 2}, &ir); code != 200 || ir.Seal != "shamir" || !ir.Sealed {
		t.Fatalf("init = %d, seal %q, sealed %v; want sealed, shamir", code, ir.Seal, ir.Sealed)
	}
	r.stop(t)

	hsm := newSoftSeal(t)
	var logs syncBuffer
	r = startSealed(t, cfg, hsm, &logs)
	var h health
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 503 || !h.Sealed {
		t.Fatalf("health = %d %+v, want sealed: no wrapped key yet", code, h)
	}
	if !strings.Contains(logs.String(), "unseal it once with its shares") {
		t.Fatalf("the log does not say how to enable auto unseal:\n%s", logs.String())
	}
	unsealWith(t, r, ir.Shares[1:])
	r.stop(t)
	r = startSealed(t, cfg, hsm, nil)
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 200 || h.Sealed {
		t.Fatalf("health after the first unseal by shares and a restart = %d %+v, want unsealed", code, h)
	}
	r.stop(t)

	// Another HSM key: sealed, a clear log line, the shares still open it
	// and store a wrapped key the new HSM key opens.
	other := newSoftSeal(t)
	logs = syncBuffer{}
	r = startSealed(t, cfg, other, &logs)
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 503 || !h.Sealed {
		t.Fatalf("health with another HSM key = %d %+v, want sealed", code, h)
	}
	if !strings.Contains(logs.String(), "auto unseal failed") || !strings.Contains(logs.String(), "does not open with this key") {
		t.Fatalf("the log does not say why the node is sealed:\n%s", logs.String())
	}
	unsealWith(t, r, ir.Shares[:2])
	r.stop(t)
	r = startSealed(t, cfg, other, nil)
	if code := call(t, "GET", r.url+"/v1/sys/health", "", nil, &h); code != 200 || h.Sealed {
		t.Fatalf("health after the repair = %d %+v, want unsealed", code, h)
	}
	r.stop(t)
}

func TestSealPKCS11WithoutSupport(t *testing.T) {
	if seal.PKCS11Available {
		t.Skip("this test binary has PKCS#11 support")
	}
	cfg := testConfig(t.TempDir())
	cfg.Seal, cfg.PKCS11Lib, cfg.PKCS11Token = config.SealPKCS11, "/usr/lib/softhsm/libsofthsm2.so", "kw"
	_, err := New(t.Context(), cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "-tags pkcs11") {
		t.Fatalf("New with seal pkcs11 in a build without it: %v, want how to build it", err)
	}
}
