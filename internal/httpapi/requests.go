package httpapi

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/keyward/keyward/internal/access"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// AccessRequests serves just-in-time access: any principal with a token
// asks for policies for a while; a principal allowed admin on
// sys/access/policies/<name> for each of them approves or denies; the
// requester exchanges an approved request for a token once.
type AccessRequests struct {
	Svc    *access.Service
	Tokens *token.Service
	Authz  Authorizer
	Audit  Auditor
	// PolicyKnown says which policies exist (requests for others are refused).
	PolicyKnown func(string) bool
	// Notify, when set, hears of each request asked for, decided and
	// exchanged, after its change committed (the access webhook).
	Notify func(event string, req *access.Request)
}

// Access request events, as Notify and the access webhook name them.
const (
	EventAccessRequested = "access.requested"
	EventAccessApproved  = "access.approved"
	EventAccessDenied    = "access.denied"
	EventAccessIssued    = "access.issued"
)

func (h *AccessRequests) notify(event string, req *access.Request) {
	if h.Notify != nil && req != nil {
		h.Notify(event, req)
	}
}

// AuthMethodAccessRequest names tokens issued for an access request.
const AuthMethodAccessRequest = "access-request"

// MapAccessErrors registers the access package's errors.
func MapAccessErrors(m *ErrorMapper) {
	m.Map(access.ErrInvalid, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(access.ErrNotFound, http.StatusNotFound, CodeNotFound, "")
	m.Map(access.ErrState, http.StatusConflict, CodeConflict, "")
	m.Map(access.ErrSelf, http.StatusForbidden, CodePermissionDenied, "")
	m.Map(access.ErrNotRequester, http.StatusForbidden, CodePermissionDenied, "")
}

// policyResource is what deciding a request for policy p needs admin on.
func policyResource(p string) string { return "sys/access/policies/" + p }

// mayDecide reports whether c may approve or deny r, or names the first
// policy it may not grant.
func (h *AccessRequests) mayDecide(c *Caller, r *access.Request) (bool, string) {
	for _, p := range r.Policies {
		if ok, _ := h.Authz.Decide(c, "admin", policyResource(p)); !ok {
			return false, p
		}
	}
	return true, ""
}

// visible: the requester sees its requests, and so does whoever may decide them.
func (h *AccessRequests) visible(c *Caller, r *access.Request) bool {
	ok, _ := h.mayDecide(c, r)
	return c.Principal == r.Requester || ok
}

func (h *AccessRequests) auditFn(status int) access.AuditFunc {
	if h.Audit == nil {
		return nil
	}
	return func(ctx context.Context, tx storage.Tx, req *access.Request) error {
		AddAuditDetail(ctx, "request_id", req.ID)
		AddAuditDetail(ctx, "state", req.State)
		return h.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, status))
	}
}

func (h *AccessRequests) done(r *http.Request) {
	if h.Audit != nil {
		MarkAudited(r.Context())
	}
}

func requestRes(r *http.Request) (string, error) {
	return "sys/access/requests/" + r.PathValue("id"), nil
}

// get returns the request in the path if the caller may see it (404 otherwise).
func (h *AccessRequests) get(r *http.Request) (*access.Request, error) {
	req, err := h.Svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if !h.visible(CallerFrom(r.Context()), req) {
		return nil, access.ErrNotFound
	}
	return req, nil
}

