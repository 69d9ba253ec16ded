// Package config builds the server's one Config from, in rising precedence,
// built-in defaults, an optional TOML file, KEYWARD_* environment variables and
// command-line flags. It validates the result and names the setting at fault.
//
// Imported by cmd/keyward and internal/server only.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
)

// Config is everything a keyward node needs to start.
type Config struct {
	Listen   string `toml:"listen"`   // host:port
	DataDir  string `toml:"data"`     // directory for the SQLite file and dev-mode key
	Storage  string `toml:"storage"`  // "sqlite" or a postgres:// URL
	TLSCert  string `toml:"tls_cert"` // PEM certificate; with TLSKey enables HTTPS
	TLSKey   string `toml:"tls_key"`
	Dev      bool   `toml:"dev"`       // initialise and unseal automatically; not for production
	LogLevel string `toml:"log_level"` // debug, info, warn, error
	LogJSON  bool   `toml:"log_json"`  // JSON log lines instead of text

	// ShutdownTimeout bounds how long in-flight requests may take at shutdown.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`
	// MaxBodyBytes limits request bodies.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// AuditRetention, when positive, deletes audit entries older than it
	// (the chain stays verifiable from a signed anchor). 0 keeps everything.
	AuditRetention time.Duration `toml:"audit_retention"`
	// AuditFile, when set, receives every audit entry as a JSON line,
	// appended asynchronously (for log shippers).
	AuditFile string `toml:"audit_file"`
	// AuditWebhook, when set, receives every audit entry, as JSON lines in
	// signed batches (a SIEM's collector): https, or http on loopback.
	AuditWebhook string `toml:"audit_webhook"`
	// AuditWebhookSecret signs the webhook's requests (at least 16
	// characters). It is read from KEYWARD_AUDIT_WEBHOOK_SECRET or the
	// file, never from a flag (a command line is visible to every user).
	AuditWebhookSecret string `toml:"audit_webhook_secret"`
	// AccessWebhook, when set, is told of every just-in-time access
	// request asked for and decided (approvers' chat or paging tool), as
	// signed JSON lines like the audit webhook's: https, or http on
	// loopback. AccessWebhookSecret signs them (at least 16 characters;
	// KEYWARD_ACCESS_WEBHOOK_SECRET or the file, never a flag).
	AccessWebhook       string `toml:"access_webhook"`
	AccessWebhookSecret string `toml:"access_webhook_secret"`
	// PublicURL is the base URL clients reach this server by (e.g.
	// https://keyward.example.com), when a proxy or load balancer in front
	// terminates TLS or rewrites Host. DPoP proofs name the URL the client
	// called; keyward checks them against this URL plus the request path.
	PublicURL string `toml:"public_url"`
	// GatewayListen, when set, is a second address (host:port) that serves
	// only the data plane: the gateway, token exchange and revocation, key
	// verification and health. The management API stays on Listen, which
	// can then be kept off the network apps and devices reach.
	GatewayListen string `toml:"gateway_listen"`
	// GatewayPublicURL is PublicURL for the GatewayListen address: the base
	// URL apps reach the data plane by, checked in their DPoP proofs.
	GatewayPublicURL string `toml:"gateway_public_url"`
	// CORSOrigins are the web origins whose pages may call the data plane
	// (gateway, token exchange and revocation, key verification)
	// cross-origin: https://host[:port] (http only for localhost), or "*".
	// Empty: no cross-origin calls.
	CORSOrigins []string `toml:"cors_origins"`
	// DPoPNonce makes every DPoP proof carry a current server-provided
	// nonce (RFC 9449 §8), so a proof cannot be made in advance.
	DPoPNonce bool `toml:"dpop_nonce"`
	// HTTPServer is what serves HTTP/1.1 on both listeners: keyward's own
	// server (HTTPServerKeyward, the default; internal/h1) or Go's
	// (HTTPServerNetHTTP), kept as a way back.
	HTTPServer string `toml:"http_server"`
	// AnomalyRevoke names the anomalies (AnomalySpike, AnomalyRefusals)
	// whose credential is revoked when detected; the others are recorded
	// and audited only.
	AnomalyRevoke []string `toml:"anomaly_revoke"`
	// AnomalySpikeMin, AnomalySpikeFactor and AnomalyRefusalsMin tune the
	// detection (0: internal/monitor's defaults, 600, 10 and 30).
	AnomalySpikeMin    int64   `toml:"anomaly_spike_min"`
	AnomalySpikeFactor float64 `toml:"anomaly_spike_factor"`
	AnomalyRefusalsMin int64   `toml:"anomaly_refusals_min"`
	// ExpiryWarning is how long before a long-lived token or an API key
	// expires that an "expiring" alert is raised (once per credential and
	// expiry; audited and counted like an anomaly). 0 turns it off.
	ExpiryWarning time.Duration `toml:"expiry_warning"`

	// Seal is what opens the root key at start: SealShamir (the default:
	// operators submit their unseal shares) or SealPKCS11 (the node
	// unseals itself with an AES key held in an HSM; the shares made at
	// initialisation still unseal it, as recovery shares).
	Seal string `toml:"seal"`
	// PKCS11Lib, PKCS11Token and PKCS11Key name the module's shared
	// library, the token's label and the AES key's label (made at
	// initialisation when missing; default "keyward-root").
	PKCS11Lib   string `toml:"pkcs11_lib"`
	PKCS11Token string `toml:"pkcs11_token"`
	PKCS11Key   string `toml:"pkcs11_key"`
	// PKCS11Pin is the token's user PIN, read from KEYWARD_PKCS11_PIN or
	// the file, never from a flag.
	PKCS11Pin string `toml:"pkcs11_pin"`
}

