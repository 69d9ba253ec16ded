package httpapi

import (
	"context"
	"net/http"

	"github.com/keyward/keyward/internal/device"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/policy"
	"github.com/keyward/keyward/internal/token"
)

// Holder is one holder of a permission in an access review: a user, a
// service account, an issuer's tokens (those a claim mapping gives), or a
// group of live tokens.
type Holder struct {
	Kind string `json:"kind"` // user, service, device, issuer, tokens
	// Name is the user's or service account's name, the issuer's name, or
	// the tokens' principal.
	Name string `json:"name"`
	// Claim and Value name the issuer's mapping that grants it (empty:
	// the policies the issuer gives every token).
	Claim    string   `json:"claim,omitempty"`
	Value    string   `json:"value,omitempty"`
	Policies []string `json:"policies"`
	// AllowedBy is the deciding rule ("allowed by policy "ops" rule 1").
	AllowedBy string   `json:"allowed_by"`
	BoundEnvs []string `json:"bound_envs,omitempty"` // tokens: the environments they are bound to
	Count     int      `json:"count,omitempty"`      // tokens: how many
	Disabled  bool     `json:"disabled,omitempty"`   // users, services, devices: disabled (holds it once enabled)
}

// AccessReview answers who may do an action on a resource.
type AccessReview struct {
	Action   string `json:"action"`
	Resource string `json:"resource"`
	// Policies are the policies that allow it on their own.
	Policies []string `json:"policies"`
	Holders  []Holder `json:"holders"`
	// Truncated: there were more users, services or token groups than one
	// review reads (reviewLimit of each).
	Truncated bool `json:"truncated"`
}

// reviewLimit bounds what one review reads of each kind of holder.
const reviewLimit = 10000

// Review serves POST /v1/policies/who-can.
type Review struct {
	Policies   *policy.Service
	Identities *identity.Manager
	Tokens     *token.Service
	Devices    *device.Service // nil: devices are not reviewed
	Authz      Authorizer
}

// Routes returns the review route.
func (h *Review) Routes() []Route {
	return []Route{{
		Pattern: "POST /v1/policies/who-can", Action: "read", Resource: static("sys/access"),
		Summary: "Access review: who may do {\"action\"} on {\"resource\"}: the policies that allow it, and the users, service accounts, devices, JWT issuers' mappings and live tokens holding them, with the deciding rule. API keys are not listed (their scopes govern them).",
		Handle: func(r *http.Request) (int, any, error) {
			var in struct {
				Action   string `json:"action"`
				Resource string `json:"resource"`
			}
			if err := decode(r, &in); err != nil {
				return 0, nil, err
			}
			if in.Action == "" || in.Resource == "" {
				return 0, nil, Invalid("give action and resource")
			}
			rev, err := h.review(r.Context(), in.Action, in.Resource)
			if err != nil {
				return 0, nil, err
			}
			return http.StatusOK, rev, nil
		},
	}}
}

func (h *Review) review(ctx context.Context, action, resource string) (*AccessReview, error) {
	rev := &AccessReview{Action: action, Resource: resource, Policies: []string{}, Holders: []Holder{}}
	// decide says whether c may, and by which rule when the authorizer
	// can tell: one decision a holder.
	decide := func(c *Caller) (bool, string) {
		if ex, ok := h.Authz.(Explainer); ok {
			d := ex.Explain(c, action, resource)
			return d.Allowed, d.String()
		}
		ok, _ := h.Authz.Decide(c, action, resource)
		return ok, "allowed"
	}
	// add lists hd when its policies allow.
	add := func(hd Holder, boundEnvs []string) {
		ok, by := decide(&Caller{Principal: hd.Name, Policies: hd.Policies, BoundEnvs: boundEnvs})
		if ok {
			hd.AllowedBy = by
			rev.Holders = append(rev.Holders, hd)
		}
	}
	for _, name := range h.Policies.Set().Names() {
		if ok, _ := decide(&Caller{Policies: []string{name}}); ok {
			rev.Policies = append(rev.Policies, name)
		}
	}
	users, more, err := pages(func(cursor string) ([]identity.User, string, error) {
		us, err := h.Identities.ListUsers(ctx, identity.MaxListLimit, cursor)
		if len(us) < identity.MaxListLimit {
			return us, "", err
		}
		return us, us[len(us)-1].Name, err
	})
	if err != nil {
		return nil, err
	}
	rev.Truncated = rev.Truncated || more
	for _, u := range users {
		add(Holder{Kind: "user", Name: u.Name, Policies: u.Policies, Disabled: u.Disabled}, nil)
	}
	services, more, err := pages(func(cursor string) ([]identity.ServiceAccount, string, error) {
		ss, err := h.Identities.ListServices(ctx, identity.MaxListLimit, cursor)
		if len(ss) < identity.MaxListLimit {
			return ss, "", err
		}
		return ss, ss[len(ss)-1].Name, err
	})
	if err != nil {
		return nil, err
	}
	rev.Truncated = rev.Truncated || more
	for _, s := range services {
		add(Holder{Kind: "service", Name: s.Name, Policies: s.Policies, Disabled: s.Disabled}, nil)
	}
	if h.Devices != nil {
		devices, more, err := pages(func(cursor string) ([]*device.Device, string, error) {
			ds, err := h.Devices.List(ctx, 1000, cursor)
			if len(ds) < 1000 {
				return ds, "", err
			}
			return ds, ds[len(ds)-1].ID, err
		})
		if err != nil {
			return nil, err
		}
		rev.Truncated = rev.Truncated || more
		for _, d := range devices {
			name := d.ID
			if d.Name != "" {
				name += " (" + d.Name + ")"
			}
			add(Holder{Kind: "device", Name: name, Policies: d.Policies, Disabled: !d.DisabledAt.IsZero()}, nil)
		}
	}
	issuers, err := h.Identities.ListIssuers(ctx)
	if err != nil {
		return nil, err
	}
	for _, is := range issuers {
		add(Holder{Kind: "issuer", Name: is.Name, Policies: is.Policies}, nil)
		for _, m := range is.PolicyMap {
			// A token matching the mapping holds the issuer's policies too.
			ps := append(append([]string{}, is.Policies...), m.Policies...)
			add(Holder{Kind: "issuer", Name: is.Name, Claim: m.Claim, Value: m.Value, Policies: ps}, nil)
		}
	}
	groups, err := h.Tokens.LiveHolders(ctx, reviewLimit+1)
	if err != nil {
		return nil, err
	}
	if len(groups) > reviewLimit {
		groups, rev.Truncated = groups[:reviewLimit], true
	}
	for _, g := range groups {
		add(Holder{Kind: "tokens", Name: g.Principal, Policies: g.Policies, BoundEnvs: g.BoundEnvs, Count: g.Count}, g.BoundEnvs)
	}
	return rev, nil
}

// pages reads up to reviewLimit items a page at a time (next returns the
// cursor of the page after, "" at the end) and reports whether more were left.
func pages[T any](next func(cursor string) ([]T, string, error)) ([]T, bool, error) {
	var out []T
	cursor := ""
	for {
		page, after, err := next(cursor)
		if err != nil {
			return nil, false, err
		}
		out = append(out, page...)
		if after == "" {
			return out, false, nil
		}
		if len(out) >= reviewLimit {
			return out[:reviewLimit], true, nil
		}
		cursor = after
	}
}
