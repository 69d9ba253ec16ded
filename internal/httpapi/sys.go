package httpapi

import (
	"context"
	"net/http"
)

// Sys is the operator surface of a node: initialisation, unsealing, sealing,
// key rotation and health.
type Sys interface {
	Init(ctx context.Context, shares, threshold int) (*InitResponse, error)
	Unseal(ctx context.Context, share string) (*UnsealResponse, error)
	Seal(ctx context.Context) error
	Rotate(ctx context.Context) (*RotateResponse, error)
	Health(ctx context.Context) *HealthResponse
	// Backup returns a consistent copy of the node's database to stream
	// (SQLite); on PostgreSQL, an error saying to use its tools.
	Backup(ctx context.Context) (*Stream, error)
}

// InitRequest is the body of POST /v1/sys/init.
type InitRequest struct {
	Shares    int `json:"shares"`
	Threshold int `json:"threshold"`
}

// InitResponse holds the unseal shares and the root token: shown once.
type InitResponse struct {
	Shares    []string `json:"shares"`
	RootToken string   `json:"root_token"`
	Threshold int      `json:"threshold"`
	// Seal is "pkcs11" when an HSM wraps the root key: the node is then
	// unsealed already (Sealed false) and the shares are recovery shares.
	Seal   string `json:"seal"`
	Sealed bool   `json:"sealed"`
}

// UnsealRequest is the body of POST /v1/sys/unseal.
type UnsealRequest struct {
	Share string `json:"share"`
	Reset bool   `json:"reset,omitempty"`
}

// UnsealResponse reports unseal progress.
type UnsealResponse struct {
	Sealed    bool `json:"sealed"`
	Progress  int  `json:"progress"`
	Threshold int  `json:"threshold"`
}

// RotateResponse reports the new keyring version.
type RotateResponse struct {
	KeyVersion uint32 `json:"key_version"`
}

// HealthResponse is DESIGN.md's health document.
type HealthResponse struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Version     string `json:"version"`
	Storage     string `json:"storage"`
	// Seal is what opens the root key at start: "shamir" (unseal shares)
	// or "pkcs11" (an HSM).
	Seal string `json:"seal,omitempty"`
	// Error says why a node that is unsealed is nonetheless not serving
	// (audit log or storage failing).
	Error string `json:"error,omitempty"`
}

// Serving reports whether the node can serve requests.
func (h *HealthResponse) Serving() bool { return h.Initialized && !h.Sealed && h.Error == "" }

func static(resource string) func(*http.Request) (string, error) {
	return func(*http.Request) (string, error) { return resource, nil }
}

// SysRoutes returns the operator routes.
func SysRoutes(sys Sys, metrics *Metrics) []Route {
	routes := []Route{
		{
			Pattern: "GET /v1/sys/health", Open: true, WhileSealed: true, NoAudit: true, DataPlane: true,
			Summary: "Node health: 200 when serving, 503 when sealed or uninitialised.",
			Handle: func(r *http.Request) (int, any, error) {
				h := sys.Health(r.Context())
				if !h.Serving() {
					return http.StatusServiceUnavailable, h, nil
				}
				return http.StatusOK, h, nil
			},
		},
		{
			Pattern: "POST /v1/sys/init", Open: true, WhileSealed: true,
			Summary: "Initialise: generate the root key, split it into shares, return the shares and the root token once.",
			Handle: func(r *http.Request) (int, any, error) {
				req := InitRequest{Shares: 5, Threshold: 3}
				if err := decodeOptional(r, &req); err != nil {
					return 0, nil, err
				}
				res, err := sys.Init(r.Context(), req.Shares, req.Threshold)
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, res, nil
			},
		},
		{
			Pattern: "POST /v1/sys/unseal", Open: true, WhileSealed: true,
			Summary: "Submit one unseal share; reports progress toward the threshold.",
			Handle: func(r *http.Request) (int, any, error) {
				var req UnsealRequest
				if err := decode(r, &req); err != nil {
					return 0, nil, err
				}
				if req.Share == "" && !req.Reset {
					return 0, nil, Invalid("share is required")
				}
				if req.Reset {
					req.Share = ""
				}
				res, err := sys.Unseal(r.Context(), req.Share)
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, res, nil
			},
		},
		{
			Pattern: "POST /v1/sys/seal", Action: "admin", Resource: static("sys/seal"),
			Summary: "Seal the node: wipe keys from memory; nothing is served until unsealed.",
			Handle: func(r *http.Request) (int, any, error) {
				if err := sys.Seal(r.Context()); err != nil {
					return 0, nil, err
				}
				return http.StatusNoContent, nil, nil
			},
		},
		{
			Pattern: "GET /v1/sys/backup", Action: "admin", Resource: static("sys/backup"),
			Summary: "Download a consistent copy of the node's SQLite database (application/vnd.sqlite3; Repr-Digest: its SHA-256). Its secrets stay encrypted under the keyring, which only the unseal keys open; on PostgreSQL, 400: back it up with PostgreSQL's tools.",
			Handle: func(r *http.Request) (int, any, error) {
				st, err := sys.Backup(r.Context())
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, st, nil
			},
		},
		{
			Pattern: "POST /v1/sys/rotate", Action: "rotate", Resource: static("sys/keyring"),
			Summary: "Add a keyring version; new writes use it, old ciphertexts still open.",
			Handle: func(r *http.Request) (int, any, error) {
				res, err := sys.Rotate(r.Context())
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, res, nil
			},
		},
	}
	if metrics != nil {
		routes = append(routes, Route{
			Pattern: "GET /metrics", Open: true, WhileSealed: true, NoAudit: true,
			Summary: "Prometheus metrics.",
			Raw:     metrics.Handler().ServeHTTP,
		})
	}
	return routes
}