// The seals a node can open its root key with.
const (
	SealShamir = "shamir"
	SealPKCS11 = "pkcs11"
)

// Anomaly kinds AnomalyRevoke may name (internal/monitor's detections).
const (
	AnomalySpike      = "spike"
	AnomalyRefusals   = "refusals"
	AnomalyNewNetwork = "new_network"
)

// The HTTP servers a node can serve its listeners with.
const (
	HTTPServerKeyward = "keyward"
	HTTPServerNetHTTP = "net/http"
)

// Defaults returns the built-in configuration.
func Defaults() Config {
	return Config{
		Listen:          "127.0.0.1:8270",
		DataDir:         "./keyward-data",
		Storage:         "sqlite",
		LogLevel:        "info",
		ShutdownTimeout: 30 * time.Second,
		MaxBodyBytes:    1 << 20,
		HTTPServer:      HTTPServerKeyward,
		Seal:            SealShamir,
		PKCS11Key:       "keyward-root",
		ExpiryWarning:   DefaultExpiryWarning,
	}
}

// DefaultExpiryWarning is ExpiryWarning's default: two weeks.
const DefaultExpiryWarning = 14 * 24 * time.Hour

// setting ties a flag, an environment variable and a config field together.
// A setting without a flag is read from the environment (and the file)
// only: a secret, which a command line would show to every user.
type setting struct {
	flag, env, usage string
	apply            func(c *Config, v string) error
	isBool           bool // a flag without a value (--dev)
}

// boolean is a true/false setting of the field f returns.
func boolean(flag, env, usage string, f func(c *Config) *bool) setting {
	return setting{flag: flag, env: env, usage: usage, isBool: true, apply: func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*f(c) = b
		return nil
	}}
}

