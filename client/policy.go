package client

import (
	"context"
	"net/http"
	"net/url"
)

// Policy is a stored policy document.
type Policy struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Rules       []PolicyRule `json:"rules"`
	// Document is the canonical YAML encoding (GetPolicy only).
	Document string `json:"document,omitempty"`
}

// PolicyRule allows and denies actions on resource patterns.
type PolicyRule struct {
	Resources []string `json:"resources"`
	Allow     []string `json:"allow,omitempty"`
	Deny      []string `json:"deny,omitempty"`
}

// Explanation says why a token may or may not do an action on a resource.
type Explanation struct {
	Allowed bool `json:"allowed"`
	// Policy and Rule (the index of the rule in the policy, from 0) name
	// the deciding rule; empty and -1 for a default deny.
	Policy string `json:"policy,omitempty"`
	Rule   int    `json:"rule"`
	// Effect is "allow", "deny" or "default-deny".
	Effect string `json:"effect"`
	// Reason is a sentence for people.
	Reason string `json:"reason"`
	// Principal and Policies are the token's (Policies only, for
	// ExplainPolicies).
	Principal string   `json:"principal,omitempty"`
	Policies  []string `json:"policies"`
	// Warnings name policies that do not exist (ExplainPolicies).
	Warnings []string `json:"warnings,omitempty"`
}

func policyPath(name string) string { return "/v1/policies/" + url.PathEscape(name) }

// PutPolicy stores a policy document (YAML, or its JSON form) under name.
// changed is false when the stored document was already the same. A
// malformed document is refused with an invalid_argument error whose
// message names the line.
func (c *Client) PutPolicy(ctx context.Context, name string, yamlDoc []byte) (changed bool, err error) {
	if yamlDoc == nil {
		yamlDoc = []byte{}
	}
	var r struct {
		Changed bool `json:"changed"`
	}
	// do sends a []byte as is, with Content-Type application/yaml.
	_, err = c.do(ctx, http.MethodPut, policyPath(name), nil, yamlDoc, &r)
	return r.Changed, err
}

// GetPolicy reads one policy, with its canonical YAML document.
func (c *Client) GetPolicy(ctx context.Context, name string) (*Policy, error) {
	var p Policy
	if _, err := c.do(ctx, http.MethodGet, policyPath(name), nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ListPolicies lists the stored policies.
func (c *Client) ListPolicies(ctx context.Context) ([]Policy, error) {
	var r struct {
		Policies []Policy `json:"policies"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/policies", nil, nil, &r)
	return r.Policies, err
}

// DeletePolicy deletes a policy.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, policyPath(name), nil, nil, nil)
	return err
}

// ExplainPolicy asks whether the token with accessor may do action on
// resource, and which policy rule decides it.
func (c *Client) ExplainPolicy(ctx context.Context, accessor, action, resource string) (*Explanation, error) {
	return c.explain(ctx, map[string]any{"accessor": accessor, "action": action, "resource": resource})
}

// ExplainPolicies asks whether a caller holding policies (a token not yet
// issued, say) may do action on resource, and which rule decides it.
func (c *Client) ExplainPolicies(ctx context.Context, policies []string, action, resource string) (*Explanation, error) {
	return c.explain(ctx, map[string]any{"policies": policies, "action": action, "resource": resource})
}

func (c *Client) explain(ctx context.Context, body map[string]any) (*Explanation, error) {
	var e Explanation
	if _, err := c.do(ctx, http.MethodPost, "/v1/policies/explain", nil, body, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// Holder holds a permission in an access review (see AccessReview).
type Holder struct {
	Kind      string   `json:"kind"` // user, service, issuer, tokens
	Name      string   `json:"name"` // the user, service account, issuer, or the tokens' principal
	Claim     string   `json:"claim,omitempty"`
	Value     string   `json:"value,omitempty"`
	Policies  []string `json:"policies"`
	AllowedBy string   `json:"allowed_by"`
	BoundEnvs []string `json:"bound_envs,omitempty"`
	Count     int      `json:"count,omitempty"`
	Disabled  bool     `json:"disabled,omitempty"`
}

// AccessReview answers who may do an action on a resource.
type AccessReview struct {
	Action    string   `json:"action"`
	Resource  string   `json:"resource"`
	Policies  []string `json:"policies"` // those that allow it on their own
	Holders   []Holder `json:"holders"`
	Truncated bool     `json:"truncated"`
}

// WhoCan asks who may do action on resource: the policies that allow it
// and the users, service accounts, JWT issuers' mappings and live tokens
// holding them (POST /v1/policies/who-can; needs read on sys/access).
func (c *Client) WhoCan(ctx context.Context, action, resource string) (*AccessReview, error) {
	var r AccessReview
	if _, err := c.do(ctx, http.MethodPost, "/v1/policies/who-can", nil, map[string]string{"action": action, "resource": resource}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
