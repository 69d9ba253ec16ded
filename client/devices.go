package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// GrantDevice is the token endpoint's grant for enrolled devices.
const GrantDevice = "urn:keyward:params:oauth:grant-type:device"

// Enrollment is an enrollment code's settings (never the code).
type Enrollment struct {
	ID        string    `json:"id"`
	Label     string    `json:"label,omitempty"`
	Policies  []string  `json:"policies"`
	Uses      int       `json:"uses"`
	Remaining int       `json:"remaining"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	ExpiresAt time.Time `json:"expires_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Device is an enrolled device.
type Device struct {
	ID           string    `json:"id"`
	Name         string    `json:"name,omitempty"`
	JKT          string    `json:"jkt"`
	Policies     []string  `json:"policies"`
	EnrollmentID string    `json:"enrollment_id"`
	CreatedAt    time.Time `json:"created_at"`
	DisabledAt   time.Time `json:"disabled_at,omitzero"`
	LastTokenAt  time.Time `json:"last_token_at,omitzero"` // to the minute
}

// CreateEnrollment makes an enrollment code for uses devices (0: 1) valid
// for ttl ("" for 24h), giving them policies. The code is shown once.
func (c *Client) CreateEnrollment(ctx context.Context, label string, policies []string, uses int, ttl string) (string, *Enrollment, error) {
	var out struct {
		Code       string     `json:"code"`
		Enrollment Enrollment `json:"enrollment"`
	}
	body := map[string]any{"label": label, "policies": policies, "uses": uses}
	if ttl != "" {
		body["ttl"] = ttl
	}
	if _, err := c.do(ctx, http.MethodPost, "/v1/devices/enrollments", nil, body, &out); err != nil {
		return "", nil, err
	}
	return out.Code, &out.Enrollment, nil
}

// Enrollments lists enrollment codes, newest first.
func (c *Client) Enrollments(ctx context.Context) ([]Enrollment, error) {
	var out struct {
		Enrollments []Enrollment `json:"enrollments"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/devices/enrollments", nil, nil, &out)
	return out.Enrollments, err
}

// RevokeEnrollment ends an enrollment code; devices enrolled stay.
func (c *Client) RevokeEnrollment(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/devices/enrollments/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// Devices lists enrolled devices by id, after cursor ("" from the start).
func (c *Client) Devices(ctx context.Context, limit int, cursor string) ([]Device, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var out struct {
		Devices []Device `json:"devices"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/devices", q, nil, &out)
	return out.Devices, err
}

// GetDevice reads device id.
func (c *Client) GetDevice(ctx context.Context, id string) (*Device, error) {
	var d Device
	if _, err := c.do(ctx, http.MethodGet, "/v1/devices/"+url.PathEscape(id), nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// SetDeviceDisabled disables device id (revoking its tokens) or enables it.
func (c *Client) SetDeviceDisabled(ctx context.Context, id string, disabled bool) (*Device, error) {
	verb := "/enable"
	if disabled {
		verb = "/disable"
	}
	var d Device
	if _, err := c.do(ctx, http.MethodPost, "/v1/devices/"+url.PathEscape(id)+verb, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeleteDevice deletes device id and revokes its tokens.
func (c *Client) DeleteDevice(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/devices/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// Enroll enrolls this device with an enrollment code: the request carries a
// DPoP proof of the Client's prover (Config.DPoP), whose key becomes the
// device's. It returns the device's id.
func (c *Client) Enroll(ctx context.Context, code, name string) (string, error) {
	cc := *c
	cc.token, cc.proveBare = "", true
	var out struct {
		DeviceID string `json:"device_id"`
	}
	if _, err := cc.do(ctx, http.MethodPost, "/v1/devices/enroll", nil, map[string]string{"code": code, "name": name}, &out); err != nil {
		return "", err
	}
	return out.DeviceID, nil
}

// DeviceToken gets an enrolled device a token bound to its key (the
// Client's prover must hold the key the device enrolled with). Use the
// token through a Client with the same prover.
func (c *Client) DeviceToken(ctx context.Context, deviceID string) (*ExchangeResponse, error) {
	cc := *c
	cc.token, cc.proveBare = "", true
	var out ExchangeResponse
	form := url.Values{"grant_type": {GrantDevice}, "device_id": {deviceID}}
	if _, err := cc.do(ctx, http.MethodPost, "/v1/oauth/token", nil, form, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