func settings() []setting {
	str := func(f func(c *Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *f(c) = v; return nil }
	}
	return []setting{
		{flag: "listen", env: "KEYWARD_LISTEN", usage: "address to listen on (host:port)", apply: str(func(c *Config) *string { return &c.Listen })},
		{flag: "data", env: "KEYWARD_DATA", usage: "data directory (SQLite file, dev-mode key)", apply: str(func(c *Config) *string { return &c.DataDir })},
		{flag: "storage", env: "KEYWARD_STORAGE", usage: `storage backend: "sqlite" or a postgres:// URL`, apply: str(func(c *Config) *string { return &c.Storage })},
		{flag: "tls-cert", env: "KEYWARD_TLS_CERT", usage: "TLS certificate file (PEM); enables HTTPS with --tls-key", apply: str(func(c *Config) *string { return &c.TLSCert })},
		{flag: "tls-key", env: "KEYWARD_TLS_KEY", usage: "TLS private key file (PEM)", apply: str(func(c *Config) *string { return &c.TLSKey })},
		{flag: "log-level", env: "KEYWARD_LOG_LEVEL", usage: "log level: debug, info, warn, error", apply: str(func(c *Config) *string { return &c.LogLevel })},
		boolean("dev", "KEYWARD_DEV", "development mode: initialise and unseal automatically (NOT for production)", func(c *Config) *bool { return &c.Dev }),
		{flag: "public-url", env: "KEYWARD_PUBLIC_URL", usage: "base URL clients reach this server by, when behind a proxy (checked in DPoP proofs)", apply: str(func(c *Config) *string { return &c.PublicURL })},
		{flag: "gateway-listen", env: "KEYWARD_GATEWAY_LISTEN", usage: "also serve the data plane alone (gateway, token exchange, key verification, health) on this address (host:port)", apply: str(func(c *Config) *string { return &c.GatewayListen })},
		{flag: "gateway-public-url", env: "KEYWARD_GATEWAY_PUBLIC_URL", usage: "base URL apps reach --gateway-listen by, when behind a proxy (checked in DPoP proofs)", apply: str(func(c *Config) *string { return &c.GatewayPublicURL })},
		boolean("dpop-nonce", "KEYWARD_DPOP_NONCE", "require a server-provided nonce in every DPoP proof (RFC 9449 §8)", func(c *Config) *bool { return &c.DPoPNonce }),
		{flag: "cors-origins", env: "KEYWARD_CORS_ORIGINS", usage: "web origins whose pages may call the data plane cross-origin, comma-separated (https://app.example.com; * for any)", apply: func(c *Config, v string) error {
			c.CORSOrigins = strings.Split(v, ",")
			return nil
		}},
		{flag: "audit-file", env: "KEYWARD_AUDIT_FILE", usage: "also append every audit entry to this file as JSON lines", apply: str(func(c *Config) *string { return &c.AuditFile })},
		{flag: "audit-webhook", env: "KEYWARD_AUDIT_WEBHOOK", usage: "also ship every audit entry to this URL, at least once, as signed JSON lines (https; needs $KEYWARD_AUDIT_WEBHOOK_SECRET)", apply: str(func(c *Config) *string { return &c.AuditWebhook })},
		{env: "KEYWARD_AUDIT_WEBHOOK_SECRET", apply: str(func(c *Config) *string { return &c.AuditWebhookSecret })},
		{flag: "access-webhook", env: "KEYWARD_ACCESS_WEBHOOK", usage: "POST every access request asked for and decided to this URL, as signed JSON lines, so approvers hear of them (https; needs $KEYWARD_ACCESS_WEBHOOK_SECRET)", apply: str(func(c *Config) *string { return &c.AccessWebhook })},
		{env: "KEYWARD_ACCESS_WEBHOOK_SECRET", apply: str(func(c *Config) *string { return &c.AccessWebhookSecret })},
		{flag: "audit-retention", env: "KEYWARD_AUDIT_RETENTION", usage: "delete audit entries older than this (e.g. 2160h); 0 keeps all", apply: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("want a duration such as 2160h, got %q", v)
			}
			c.AuditRetention = d
			return nil
		}},
		{flag: "expiry-warning", env: "KEYWARD_EXPIRY_WARNING", usage: "raise an expiring alert this long before a long-lived token or an API key expires (e.g. 336h, the default); 0 turns it off", apply: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > 366*24*time.Hour {
				return fmt.Errorf("want a duration from 0 to 8784h (a year), such as 336h, got %q", v)
			}
			c.ExpiryWarning = d
			return nil
		}},
		{flag: "anomaly-revoke", env: "KEYWARD_ANOMALY_REVOKE", usage: "revoke the credential when these anomalies are detected, comma-separated: spike, refusals, new_network (default: record and audit only)", apply: func(c *Config, v string) error {
			c.AnomalyRevoke = strings.Split(v, ",")
			return nil
		}},
		{flag: "anomaly-spike-min", env: "KEYWARD_ANOMALY_SPIKE_MIN", usage: "a spike is at least this many requests of a credential in a minute (default 600)", apply: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return fmt.Errorf("want a whole number of requests of 1 or more, got %q", v)
			}
			c.AnomalySpikeMin = n
			return nil
		}},
		{flag: "anomaly-spike-factor", env: "KEYWARD_ANOMALY_SPIKE_FACTOR", usage: "... and at least this many times the credential's average minute over the hour before (default 10)", apply: func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 1 || f > 1e6 {
				return fmt.Errorf("want a factor from 1 to 1000000, got %q", v)
			}
			c.AnomalySpikeFactor = f
			return nil
		}},
		{flag: "anomaly-refusals-min", env: "KEYWARD_ANOMALY_REFUSALS_MIN", usage: "refusals are at least this many 403s of a credential in a minute (default 30)", apply: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return fmt.Errorf("want a whole number of refusals of 1 or more, got %q", v)
			}
			c.AnomalyRefusalsMin = n
			return nil
		}},
		boolean("log-json", "KEYWARD_LOG_JSON", "write JSON log lines", func(c *Config) *bool { return &c.LogJSON }),
		{flag: "seal", env: "KEYWARD_SEAL", usage: `what opens the root key at start: "shamir" (operators' unseal shares) or "pkcs11" (an AES key in an HSM; needs a build with -tags pkcs11)`, apply: str(func(c *Config) *string { return &c.Seal })},
		{flag: "pkcs11-lib", env: "KEYWARD_PKCS11_LIB", usage: "with --seal pkcs11: the module's shared library (e.g. /usr/lib/softhsm/libsofthsm2.so)", apply: str(func(c *Config) *string { return &c.PKCS11Lib })},
		{flag: "pkcs11-token", env: "KEYWARD_PKCS11_TOKEN", usage: "with --seal pkcs11: the token's label (its user PIN in $KEYWARD_PKCS11_PIN)", apply: str(func(c *Config) *string { return &c.PKCS11Token })},
		{flag: "pkcs11-key", env: "KEYWARD_PKCS11_KEY", usage: "with --seal pkcs11: the label of the AES key that wraps the root key (made at init when missing)", apply: str(func(c *Config) *string { return &c.PKCS11Key })},
		{env: "KEYWARD_PKCS11_PIN", apply: str(func(c *Config) *string { return &c.PKCS11Pin })},
		{flag: "http-server", env: "KEYWARD_HTTP_SERVER", usage: `what serves HTTP/1.1: "keyward" (its own lean server) or "net/http" (Go's)`, apply: str(func(c *Config) *string { return &c.HTTPServer })},
	}
}

