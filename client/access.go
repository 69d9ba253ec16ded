package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// AccessRequest is a just-in-time access request.
type AccessRequest struct {
	ID        string    `json:"id"`
	Requester string    `json:"requester"`
	Policies  []string  `json:"policies"`
	TTL       string    `json:"ttl"` // the granted token's lifetime, e.g. "1h0m0s"
	Reason    string    `json:"reason"`
	State     string    `json:"state"` // pending, approved, denied, issued or expired
	CreatedAt time.Time `json:"created_at"`
	DecidedBy string    `json:"decided_by,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	Note      string    `json:"note,omitempty"`
	Accessor  string    `json:"accessor,omitempty"`
	// ExpiresAt is when a pending request stops waiting for a decision,
	// or an approved one for its requester.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// RequestAccess asks for policies for ttl ("" for the server's default) and
// a reason (POST /v1/access/requests).
func (c *Client) RequestAccess(ctx context.Context, policies []string, ttl, reason string) (*AccessRequest, error) {
	var r AccessRequest
	body := map[string]any{"policies": policies, "reason": reason}
	if ttl != "" {
		body["ttl"] = ttl
	}
	if _, err := c.do(ctx, http.MethodPost, "/v1/access/requests", nil, body, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// AccessRequests lists the caller's requests and those it may decide,
// newest first; state "" for all.
func (c *Client) AccessRequests(ctx context.Context, state string, since time.Time) ([]AccessRequest, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	var r struct {
		Requests []AccessRequest `json:"requests"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/access/requests", q, nil, &r); err != nil {
		return nil, err
	}
	return r.Requests, nil
}

// AccessRequest reads request id (GET /v1/access/requests/{id}): the
// caller's own, or one it may decide.
func (c *Client) AccessRequest(ctx context.Context, id string) (*AccessRequest, error) {
	var r AccessRequest
	if _, err := c.do(ctx, http.MethodGet, "/v1/access/requests/"+url.PathEscape(id), nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecideAccess approves or denies request id with an optional note.
func (c *Client) DecideAccess(ctx context.Context, id string, approve bool, note string) (*AccessRequest, error) {
	verb := "/deny"
	if approve {
		verb = "/approve"
	}
	var r AccessRequest
	if _, err := c.do(ctx, http.MethodPost, "/v1/access/requests/"+url.PathEscape(id)+verb, nil, map[string]string{"note": note}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// AccessToken exchanges the caller's approved request id for its token.
func (c *Client) AccessToken(ctx context.Context, id string) (*IssuedToken, error) {
	var t IssuedToken
	if _, err := c.do(ctx, http.MethodPost, "/v1/access/requests/"+url.PathEscape(id)+"/token", nil, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}
