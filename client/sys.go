package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Health is the server's health document.
type Health struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Version     string `json:"version"`
	Storage     string `json:"storage"`
	// Seal is what opens the root key at start: "shamir" or "pkcs11".
	Seal  string `json:"seal,omitempty"`
	Error string `json:"error,omitempty"`
}

// InitResult holds the unseal shares and the root token, shown once.
type InitResult struct {
	Shares    []string `json:"shares"`
	RootToken string   `json:"root_token"`
	Threshold int      `json:"threshold"`
	// Seal is "pkcs11" when an HSM wraps the root key: the server is then
	// unsealed already (Sealed false) and the shares are recovery shares.
	Seal   string `json:"seal,omitempty"`
	Sealed bool   `json:"sealed"`
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

// BackupInfo describes a backup Backup wrote.
type BackupInfo struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"` // hex
}

// Backup calls GET /v1/sys/backup and writes the copy of the server's
// database to w, checking it against the SHA-256 the server sent
// (Repr-Digest); a copy that differs is an error, and w then holds bytes
// that must not be used. Unlike other calls it has no time limit of its
// own (a large database takes a while): ctx bounds it.
func (c *Client) Backup(ctx context.Context, w io.Writer) (*BackupInfo, error) {
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, h)}
	dl := &download{w: cw}
	hc := *c.hc
	hc.Timeout = 0
	cc := *c
	cc.hc = &hc
	if _, err := cc.do(ctx, http.MethodGet, "/v1/sys/backup", nil, nil, dl); err != nil {
		return nil, err
	}
	want, ok := reprDigestSHA256(dl.header.Values("Repr-Digest"))
	if !ok {
		return nil, errors.New("the server sent no SHA-256 of the backup (Repr-Digest); the copy cannot be checked")
	}
	got := h.Sum(nil)
	if !bytes.Equal(got, want) {
		return nil, fmt.Errorf("the backup received (%d bytes) does not match the SHA-256 the server sent: it was damaged on the way", cw.n)
	}
	return &BackupInfo{Bytes: cw.n, SHA256: hex.EncodeToString(got)}, nil
}

// reprDigestSHA256 finds the sha-256 member of Repr-Digest fields (RFC
// 9530: sha-256=:BASE64:, among others separated by commas).
func reprDigestSHA256(fields []string) ([]byte, bool) {
	for _, f := range fields {
		for m := range strings.SplitSeq(f, ",") {
			v, ok := strings.CutPrefix(strings.TrimSpace(m), "sha-256=:")
			if !ok || !strings.HasSuffix(v, ":") {
				continue
			}
			b, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(v, ":"))
			if err == nil && len(b) == sha256.Size {
				return b, true
			}
		}
	}
	return nil, false
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