// RegisterFlags adds the server flags to fs, with defaults shown in help.
func RegisterFlags(fs *pflag.FlagSet) {
	d := Defaults()
	defaults := map[string]string{"listen": d.Listen, "data": d.DataDir, "storage": d.Storage, "log-level": d.LogLevel, "audit-retention": "0s", "http-server": d.HTTPServer}
	for _, s := range settings() {
		if s.flag == "" {
			continue
		}
		usage := s.usage + " [$" + s.env + "]"
		if s.isBool {
			fs.Bool(s.flag, false, usage)
		} else {
			fs.String(s.flag, defaults[s.flag], usage)
		}
	}
	fs.String("config", "", "TOML configuration file [$KEYWARD_CONFIG]")
}

// Load builds the Config: defaults, then the file named by --config or
// KEYWARD_CONFIG, then environment variables, then flags that were set.
func Load(fs *pflag.FlagSet, getenv func(string) string) (Config, error) {
	c := Defaults()
	path := getenv("KEYWARD_CONFIG")
	if f := fs.Lookup("config"); f != nil && f.Changed {
		path = f.Value.String()
	}
	if path != "" {
		if err := loadFile(&c, path); err != nil {
			return c, err
		}
	}
	for _, s := range settings() {
		if v := getenv(s.env); v != "" {
			if err := s.apply(&c, v); err != nil {
				return c, fmt.Errorf("config: $%s: %w", s.env, err)
			}
		}
	}
	for _, s := range settings() {
		f := fs.Lookup(s.flag)
		if f == nil || !f.Changed {
			continue
		}
		if err := s.apply(&c, f.Value.String()); err != nil {
			return c, fmt.Errorf("config: --%s: %w", s.flag, err)
		}
	}
	return c, c.Validate()
}

