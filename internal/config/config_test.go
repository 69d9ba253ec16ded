package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return Load(fs, func(k string) string { return env[k] })
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8270" || c.DataDir != "./keyward-data" || c.Storage != "sqlite" || c.Dev {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestPrecedenceFileEnvFlag(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keyward.toml")
	os.WriteFile(file, []byte("listen = \"127.0.0.1:1111\"\ndata = \"/from/file\"\nlog_level = \"debug\"\n"), 0o600)
	c, err := load(t, []string{"--config", file, "--listen", "127.0.0.1:3333"},
		map[string]string{"KEYWARD_LISTEN": "127.0.0.1:2222", "KEYWARD_DATA": "/from/env", "KEYWARD_DEV": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:3333" {
		t.Errorf("flag should beat env and file: listen = %s", c.Listen)
	}
	if c.DataDir != "/from/env" {
		t.Errorf("env should beat file: data = %s", c.DataDir)
	}
	if c.LogLevel != "debug" || !c.Dev {
		t.Errorf("file/env values lost: %+v", c)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("listen = \"x\"\nlisten = = 3\n"), 0o600)
	unknown := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknown, []byte("lisen = \"127.0.0.1:1\"\n"), 0o600)
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--listen", "nonsense"}, nil, "listen"},
		{[]string{"--storage", "mysql://x"}, nil, "storage"},
		{[]string{"--tls-cert", "a.pem"}, nil, "tls-key"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
		{[]string{"--http-server", "nginx"}, nil, "http-server"},
		{nil, map[string]string{"KEYWARD_HTTP_SERVER": "net/http2"}, "http-server"},
		{nil, map[string]string{"KEYWARD_DEV": "maybe"}, "KEYWARD_DEV"},
		{[]string{"--config", bad}, nil, "line 2"},
		{[]string{"--config", unknown}, nil, "unknown setting lisen"},
		{[]string{"--config", filepath.Join(dir, "missing.toml")}, nil, "no such file"},
		{[]string{"--public-url", "keyward.example.com"}, nil, "public-url"},
		{nil, map[string]string{"KEYWARD_PUBLIC_URL": "https://keyward.example.com/?x=1"}, "public-url"},
		{[]string{"--public-url", "ftp://keyward.example.com"}, nil, "public-url"},
		{[]string{"--gateway-listen", "8443"}, nil, "gateway-listen"},
		{[]string{"--cors-origins", "http://app.example.com"}, nil, "cors-origins"},
		{[]string{"--cors-origins", "https://app.example.com/path"}, nil, "cors-origins"},
		{nil, map[string]string{"KEYWARD_CORS_ORIGINS": "app.example.com"}, "cors-origins"},
		{[]string{"--gateway-listen", "127.0.0.1:8270"}, nil, "must differ from listen"},
		{[]string{"--gateway-public-url", "https://gw.example.com"}, nil, "without gateway-listen"},
		{nil, map[string]string{"KEYWARD_GATEWAY_LISTEN": "0.0.0.0:8443", "KEYWARD_GATEWAY_PUBLIC_URL": "gw.example.com"}, "gateway-public-url"},
		{[]string{"--anomaly-revoke", "spike,everything"}, nil, `anomaly-revoke "everything"`},
		{[]string{"--anomaly-revoke", "expiring"}, nil, `anomaly-revoke "expiring"`},
		{[]string{"--expiry-warning", "14d"}, nil, "expiry-warning"},
		{[]string{"--expiry-warning", "-1h"}, nil, "expiry-warning"},
		{nil, map[string]string{"KEYWARD_EXPIRY_WARNING": "9000h"}, "KEYWARD_EXPIRY_WARNING"},
		{[]string{"--anomaly-spike-min", "0"}, nil, "anomaly-spike-min"},
		{nil, map[string]string{"KEYWARD_ANOMALY_SPIKE_FACTOR": "0.5"}, "KEYWARD_ANOMALY_SPIKE_FACTOR"},
		{[]string{"--anomaly-refusals-min", "many"}, nil, "anomaly-refusals-min"},
		{[]string{"--audit-webhook", "http://siem.example.com/collect"}, map[string]string{"KEYWARD_AUDIT_WEBHOOK_SECRET": "0123456789abcdef"}, "audit-webhook: want an https://"}, // keyward:allow (test fixture)
		{[]string{"--audit-webhook", "https://siem.example.com/collect"}, nil, "KEYWARD_AUDIT_WEBHOOK_SECRET"},
		{[]string{"--audit-webhook", "https://siem.example.com/collect"}, map[string]string{"KEYWARD_AUDIT_WEBHOOK_SECRET": "short"}, "at least 16"},
	}
	for _, c := range cases {
		_, err := load(t, c.args, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: err = %v, want it to mention %q", c.args, c.env, err, c.want)
		}
	}
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse([]string{"--no-such-flag"}); err == nil {
		t.Error("unknown flag accepted")
	}
}

