package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/keyward/keyward/internal/device"
	"github.com/keyward/keyward/internal/dpop"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// Devices serves device enrollment: codes for operators, the enrollment
// itself for devices (proving their key with a DPoP proof), and the
// devices enrolled. Tokens come from the token endpoint (GrantDevice).
type Devices struct {
	Svc    *device.Service
	Tokens *token.Service
	DPoP   *dpop.Verifier
	Audit  Auditor
	// PolicyKnown says which policies exist (codes for others are refused).
	PolicyKnown func(string) bool
}

// MapDeviceErrors registers the device package's errors.
func MapDeviceErrors(m *ErrorMapper) {
	m.Map(device.ErrInvalid, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(device.ErrNotFound, http.StatusNotFound, CodeNotFound, "")
	m.Map(device.ErrCode, http.StatusUnauthorized, CodeUnauthenticated, "")
	m.Map(device.ErrKeyEnrolled, http.StatusConflict, CodeConflict, "")
	m.Map(device.ErrSealed, http.StatusServiceUnavailable, CodeSealed, "keyward is sealed")
}

func (h *Devices) auditFn(status int) device.AuditFunc {
	if h.Audit == nil {
		return nil
	}
	return func(ctx context.Context, tx storage.Tx) error {
		return h.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, status))
	}
}

func (h *Devices) done(r *http.Request) {
	if h.Audit != nil {
		MarkAudited(r.Context())
	}
}

func deviceRes(r *http.Request) (string, error) {
	return "identities/devices/" + r.PathValue("id"), nil
}

// setDisabled disables or enables the device in the path; disabling also
// revokes every token it holds.
func (h *Devices) setDisabled(disabled bool) func(r *http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		id := r.PathValue("id")
		d, err := h.Svc.SetDisabled(r.Context(), id, disabled, h.auditFn(http.StatusOK))
		if err != nil {
			return 0, nil, err
		}
		h.done(r)
		if disabled {
			if _, err := h.Tokens.RevokePrincipal(r.Context(), d.Principal(), nil); err != nil {
				return 0, nil, err
			}
		}
		return http.StatusOK, d, nil
	}
}