func loadFile(c *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("config: %s line %d: %s", path, pe.Position.Line, pe.Message)
		}
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("config: %s: unknown setting %s", path, strings.Join(keys, ", "))
	}
	return nil
}

// IsPostgres reports whether Storage names a PostgreSQL URL.
func (c Config) IsPostgres() bool {
	return strings.HasPrefix(c.Storage, "postgres://") || strings.HasPrefix(c.Storage, "postgresql://")
}

// checkWebhook checks the KIND-webhook setting and its secret: an https://
// URL (http only on loopback) signed with at least 16 characters.
func checkWebhook(kind, raw, secret string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	local := err == nil && (u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1" || u.Hostname() == "::1")
	if err != nil || u.Host == "" || u.User != nil || !(u.Scheme == "https" || u.Scheme == "http" && local) {
		return fmt.Errorf("config: %s-webhook: want an https:// URL (http only for localhost)", kind)
	}
	if len(secret) < 16 {
		return fmt.Errorf("config: %s-webhook needs a signing secret of at least 16 characters in $KEYWARD_%s_WEBHOOK_SECRET (or %s_webhook_secret in the config file)", kind, strings.ToUpper(kind), kind)
	}
	return nil
}

// Validate checks the configuration and names the first setting at fault.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("config: listen %q: want host:port", c.Listen)
	}
	if c.Storage != "sqlite" && !c.IsPostgres() {
		return fmt.Errorf("config: storage %q: want \"sqlite\" or a postgres:// URL", redactURL(c.Storage))
	}
	if c.DataDir == "" {
		return errors.New("config: data: the data directory must not be empty")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("config: tls-cert and tls-key must be given together")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.HTTPServer {
	case HTTPServerKeyward, HTTPServerNetHTTP:
	default:
		return fmt.Errorf("config: http-server %q: want %q or %q", c.HTTPServer, HTTPServerKeyward, HTTPServerNetHTTP)
	}
	switch c.Seal {
	case SealShamir:
	case SealPKCS11:
		if c.Dev {
			return errors.New("config: seal pkcs11 and dev do not go together: dev mode keeps its unseal key in a file")
		}
		if c.PKCS11Lib == "" || c.PKCS11Token == "" || c.PKCS11Key == "" {
			return errors.New("config: seal pkcs11 needs pkcs11-lib (the module's library), pkcs11-token (the token's label) and pkcs11-key (the key's label)")
		}
	default:
		return fmt.Errorf("config: seal %q: want %q or %q", c.Seal, SealShamir, SealPKCS11)
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("config: shutdown_timeout must be positive")
	}
	if c.ExpiryWarning < 0 || c.ExpiryWarning > 366*24*time.Hour {
		return errors.New("config: expiry_warning must be between 0 (off) and 8784h (a year)")
	}
	if c.AuditRetention != 0 && c.AuditRetention < time.Hour {
		return errors.New("config: audit_retention must be 0 (keep all) or at least 1h")
	}
	if c.MaxBodyBytes <= 0 {
		return errors.New("config: max_body_bytes must be positive")
	}
	if _, err := parsePublicURL("public-url", c.PublicURL); err != nil {
		return err
	}
	if c.GatewayListen != "" {
		_, port, err := net.SplitHostPort(c.GatewayListen)
		if err != nil {
			return fmt.Errorf("config: gateway-listen %q: want host:port", c.GatewayListen)
		}
		if c.GatewayListen == c.Listen && port != "0" { // port 0: each gets a free port
			return fmt.Errorf("config: gateway-listen %q: must differ from listen", c.GatewayListen)
		}
	}
	if c.GatewayPublicURL != "" && c.GatewayListen == "" {
		return errors.New("config: gateway-public-url is set without gateway-listen")
	}
	if _, err := parsePublicURL("gateway-public-url", c.GatewayPublicURL); err != nil {
		return err
	}
	if _, err := c.ParsedCORSOrigins(); err != nil {
		return err
	}
	if err := checkWebhook("audit", c.AuditWebhook, c.AuditWebhookSecret); err != nil {
		return err
	}
	if err := checkWebhook("access", c.AccessWebhook, c.AccessWebhookSecret); err != nil {
		return err
	}
	if c.AnomalySpikeMin < 0 || c.AnomalyRefusalsMin < 0 || c.AnomalySpikeFactor < 0 || c.AnomalySpikeFactor > 0 && c.AnomalySpikeFactor < 1 {
		return errors.New("config: anomaly_spike_min and anomaly_refusals_min must be positive, anomaly_spike_factor at least 1")
	}
	for _, k := range c.AnomalyRevoke {
		if k != AnomalySpike && k != AnomalyRefusals && k != AnomalyNewNetwork {
			return fmt.Errorf("config: anomaly-revoke %q: want %q, %q or %q", k, AnomalySpike, AnomalyRefusals, AnomalyNewNetwork)
		}
	}
	return nil
}

