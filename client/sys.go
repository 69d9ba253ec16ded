package client

import (
	"context"
	"net/http"
)

// Health is the server's health document.
type Health struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Version     string `json:"version"`
	Storage     string `json:"storage"`
	Error       string `json:"error,omitempty"`
}

// InitResult holds the unseal shares and the root token, shown once.
type InitResult struct {
	Shares    []string `json:"shares"`
	RootToken string   `json:"root_token"`
	Threshold int      `json:"threshold"`
}

// UnsealProgress reports progress toward the unseal threshold.
type UnsealProgress struct {
	Sealed    bool `json:"sealed"`
	Progress  int  `json:"progress"`
	Threshold int  `json:"threshold"`
}

// Health calls GET /v1/sys/health. A sealed or uninitialised server answers
// 503 with the same document, which is returned without error.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	if _, err := c.do(ctx, http.MethodGet, "/v1/sys/health", nil, nil, &h, http.StatusServiceUnavailable); err != nil {
		return nil, err
	}
	return &h, nil
}

// Init calls POST /v1/sys/init.
func (c *Client) Init(ctx context.Context, shares, threshold int) (*InitResult, error) {
	var r InitResult
	_, err := c.do(ctx, http.MethodPost, "/v1/sys/init", nil, map[string]int{"shares": shares, "threshold": threshold}, &r)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Unseal calls POST /v1/sys/unseal with one share.
func (c *Client) Unseal(ctx context.Context, share string) (*UnsealProgress, error) {
	var p UnsealProgress
	if _, err := c.do(ctx, http.MethodPost, "/v1/sys/unseal", nil, map[string]string{"share": share}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// UnsealReset discards the shares submitted so far.
func (c *Client) UnsealReset(ctx context.Context) (*UnsealProgress, error) {
	var p UnsealProgress
	if _, err := c.do(ctx, http.MethodPost, "/v1/sys/unseal", nil, map[string]bool{"reset": true}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Seal calls POST /v1/sys/seal (root token).
func (c *Client) Seal(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/sys/seal", nil, nil, nil)
	return err
}

// Rotate calls POST /v1/sys/rotate and returns the new keyring version.
func (c *Client) Rotate(ctx context.Context) (uint32, error) {
	var r struct {
		KeyVersion uint32 `json:"key_version"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/v1/sys/rotate", nil, nil, &r); err != nil {
		return 0, err
	}
	return r.KeyVersion, nil
}