func TestPublicURL(t *testing.T) {
	c, err := load(t, []string{"--public-url", "https://keyward.example.com/kw"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.ParsedPublicURL()
	if err != nil || u.Host != "keyward.example.com" || u.Path != "/kw" {
		t.Fatalf("public url = %v, %v", u, err)
	}
	if u, err := (Config{}).ParsedPublicURL(); u != nil || err != nil {
		t.Fatalf("unset public url = %v, %v", u, err)
	}
}

func TestGatewayListen(t *testing.T) {
	c, err := load(t, []string{"--gateway-listen", "0.0.0.0:8443"}, map[string]string{"KEYWARD_GATEWAY_PUBLIC_URL": "https://gw.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if c.GatewayListen != "0.0.0.0:8443" {
		t.Errorf("gateway listen = %q", c.GatewayListen)
	}
	u, err := c.ParsedGatewayPublicURL()
	if err != nil || u.Host != "gw.example.com" {
		t.Fatalf("gateway public url = %v, %v", u, err)
	}
	if c, err := load(t, nil, nil); err != nil || c.GatewayListen != "" {
		t.Fatalf("default gateway listen = %q, %v; want off", c.GatewayListen, err)
	}
}

func TestCORSOrigins(t *testing.T) {
	c, err := load(t, []string{"--cors-origins", "https://App.Example.com, http://localhost:5173,https://app.example.com/,*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ParsedCORSOrigins()
	if err != nil || strings.Join(got, " ") != "https://app.example.com http://localhost:5173 *" {
		t.Fatalf("origins = %q, %v", got, err)
	}
	if c, _ := load(t, nil, nil); len(c.CORSOrigins) != 0 {
		t.Fatalf("default origins = %q", c.CORSOrigins)
	}
}

func TestPasswordNotInStorageError(t *testing.T) {
	_, err := load(t, []string{"--storage", "mysql://u:pa55word@h/db"}, nil)
	if err == nil || strings.Contains(err.Error(), "pa55word") {
		t.Fatalf("err = %v", err)
	}
	c, err := load(t, []string{"--storage", "postgres://u:p@127.0.0.1/db"}, nil)
	if err != nil || !c.IsPostgres() {
		t.Fatalf("postgres URL rejected: %v", err)
	}
}

func FuzzLoadFile(f *testing.F) {
	f.Add("listen = \"127.0.0.1:1\"\n")
	f.Add("dev = true\nshutdown_timeout = 5\n")
	f.Fuzz(func(t *testing.T, s string) {
		p := filepath.Join(t.TempDir(), "c.toml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		c := Defaults()
		_ = loadFile(&c, p) // must not panic
	})
}

func TestAnomalyRevoke(t *testing.T) {
	c, err := load(t, []string{"--anomaly-revoke", "refusals"}, nil)
	if err != nil || len(c.AnomalyRevoke) != 1 || c.AnomalyRevoke[0] != AnomalyRefusals {
		t.Fatalf("--anomaly-revoke refusals: %v, %v", c.AnomalyRevoke, err)
	}
	c, err = load(t, []string{"--anomaly-spike-min", "100", "--anomaly-spike-factor", "4.5", "--anomaly-refusals-min", "5"}, nil)
	if err != nil || c.AnomalySpikeMin != 100 || c.AnomalySpikeFactor != 4.5 || c.AnomalyRefusalsMin != 5 {
		t.Fatalf("thresholds: %+v, %v", c, err)
	}
	if c, err := load(t, nil, nil); err != nil || len(c.AnomalyRevoke) != 0 || c.ExpiryWarning != DefaultExpiryWarning {
		t.Fatalf("default: %v, %v, %v (want nothing revoked, a two-week expiry warning)", c.AnomalyRevoke, c.ExpiryWarning, err)
	}
	if c, err := load(t, []string{"--expiry-warning", "0s"}, nil); err != nil || c.ExpiryWarning != 0 {
		t.Fatalf("--expiry-warning 0s: %v, %v", c.ExpiryWarning, err)
	}
}

func TestAuditWebhook(t *testing.T) {
	c, err := load(t, []string{"--audit-webhook", "https://siem.example.com/collect"}, map[string]string{"KEYWARD_AUDIT_WEBHOOK_SECRET": "0123456789abcdef"}) // keyward:allow (test fixture)
	if err != nil || c.AuditWebhook != "https://siem.example.com/collect" || c.AuditWebhookSecret != "0123456789abcdef" {                                     // keyward:allow (test fixture)
		t.Fatalf("%+v, %v", c, err)
	}
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	RegisterFlags(fs)
	if fs.Lookup("audit-webhook-secret") != nil {
		t.Error("the webhook secret can be given as a flag (visible in ps)")
	}
}

func TestSeal(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil || c.Seal != SealShamir || c.PKCS11Key != "keyward-root" {
		t.Fatalf("default seal = %q, key %q, %v", c.Seal, c.PKCS11Key, err)
	}
	c, err = load(t, []string{"--seal", "pkcs11", "--pkcs11-lib", "/usr/lib/softhsm/libsofthsm2.so", "--pkcs11-token", "kw"}, map[string]string{"KEYWARD_PKCS11_PIN": "1234"})
	if err != nil || c.Seal != SealPKCS11 || c.PKCS11Token != "kw" || c.PKCS11Pin != "1234" {
		t.Fatalf("%+v, %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--seal", "kms"}, `seal "kms"`},
		{[]string{"--seal", "pkcs11", "--pkcs11-token", "kw"}, "pkcs11-lib"},
		{[]string{"--seal", "pkcs11", "--pkcs11-lib", "/x.so"}, "pkcs11-token"},
		{[]string{"--seal", "pkcs11", "--pkcs11-lib", "/x.so", "--pkcs11-token", "kw", "--dev"}, "dev"},
	} {
		if _, err := load(t, tc.args, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to name %q", tc.args, err, tc.want)
		}
	}
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	RegisterFlags(fs)
	if fs.Lookup("pkcs11-pin") != nil {
		t.Error("the PIN can be given as a flag (visible in ps)")
	}
}

func TestAccessWebhook(t *testing.T) {
	c, err := load(t, []string{"--access-webhook", "https://chat.example.com/hooks/approvers"}, map[string]string{"KEYWARD_ACCESS_WEBHOOK_SECRET": "0123456789abcdef"}) // keyward:allow (test fixture)
	if err != nil || c.AccessWebhook != "https://chat.example.com/hooks/approvers" || c.AccessWebhookSecret != "0123456789abcdef" {                                     // keyward:allow (test fixture)
		t.Fatalf("%+v, %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--access-webhook", "http://chat.example.com/h"}, map[string]string{"KEYWARD_ACCESS_WEBHOOK_SECRET": "0123456789abcdef"}, "access-webhook: want an https:// URL"}, // keyward:allow (test fixture)
		{[]string{"--access-webhook", "https://chat.example.com/h"}, nil, "KEYWARD_ACCESS_WEBHOOK_SECRET"},
	} {
		if _, err := load(t, tc.args, tc.env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	RegisterFlags(fs)
	if fs.Lookup("access-webhook-secret") != nil {
		t.Error("the access webhook's secret can be given as a flag (visible in ps)")
	}
}