// ParsedCORSOrigins checks CORSOrigins and returns them lower-case, as
// scheme://host[:port], without duplicates; nil when there are none.
func (c Config) ParsedCORSOrigins() ([]string, error) {
	var out []string
	for _, o := range c.CORSOrigins {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			local := u != nil && (u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1" || u.Hostname() == "::1")
			if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" ||
				!(u.Scheme == "https" || u.Scheme == "http" && local) {
				return nil, fmt.Errorf("config: cors-origins %q: want https://host[:port] (http only for localhost), or *", o)
			}
			o = strings.ToLower(u.Scheme + "://" + u.Host)
		}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out, nil
}

// ParsedPublicURL parses PublicURL: an absolute http(s) URL with no user
// information, query or fragment; nil when it is not set.
func (c Config) ParsedPublicURL() (*url.URL, error) { return parsePublicURL("public-url", c.PublicURL) }

// ParsedGatewayPublicURL parses GatewayPublicURL like ParsedPublicURL.
func (c Config) ParsedGatewayPublicURL() (*url.URL, error) {
	return parsePublicURL("gateway-public-url", c.GatewayPublicURL)
}

func parsePublicURL(setting, s string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("config: %s %q: want an absolute http(s) URL such as https://keyward.example.com", setting, redactURL(s))
	}
	return u, nil
}

// redactURL hides a password in a URL-like string for messages.
func redactURL(s string) string {
	at := strings.LastIndex(s, "@")
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	userinfo := s[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return s[:scheme+3] + userinfo[:i] + ":xxxxx" + s[at:]
	}
	return s
}
