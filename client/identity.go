package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// User is a human identity that logs in with a password (and TOTP). It
// never carries the password or the TOTP secret.
type User struct {
	Name         string    `json:"name"`
	Policies     []string  `json:"policies"`
	TokenTTL     Duration  `json:"token_ttl,omitzero"`
	TokenMaxTTL  Duration  `json:"token_max_ttl,omitzero"`
	Disabled     bool      `json:"disabled"`
	TOTPEnrolled bool      `json:"totp_enrolled"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
	UpdatedAt    time.Time `json:"updated_at,omitzero"`
	// Warnings are set by CreateUser: a policy that does not exist (the
	// user was created anyway).
	Warnings []string `json:"warnings,omitempty"`
}

// CreateUserRequest describes a new user. TokenTTL and TokenMaxTTL are Go
// duration strings; empty means the server's defaults.
type CreateUserRequest struct {
	Name        string   `json:"name"`
	Password    string   `json:"password"`
	Policies    []string `json:"policies"`
	TokenTTL    string   `json:"token_ttl,omitempty"`
	TokenMaxTTL string   `json:"token_max_ttl,omitempty"`
}

// TOTPEnrollment is a new TOTP secret, shown once.
type TOTPEnrollment struct {
	// Secret is the base32 shared secret.
	Secret string `json:"secret"`
	// URL is the otpauth:// URL authenticator apps read (often as a QR code).
	URL string `json:"url"`
}

// Service is a service account (a non-human principal). It never carries
// the client secret.
type Service struct {
	Name               string     `json:"name"`
	ClientID           string     `json:"client_id"`
	Policies           []string   `json:"policies"`
	TokenTTL           Duration   `json:"token_ttl,omitzero"`
	TokenMaxTTL        Duration   `json:"token_max_ttl,omitzero"`
	BoundCIDRs         []string   `json:"bound_cidrs,omitempty"`
	Disabled           bool       `json:"disabled"`
	CreatedAt          time.Time  `json:"created_at,omitzero"`
	SecretRotatedAt    *time.Time `json:"secret_rotated_at,omitempty"`
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
}

// CreateServiceRequest describes a new service account.
type CreateServiceRequest struct {
	Name        string   `json:"name"`
	Policies    []string `json:"policies"`
	TokenTTL    string   `json:"token_ttl,omitempty"`
	TokenMaxTTL string   `json:"token_max_ttl,omitempty"`
	BoundCIDRs  []string `json:"bound_cidrs,omitempty"`
}

// ServiceCredentials are a service account's client id and a new client
// secret, shown once.
type ServiceCredentials struct {
	// Service is set by CreateService.
	Service      *Service `json:"service,omitempty"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	// PreviousValidUntil is set by RotateServiceSecret: when the replaced
	// secret stops working.
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
	// Warnings are set by CreateService: a policy that does not exist (the
	// account was created anyway).
	Warnings []string `json:"warnings,omitempty"`
}

// Issuer is a trusted JWT issuer (workload identity) and the rules that
// turn its tokens into keyward tokens.
type Issuer struct {
	Name         string              `json:"name"`
	IssuerURL    string              `json:"issuer_url"`
	Audiences    []string            `json:"audiences"`
	JWKSURL      string              `json:"jwks_url,omitempty"`
	JWKS         json.RawMessage     `json:"jwks,omitempty"`
	Algorithms   []string            `json:"algorithms,omitempty"`
	BoundClaims  map[string][]string `json:"bound_claims"`
	PolicyMap    []ClaimPolicy       `json:"policy_map,omitempty"`
	Policies     []string            `json:"policies,omitempty"`
	TokenTTL     Duration            `json:"token_ttl,omitzero"`
	TokenMaxTTL  Duration            `json:"token_max_ttl,omitzero"`
	SubjectClaim string              `json:"subject_claim,omitempty"`
	// Warnings are set by PutIssuer: policies (of Policies or PolicyMap)
	// that do not exist; the issuer was saved anyway.
	Warnings []string `json:"warnings,omitempty"`
}

// ClaimPolicy grants Policies to tokens whose Claim matches Value (a glob).
type ClaimPolicy struct {
	Claim    string   `json:"claim"`
	Value    string   `json:"value"`
	Policies []string `json:"policies"`
}

func userPath(name string) string { return "/v1/identities/users/" + url.PathEscape(name) }

func servicePath(name string) string { return "/v1/identities/services/" + url.PathEscape(name) }

func issuerPath(name string) string { return "/v1/auth/jwt/issuers/" + url.PathEscape(name) }

