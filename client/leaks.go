package client

import (
	"context"
	"net/http"
)

// Leak is a keyward credential found where it should not be, and where.
type Leak struct {
	Credential string
	Where      string // a URL, a file and line
}

// ReportLeaks reports leaked credentials (POST /v1/leaks, which needs no
// token: a credential is its own authority to be revoked). The server
// revokes each keyward token (with its children) and API key among them;
// found is how many were its credentials (now revoked, or already).
func (c *Client) ReportLeaks(ctx context.Context, leaks []Leak) (found int, err error) {
	type match struct {
		Token  string `json:"token"`
		Type   string `json:"type"`
		URL    string `json:"url"`
		Source string `json:"source"`
	}
	const perReport = 100 // the server's maximum
	for start := 0; start < len(leaks); start += perReport {
		part := leaks[start:min(start+perReport, len(leaks))]
		body := make([]match, len(part))
		for i, l := range part {
			body[i] = match{Token: l.Credential, Type: "keyward", URL: l.Where, Source: "keyward scan"}
		}
		var labels []struct {
			Label string `json:"label"`
		}
		if _, err := c.do(ctx, http.MethodPost, "/v1/leaks", nil, body, &labels); err != nil {
			return found, err
		}
		for _, l := range labels {
			if l.Label == "true_positive" {
				found++
			}
		}
	}
	return found, nil
}
