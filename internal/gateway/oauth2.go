package gateway

// OAuth2 are the settings of an integration whose upstream takes OAuth 2.0
// access tokens (RFC 6750) obtained with the client credentials grant (RFC
// 6749 §4.4). The integration's secret holds the client secret. keyward
// asks TokenURL for a token, keeps it until shortly before it expires, and
// sends it as "Authorization: Bearer TOKEN"; neither the client secret nor
// the token ever reaches a caller.
type OAuth2 struct {
	// TokenURL is the authorization server's token endpoint: https (or
	// http with allow_private), no user or fragment. The client secret is
	// sent there and nowhere else.
	TokenURL string `json:"token_url"`
	// ClientID is the client's identifier (not a secret).
	ClientID string `json:"client_id"`
	// Scopes are requested with every token (none: the server's default).
	Scopes []string `json:"scopes,omitempty"`
	// Audience, when set, is sent as the "audience" parameter (Auth0, Okta
	// and others name the API a token is for with it).
	Audience string `json:"audience,omitempty"`
	// AuthStyle is how the client authenticates to the token endpoint:
	// "basic" (HTTP basic authentication, client_secret_basic; the
	// default) or "post" (client_id and client_secret in the form,
	// client_secret_post).
	AuthStyle string `json:"auth_style,omitempty"`
}