// CreateUser creates a user. The password travels only in the body.
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (*User, error) {
	if req.Policies == nil {
		req.Policies = []string{}
	}
	var u User
	if _, err := c.do(ctx, http.MethodPost, "/v1/identities/users", nil, req, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// ListUsers lists up to limit users (0: the server's default) whose names
// sort after cursor, by name, and returns the cursor of the next page (""
// at the end).
func (c *Client) ListUsers(ctx context.Context, limit int, cursor string) ([]User, string, error) {
	var r struct {
		Users []User `json:"users"`
		Next  string `json:"next"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/identities/users", pageQuery(limit, cursor), nil, &r)
	return r.Users, r.Next, err
}

// GetUser describes one user.
func (c *Client) GetUser(ctx context.Context, name string) (*User, error) {
	var u User
	if _, err := c.do(ctx, http.MethodGet, userPath(name), nil, nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// DisableUser stops a user from logging in.
func (c *Client) DisableUser(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPost, userPath(name)+"/disable", nil, nil, nil)
	return err
}

// EnableUser lets a disabled user log in again.
func (c *Client) EnableUser(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPost, userPath(name)+"/enable", nil, nil, nil)
	return err
}

// SetUserPassword replaces a user's password.
func (c *Client) SetUserPassword(ctx context.Context, name, password string) error {
	_, err := c.do(ctx, http.MethodPost, userPath(name)+"/password", nil, map[string]string{"password": password}, nil)
	return err
}

// EnrollTOTP gives a user a new TOTP secret; from then on logins need a code.
func (c *Client) EnrollTOTP(ctx context.Context, name string) (*TOTPEnrollment, error) {
	var e TOTPEnrollment
	if _, err := c.do(ctx, http.MethodPost, userPath(name)+"/totp", nil, nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// RemoveTOTP removes a user's TOTP secret.
func (c *Client) RemoveTOTP(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, userPath(name)+"/totp", nil, nil, nil)
	return err
}

// CreateService creates a service account and returns its first client
// secret, shown once.
func (c *Client) CreateService(ctx context.Context, req CreateServiceRequest) (*ServiceCredentials, error) {
	if req.Policies == nil {
		req.Policies = []string{}
	}
	var sc ServiceCredentials
	if _, err := c.do(ctx, http.MethodPost, "/v1/identities/services", nil, req, &sc); err != nil {
		return nil, err
	}
	return &sc, nil
}

// ListServices lists up to limit service accounts (0: the server's
// default) whose names sort after cursor, by name, and returns the cursor of
// the next page ("" at the end).
func (c *Client) ListServices(ctx context.Context, limit int, cursor string) ([]Service, string, error) {
	var r struct {
		Services []Service `json:"services"`
		Next     string    `json:"next"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/identities/services", pageQuery(limit, cursor), nil, &r)
	return r.Services, r.Next, err
}

// GetService describes one service account.
func (c *Client) GetService(ctx context.Context, name string) (*Service, error) {
	var s Service
	if _, err := c.do(ctx, http.MethodGet, servicePath(name), nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// DisableService stops a service account from logging in.
func (c *Client) DisableService(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPost, servicePath(name)+"/disable", nil, nil, nil)
	return err
}

// EnableService lets a disabled service account log in again.
func (c *Client) EnableService(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPost, servicePath(name)+"/enable", nil, nil, nil)
	return err
}

// RotateServiceSecret issues a new client secret. The old one keeps working
// for grace ("1h"; empty: the server's default).
func (c *Client) RotateServiceSecret(ctx context.Context, name, grace string) (*ServiceCredentials, error) {
	body := struct {
		Grace string `json:"grace,omitempty"`
	}{grace}
	var sc ServiceCredentials
	if _, err := c.do(ctx, http.MethodPost, servicePath(name)+"/rotate-secret", nil, body, &sc); err != nil {
		return nil, err
	}
	return &sc, nil
}

// PutIssuer creates or replaces a JWT issuer. issuer is the JSON document
// of an Issuer (json.Marshal an *Issuer to build one in code).
func (c *Client) PutIssuer(ctx context.Context, name string, issuer json.RawMessage) (*Issuer, error) {
	var is Issuer
	if _, err := c.do(ctx, http.MethodPut, issuerPath(name), nil, issuer, &is); err != nil {
		return nil, err
	}
	return &is, nil
}

// ListIssuers lists the JWT issuers.
func (c *Client) ListIssuers(ctx context.Context) ([]Issuer, error) {
	var r struct {
		Issuers []Issuer `json:"issuers"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/auth/jwt/issuers", nil, nil, &r)
	return r.Issuers, err
}

// GetIssuer describes one JWT issuer.
func (c *Client) GetIssuer(ctx context.Context, name string) (*Issuer, error) {
	var is Issuer
	if _, err := c.do(ctx, http.MethodGet, issuerPath(name), nil, nil, &is); err != nil {
		return nil, err
	}
	return &is, nil
}

// DeleteIssuer deletes a JWT issuer.
func (c *Client) DeleteIssuer(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, issuerPath(name), nil, nil, nil)
	return err
}
