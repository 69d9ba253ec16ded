package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// Leaks serves leak reports: whoever finds keyward credentials where they
// should not be — a scanner, a colleague, GitHub's secret scanning — sends
// them, and each access token (kwt_) or client API key (kwk_) among them
// is revoked at once. As for RFC 7009 revocation, holding a credential is
// enough: a report can only take power away.
type Leaks struct {
	Tokens *token.Service
	Keys   *apikey.Service
	Audit  Auditor
	// Admit, when set, is asked first with the client's address; an error
	// (typically a 429 *Error) refuses the report before it is read. The
	// route is open: this bounds what one address can make the node do.
	Admit func(src string) error
}

// maxLeaks bounds the credentials of one report.
const maxLeaks = 100

// LeakReport is the body of POST /v1/leaks in keyward's own shape.
type LeakReport struct {
	Credentials []string `json:"credentials"`
	// Source says where they were found (a URL, a file): it goes to the
	// audit entries.
	Source string `json:"source,omitempty"`
}

// githubLeak is one match of GitHub's secret scanning partner format.
type githubLeak struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// githubLabel is GitHub's expected answer for one match.
type githubLabel struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"` // true_positive or false_positive
}

// Routes returns the leak report route.
func (h *Leaks) Routes() []Route {
	return []Route{{
		Pattern: "POST /v1/leaks", Open: true, Action: "delete", DataPlane: true,
		Summary: `Report leaked credentials: {"credentials": ["kwt_…", "kwk_…"], "source": "where"} (or GitHub secret scanning's [{"token", "type", "url", "source"}]); each keyward token or API key among them is revoked (a token with its children) and audited. The credentials are the authority, as for RFC 7009. At most 100 a report.`,
		Handle: func(r *http.Request) (int, any, error) {
			if h.Admit != nil {
				if err := h.Admit(state(r.Context()).srcString()); err != nil {
					return 0, nil, err
				}
			}
			var raw json.RawMessage
			if err := decode(r, &raw); err != nil {
				return 0, nil, err
			}
			leaks, github, err := parseLeakReport(raw)
			if err != nil {
				return 0, nil, err
			}
			var labels []githubLabel
			revoked := 0
			for _, l := range leaks {
				found, err := h.revoke(r.Context(), l.Token, truncate(l.URL, 512))
				if err != nil {
					return 0, nil, err
				}
				if found {
					revoked++
				}
				if github {
					sum := sha256.Sum256([]byte(l.Token))
					label := githubLabel{TokenHash: hex.EncodeToString(sum[:]), TokenType: l.Type, Label: "false_positive"}
					if found {
						label.Label = "true_positive"
					}
					labels = append(labels, label)
				}
			}
			if github {
				return http.StatusOK, labels, nil
			}
			return http.StatusOK, map[string]int{"received": len(leaks), "revoked": revoked}, nil
		},
	}}
}

// parseLeakReport reads a report in either shape: keyward's object (its
// source becomes each leak's URL) or GitHub's array (github true).
func parseLeakReport(raw []byte) (leaks []githubLeak, github bool, err error) {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(raw, &leaks); err != nil {
			return nil, true, Invalid("request body: want an array of {token, type, url, source}")
		}
		github = true
	} else {
		var rep LeakReport
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rep); err != nil || rep.Credentials == nil {
			return nil, false, Invalid(`request body: want {"credentials": [...], "source": "..."}`)
		}
		for _, c := range rep.Credentials {
			leaks = append(leaks, githubLeak{Token: c, URL: rep.Source})
		}
	}
	if len(leaks) > maxLeaks {
		return nil, github, Invalid("at most %d credentials a report", maxLeaks)
	}
	return leaks, github, nil
}

// revoke revokes the token or API key plain names, when it is one that is
// still valid, with an audit entry naming source; found reports whether
// it was a keyward credential this server issued.
func (h *Leaks) revoke(ctx context.Context, plain, source string) (found bool, err error) {
	s := state(ctx)
	audit := func(resource, result string) *AuditEvent {
		ev := AuditEventFor(ctx, http.StatusOK)
		ev.Resource = resource
		ev.Detail = AuditDetails{{Key: "result", Value: result}, {Key: "reason", Value: "leak report"}}
		if source != "" {
			ev.Detail.Set("source", source)
		}
		return ev
	}
	switch {
	case strings.HasPrefix(plain, "kwt_"):
		result, audited, err := revokeHeld(ctx, h.Tokens, plain, func(ctx context.Context, tx storage.Tx, result string) error {
			return h.auditTx(ctx, tx, audit(s.resource, result))
		})
		switch {
		case err != nil || result == "unknown token":
			return false, err
		case audited:
			MarkAudited(ctx)
			return true, nil
		}
		return true, h.auditNow(ctx, audit(s.resource, result))
	case strings.HasPrefix(plain, "kwk_"):
		k, err := h.Keys.Lookup(ctx, plain)
		if errors.Is(err, apikey.ErrMalformed) || errors.Is(err, apikey.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		s.caller = &Caller{Principal: "apikey:" + k.ID, AuthMethod: "apikey", Accessor: k.ID, AccessorHMAC: k.IDHMAC}
		resource := "projects/" + k.Project + "/envs/" + k.Env + "/keys/" + k.ID
		if !k.RevokedAt.IsZero() && !k.RevokedAt.After(time.Now()) {
			return true, h.auditNow(ctx, audit(resource, "already revoked"))
		}
		_, err = h.Keys.Revoke(ctx, k.Project, k.Env, k.ID, func(ctx context.Context, tx storage.Tx, _ string) error {
			return h.auditTx(ctx, tx, audit(resource, "revoked"))
		})
		if err == nil && h.Audit != nil {
			MarkAudited(ctx)
		}
		return true, err
	}
	return false, nil
}

func (h *Leaks) auditTx(ctx context.Context, tx storage.Tx, ev *AuditEvent) error {
	if h.Audit == nil {
		return nil
	}
	return h.Audit.AuditTx(ctx, tx, ev)
}

func (h *Leaks) auditNow(ctx context.Context, ev *AuditEvent) error {
	if h.Audit == nil {
		return nil
	}
	MarkAudited(ctx)
	return h.Audit.AuditRequest(ctx, ev)
}
