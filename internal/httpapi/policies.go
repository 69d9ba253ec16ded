package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/keyward/keyward/internal/policy"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// Policies serves policy documents and the explain endpoint.
type Policies struct {
	Svc    *policy.Service
	Tokens *token.Service
	Authz  Authorizer
	Audit  Auditor
	// Changed, when set, runs inside the transaction of every change (the
	// server appends the cross-node invalidation event there).
	Changed func(ctx context.Context, tx storage.Tx, name string) error
}

// MapPolicyErrors registers the policy package's errors.
func MapPolicyErrors(m *ErrorMapper) {
	m.Map(policy.ErrReserved, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(policy.ErrInvalid, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(policy.ErrNotFound, http.StatusNotFound, CodeNotFound, "")
}

// PolicyDoc is a policy as the API shows it.
type PolicyDoc struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Rules       []policy.Rule `json:"rules"`
	Document    string        `json:"document,omitempty"`
}

func policyDoc(p *policy.Policy, withDoc bool) PolicyDoc {
	d := PolicyDoc{Name: p.Name, Description: p.Description, Rules: p.Rules}
	if withDoc {
		d.Document = string(p.Canonical())
	}
	return d
}

func (h *Policies) auditFn(r *http.Request, status int) policy.AuditFunc {
	return func(ctx context.Context, tx storage.Tx) error {
		if h.Changed != nil {
			if err := h.Changed(ctx, tx, r.PathValue("name")); err != nil {
				return err
			}
		}
		if h.Audit == nil {
			return nil
		}
		return h.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, status))
	}
}

func (h *Policies) done(r *http.Request) {
	if h.Audit != nil {
		MarkAudited(r.Context())
	}
}

// Routes returns the policy routes.
func (h *Policies) Routes() []Route {
	named := nameRes("sys/policies/")
	return []Route{
		{
			Pattern: "PUT /v1/policies/{name}", Action: "write", Resource: named,
			Summary: "Create or replace a policy from its YAML document (or the JSON form); idempotent.",
			Handle: func(r *http.Request) (int, any, error) {
				body, err := io.ReadAll(r.Body)
				if err != nil {
					return 0, nil, err
				}
				p, err := policy.Parse(body)
				if err != nil {
					return 0, nil, err
				}
				name := r.PathValue("name")
				if p.Name != name {
					return 0, nil, Invalid("the document's name %q differs from the name in the path %q", truncate(p.Name, 64), name)
				}
				changed, err := h.Svc.Put(r.Context(), p, caller(r), h.auditFn(r, http.StatusOK))
				if err != nil {
					return 0, nil, err
				}
				if changed {
					h.done(r)
				}
				return http.StatusOK, map[string]any{"name": name, "changed": changed}, nil
			},
		},
		{
			Pattern: "GET /v1/policies", Action: "list", Resource: static("sys/policies"),
			Summary: "List policies (those the caller may read).",
			Handle: func(r *http.Request) (int, any, error) {
				ps, err := h.Svc.List(r.Context())
				if err != nil {
					return 0, nil, err
				}
				out := []PolicyDoc{}
				c := CallerFrom(r.Context())
				for _, p := range ps {
					if h.Authz == nil || func() bool { ok, _ := h.Authz.Decide(c, "read", "sys/policies/"+p.Name); return ok }() {
						out = append(out, policyDoc(p, false))
					}
				}
				return http.StatusOK, map[string]any{"policies": out}, nil
			},
		},
		{
			Pattern: "GET /v1/policies/{name}", Action: "read", Resource: named,
			Summary: "Read a policy and its canonical YAML document.",
			Handle: func(r *http.Request) (int, any, error) {
				name := r.PathValue("name")
				if name == "root" {
					return http.StatusOK, policyDoc(policy.Root(), true), nil
				}
				p, err := h.Svc.Get(r.Context(), name)
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, policyDoc(p, true), nil
			},
		},
		{
			Pattern: "DELETE /v1/policies/{name}", Action: "delete", Resource: named,
			Summary: "Delete a policy; tokens naming it lose what it allowed at once.",
			Handle: func(r *http.Request) (int, any, error) {
				if err := h.Svc.Delete(r.Context(), r.PathValue("name"), h.auditFn(r, http.StatusNoContent)); err != nil {
					return 0, nil, err
				}
				h.done(r)
				return http.StatusNoContent, nil, nil
			},
		},
		{
			Pattern: "POST /v1/policies/explain", Action: "read", Resource: static("sys/policies"),
			Summary: "Explain the decision for a token (\"accessor\") or a set of policies (\"policies\", e.g. before issuing any token), an action and a resource: which rule decided.",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Accessor string   `json:"accessor"`
					Policies []string `json:"policies"`
					Action   string   `json:"action"`
					Resource string   `json:"resource"`
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				if (in.Accessor == "") == (len(in.Policies) == 0) || in.Action == "" || in.Resource == "" {
					return 0, nil, Invalid("give accessor or policies (not both), action and resource")
				}
				var c *Caller
				var warnings []string
				if in.Accessor != "" {
					t, err := h.Tokens.Lookup(r.Context(), in.Accessor)
					if err != nil {
						return 0, nil, err
					}
					c = &Caller{Principal: t.Principal, Policies: t.Policies, BoundEnvs: t.BoundEnvs, Token: t}
				} else {
					if len(in.Policies) > 64 {
						return 0, nil, Invalid("policies: at most 64")
					}
					c = &Caller{Policies: in.Policies}
					warnings = UnknownPolicies(h.Svc.Set().Has, in.Policies, "caller")
				}
				allowed, reason := h.Authz.Decide(c, in.Action, in.Resource)
				out := map[string]any{"allowed": allowed, "policies": c.Policies, "principal": c.Principal}
				if ex, ok := h.Authz.(Explainer); ok {
					d := ex.Explain(c, in.Action, in.Resource)
					out["policy"], out["rule"], out["effect"] = d.Policy, d.Rule, d.Effect
					if allowed {
						reason = d.String() // Decide gives none when it allows
					}
				}
				if reason == "" {
					reason = "allowed"
				}
				out["reason"] = reason
				if warnings != nil {
					out["warnings"] = warnings
				}
				return http.StatusOK, out, nil
			},
		},
	}
}

// Explainer is an Authorizer that can say which rule decides (the
// server's policy authorizer is one).
type Explainer interface {
	Explain(c *Caller, action, resource string) policy.Decision
}

// UnknownPolicies warns of each policy in names that does not exist
// (known: nil gives no warnings). Naming one is legal — policy as code may
// create it later — but a typo would leave the holder (a "token", a
// "user", a "service account", "issuer's tokens") granted nothing by it.
func UnknownPolicies(known func(string) bool, names []string, holder string) []string {
	if known == nil {
		return nil
	}
	var out []string
	for _, n := range names {
		if !known(n) {
			out = append(out, fmt.Sprintf("policy %q does not exist: it grants the %s nothing until a policy of that name is created", truncate(n, 64), holder))
		}
	}
	return out
}
