package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// IntegrationSpec is what an integration is made of: an upstream API, the
// secret whose value keyward injects into every call to it, and what
// callers may ask of it. Empty fields take the server's defaults (all
// methods, every path, 30 s, 10 MiB).
type IntegrationSpec struct {
	Name string `json:"name,omitempty"`
	// Upstream is the base URL, e.g. https://api.example.com/v2.
	Upstream string `json:"upstream"`
	// Secret is PROJECT/ENV/PATH of the credential.
	Secret string `json:"secret"`
	// Inject is header:NAME=TEMPLATE (with {{secret}}), query:NAME,
	// basic:USER or InjectOAuth2 (with OAuth2 set).
	Inject  string   `json:"inject"`
	Methods []string `json:"methods,omitempty"`
	// Paths are globs below the upstream's path: * one segment, ** any.
	Paths []string `json:"paths,omitempty"`
	// Timeout is a Go duration ("10s") bounding a whole call.
	Timeout              string   `json:"timeout,omitempty"`
	MaxBodyBytes         int64    `json:"max_body_bytes,omitempty"`
	StripResponseHeaders []string `json:"strip_response_headers,omitempty"`
	// AllowPrivate lets the upstream be on loopback or a private network
	// (and use plain http).
	AllowPrivate bool `json:"allow_private,omitempty"`
	// Rate bounds all calls through the integration and CallerRate those
	// of each token or API key ("100/s", "60/min", "1000/h"; per node).
	Rate       string `json:"rate,omitempty"`
	CallerRate string `json:"caller_rate,omitempty"`
	// OAuth2 is set when Inject is InjectOAuth2: the upstream takes OAuth
	// 2.0 access tokens, which keyward gets from the token endpoint with
	// the client credentials grant, the secret being the client secret.
	OAuth2 *OAuth2 `json:"oauth2,omitempty"`
	// WebSocket lets callers open WebSocket sessions through the
	// integration: a GET with "Upgrade: websocket" reaches the upstream
	// with the credential injected, and the two connections are joined
	// until either side closes or the caller's credential is revoked or
	// expires. It needs GET among Methods. Off by default.
	WebSocket bool `json:"websocket,omitempty"`
}

// InjectOAuth2 is the Inject value of an integration whose upstream takes
// OAuth 2.0 access tokens (see OAuth2).
const InjectOAuth2 = "oauth2"

// OAuth2 are the client credentials settings of an integration whose
// Inject is InjectOAuth2. keyward sends the secret (the client secret) to
// TokenURL only, and the access token it gets to the upstream only, as
// "Authorization: Bearer TOKEN"; neither reaches a caller.
type OAuth2 struct {
	// TokenURL is the authorization server's token endpoint (https; http
	// only with AllowPrivate).
	TokenURL string `json:"token_url"`
	// ClientID is the client's identifier (not a secret).
	ClientID string `json:"client_id"`
	// Scopes are requested with every token (none: the server's default).
	Scopes []string `json:"scopes,omitempty"`
	// Audience, when set, is sent as the "audience" parameter (Auth0, Okta).
	Audience string `json:"audience,omitempty"`
	// AuthStyle is how the client authenticates to the token endpoint:
	// "basic" (HTTP basic authentication; the default) or "post" (client_id
	// and client_secret in the form body).
	AuthStyle string `json:"auth_style,omitempty"`
}

// Integration is a stored integration.
type Integration struct {
	IntegrationSpec
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
	// GatewayURL is where apps call the integration, when the server has a
	// data-plane address of its own ("" otherwise: Client.GatewayURL).
	GatewayURL string `json:"gateway_url,omitempty"`
}

// CallURL is where apps call the integration at path: its GatewayURL when
// the server gave one, else below the client's own address.
func (c *Client) CallURL(in *Integration, path string) string {
	if in.GatewayURL != "" {
		return in.GatewayURL + trimSlash(path)
	}
	return c.GatewayURL(in.Name, path)
}

func integrationPath(name string) string { return "/v1/integrations/" + url.PathEscape(name) }

// CreateIntegration stores a new integration (a conflict error when the
// name is taken). The caller needs write on integrations/NAME and read on
// the secret.
func (c *Client) CreateIntegration(ctx context.Context, spec IntegrationSpec) (*Integration, error) {
	var out Integration
	if _, err := c.do(ctx, http.MethodPost, "/v1/integrations", nil, spec, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateIntegration replaces every setting of the integration name.
func (c *Client) UpdateIntegration(ctx context.Context, name string, spec IntegrationSpec) (*Integration, error) {
	spec.Name = ""
	var out Integration
	if _, err := c.do(ctx, http.MethodPut, integrationPath(name), nil, spec, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetIntegration reads an integration's settings.
func (c *Client) GetIntegration(ctx context.Context, name string) (*Integration, error) {
	var out Integration
	if _, err := c.do(ctx, http.MethodGet, integrationPath(name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListIntegrations lists the integrations the caller may list.
func (c *Client) ListIntegrations(ctx context.Context) ([]Integration, error) {
	var out struct {
		Integrations []Integration `json:"integrations"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/integrations", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Integrations, nil
}

// DeleteIntegration removes an integration; calls through it stop at once.
func (c *Client) DeleteIntegration(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, integrationPath(name), nil, nil, nil)
	return err
}

// CheckStep is one step of an integration check.
type CheckStep struct {
	Step   string `json:"step"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Millis int64  `json:"ms"`
}

// CheckReport is the result of CheckIntegration.
type CheckReport struct {
	Integration string      `json:"integration"`
	OK          bool        `json:"ok"`
	Steps       []CheckStep `json:"steps"`
}

// CheckIntegration tries the integration name: its settings, secret (or
// OAuth 2.0 token), a connection to the upstream and, when path is set, a
// GET of path with the credential (only its status is reported).
func (c *Client) CheckIntegration(ctx context.Context, name, path string) (*CheckReport, error) {
	var out CheckReport
	body := map[string]string{}
	if path != "" {
		body["path"] = path
	}
	if _, err := c.do(ctx, http.MethodPost, integrationPath(name)+"/check", nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GatewayURL is the address callers use to reach path (e.g.
// "/v1/geocode") of the integration name through the gateway.
func (c *Client) GatewayURL(name, path string) string {
	u := *c.base
	u.Path = c.base.Path + "/v1/gateway/" + url.PathEscape(name) + "/"
	return u.String() + trimSlash(path)
}

func trimSlash(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	return s
}