// Routes returns the access request routes.
func (h *AccessRequests) Routes() []Route {
	decide := func(approve bool) func(r *http.Request) (int, any, error) {
		return func(r *http.Request) (int, any, error) {
			var in struct {
				Note string `json:"note"`
			}
			if err := decodeOptional(r, &in); err != nil {
				return 0, nil, err
			}
			req, err := h.get(r)
			if err != nil {
				return 0, nil, err
			}
			c := CallerFrom(r.Context())
			if ok, p := h.mayDecide(c, req); !ok {
				return 0, nil, Errorf(http.StatusForbidden, CodePermissionDenied,
					"permission denied: deciding a request for policy %q needs admin on %s", p, policyResource(p))
			}
			out, err := h.Svc.Decide(r.Context(), req.ID, c.Principal, approve, in.Note, h.auditFn(http.StatusOK))
			if err != nil {
				return 0, nil, err
			}
			h.done(r)
			if approve {
				h.notify(EventAccessApproved, out)
			} else {
				h.notify(EventAccessDenied, out)
			}
			return http.StatusOK, out, nil
		}
	}
	return []Route{
		{
			Pattern: "POST /v1/access/requests", AnyToken: true, Action: "write", Resource: static("sys/access/requests"),
			Summary: "Ask for policies for a while: {\"policies\", \"ttl\" (1m to 12h, default 1h), \"reason\"}; approved by someone allowed admin on sys/access/policies/<name> for each, never by the requester.",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Policies []string `json:"policies"`
					TTL      string   `json:"ttl"`
					Reason   string   `json:"reason"`
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				ttl, err := ParseDuration("ttl", in.TTL)
				if err != nil {
					return 0, nil, err
				}
				out, err := h.Svc.Create(r.Context(), caller(r), in.Policies, ttl, in.Reason, h.PolicyKnown, h.auditFn(http.StatusCreated))
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				h.notify(EventAccessRequested, out)
				return http.StatusCreated, out, nil
			},
		},
		{
			Pattern: "GET /v1/access/requests", AnyToken: true, Action: "list", Resource: static("sys/access/requests"),
			Summary: "List access requests (the caller's own and those it may decide), newest first: ?state=pending|approved|denied|issued|expired, ?since= (default 7 days).",
			Handle: func(r *http.Request) (int, any, error) {
				q := r.URL.Query()
				since, err := parseSince("since", q.Get("since"))
				if err != nil {
					return 0, nil, err
				}
				if since.IsZero() {
					since = time.Now().Add(-7 * 24 * time.Hour)
				}
				state := q.Get("state")
				if state != "" && !slices.Contains([]string{access.Pending, access.Approved, access.Denied, access.Issued, access.Expired}, state) {
					return 0, nil, Invalid("state: want pending, approved, denied, issued or expired")
				}
				all, err := h.Svc.List(r.Context(), since, 1000)
				if err != nil {
					return 0, nil, err
				}
				c := CallerFrom(r.Context())
				out := []*access.Request{}
				for _, req := range all {
					if (state == "" || req.State == state) && h.visible(c, req) {
						out = append(out, req)
					}
				}
				return http.StatusOK, map[string]any{"requests": out}, nil
			},
		},
		{
			Pattern: "GET /v1/access/requests/{id}", AnyToken: true, Action: "read", Resource: requestRes,
			Summary: "Read an access request (its requester, or someone who may decide it).",
			Handle: func(r *http.Request) (int, any, error) {
				req, err := h.get(r)
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, req, nil
			},
		},
		{
			Pattern: "POST /v1/access/requests/{id}/approve", AnyToken: true, Action: "admin", Resource: requestRes,
			Summary: "Approve a pending access request ({\"note\"} optional): needs admin on sys/access/policies/<name> for each policy asked for; not by the requester.",
			Handle:  decide(true),
		},
		{
			Pattern: "POST /v1/access/requests/{id}/deny", AnyToken: true, Action: "admin", Resource: requestRes,
			Summary: "Deny a pending access request ({\"note\"} optional); same permission as approve.",
			Handle:  decide(false),
		},
		{
			Pattern: "POST /v1/access/requests/{id}/token", AnyToken: true, Action: "issue", Resource: requestRes,
			Summary: "The requester exchanges its approved request for a token holding the policies asked for, for the ttl asked for (once; within an hour of the approval).",
			Handle: func(r *http.Request) (int, any, error) {
				c := CallerFrom(r.Context())
				var plain string
				var tok *token.Token
				claimed, err := h.Svc.Claim(r.Context(), r.PathValue("id"), c.Principal, func(tx storage.Tx, req *access.Request) (string, error) {
					var err error
					plain, tok, err = h.Tokens.IssueTx(r.Context(), tx, token.Request{
						Principal: req.Requester, AuthMethod: AuthMethodAccessRequest, Policies: req.Policies,
						TTL: req.TTL, MaxTTL: req.TTL,
						Meta: map[string]string{"access_request": req.ID, "approved_by": req.DecidedBy},
					})
					if err != nil {
						return "", err
					}
					return tok.Accessor, nil
				}, h.auditFn(http.StatusOK))
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				h.notify(EventAccessIssued, claimed)
				return http.StatusOK, NewIssuedToken(plain, tok), nil
			},
		},
	}
}