// Routes returns the device routes.
func (h *Devices) Routes() []Route {
	return []Route{
		{
			Pattern: "POST /v1/devices/enrollments", Action: "write", Resource: static("identities/devices"),
			Summary: "Make an enrollment code (kwe_…, shown once) for devices: {\"label\", \"policies\", \"uses\" (default 1), \"ttl\" (default 24h, at most 30 days)}.",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Label    string   `json:"label"`
					Policies []string `json:"policies"`
					Uses     int      `json:"uses"`
					TTL      string   `json:"ttl"`
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				ttl, err := ParseDuration("ttl", in.TTL)
				if err != nil {
					return 0, nil, err
				}
				code, e, err := h.Svc.CreateEnrollment(r.Context(), in.Label, in.Policies, in.Uses, ttl, caller(r), h.PolicyKnown, h.auditFn(http.StatusCreated))
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				return http.StatusCreated, map[string]any{"code": code, "enrollment": e}, nil
			},
		},
		{
			Pattern: "GET /v1/devices/enrollments", Action: "list", Resource: static("identities/devices"),
			Summary: "List enrollment codes (never the codes), newest first.",
			Handle: func(r *http.Request) (int, any, error) {
				es, err := h.Svc.Enrollments(r.Context())
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, map[string]any{"enrollments": es}, nil
			},
		},
		{
			Pattern: "DELETE /v1/devices/enrollments/{id}", Action: "delete", Resource: static("identities/devices"),
			Summary: "Revoke an enrollment code; devices enrolled with it stay.",
			Handle: func(r *http.Request) (int, any, error) {
				if err := h.Svc.RevokeEnrollment(r.Context(), r.PathValue("id"), h.auditFn(http.StatusNoContent)); err != nil {
					return 0, nil, err
				}
				h.done(r)
				return http.StatusNoContent, nil, nil
			},
		},
		{
			Pattern: "POST /v1/devices/enroll", Open: true, DataPlane: true, Action: "write", Resource: static("identities/devices"),
			Summary: "A device enrolls: {\"code\", \"name\"} with a DPoP proof (header DPoP) signed by the key it will use from now on; 201 {\"device_id\", \"policies\"}. Then: POST /v1/oauth/token grant_type=" + GrantDevice + " device_id=… with a proof.",
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Code string `json:"code"`
					Name string `json:"name"`
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				// The code first: a proof is checked (and takes a replay-cache
				// slot) only for a caller holding a live code.
				if err := h.Svc.CheckCode(r.Context(), in.Code); err != nil {
					return 0, nil, err
				}
				proofs := r.Header.Values("DPoP")
				if len(proofs) != 1 || h.DPoP == nil {
					return 0, nil, Invalid("exactly one DPoP proof header, signed by the device's key, is required")
				}
				p, err := h.DPoP.Verify(r.Context(), proofs[0], dpop.Expect{Method: r.Method, URL: RequestURL(r)})
				switch {
				case errors.Is(err, dpop.ErrBusy), errors.Is(err, dpop.ErrUnavailable):
					return 0, nil, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: time.Second,
						Message: "the DPoP proof could not be recorded against replay; retry shortly with a new proof"}
				case err != nil:
					return 0, nil, Invalid("%s", dpopReason(err))
				}
				d, err := h.Svc.Enroll(r.Context(), in.Code, p.JKT, in.Name, func(ctx context.Context, tx storage.Tx, d *device.Device) error {
					AddAuditDetail(ctx, "device_id", d.ID)
					AddAuditDetail(ctx, "enrollment_id", d.EnrollmentID)
					if h.Audit == nil {
						return nil
					}
					return h.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, http.StatusCreated))
				})
				if err != nil {
					return 0, nil, err
				}
				h.done(r)
				return http.StatusCreated, map[string]any{"device_id": d.ID, "name": d.Name, "policies": d.Policies,
					"token_grant": GrantDevice}, nil
			},
		},
		{
			Pattern: "GET /v1/devices", Action: "list", Resource: static("identities/devices"),
			Summary: "List enrolled devices by id (?limit=, ?cursor= the last id of the previous page).",
			Handle: func(r *http.Request) (int, any, error) {
				limit := 100
				if s := r.URL.Query().Get("limit"); s != "" {
					n, err := strconv.Atoi(s)
					if err != nil || n < 1 || n > 1000 {
						return 0, nil, Invalid("limit: want 1 to 1000")
					}
					limit = n
				}
				ds, err := h.Svc.List(r.Context(), limit, r.URL.Query().Get("cursor"))
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, map[string]any{"devices": ds}, nil
			},
		},
		{
			Pattern: "GET /v1/devices/{id}", Action: "read", Resource: deviceRes,
			Summary: "Read a device.",
			Handle: func(r *http.Request) (int, any, error) {
				d, err := h.Svc.Get(r.Context(), r.PathValue("id"))
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, d, nil
			},
		},
		{
			Pattern: "POST /v1/devices/{id}/disable", Action: "write", Resource: deviceRes,
			Summary: "Disable a device: it gets no token, and the tokens it holds are revoked at once.",
			Handle:  h.setDisabled(true),
		},
		{
			Pattern: "POST /v1/devices/{id}/enable", Action: "write", Resource: deviceRes,
			Summary: "Enable a disabled device again.",
			Handle:  h.setDisabled(false),
		},
		{
			Pattern: "DELETE /v1/devices/{id}", Action: "delete", Resource: deviceRes,
			Summary: "Delete a device and revoke its tokens (its key may enroll again, with a new code).",
			Handle: func(r *http.Request) (int, any, error) {
				id := r.PathValue("id")
				if err := h.Svc.Delete(r.Context(), id, h.auditFn(http.StatusNoContent)); err != nil {
					return 0, nil, err
				}
				h.done(r)
				if _, err := h.Tokens.RevokePrincipal(r.Context(), "device:"+id, nil); err != nil {
					return 0, nil, err
				}
				return http.StatusNoContent, nil, nil
			},
		},
	}
}
