package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/monitor"
	"github.com/keyward/keyward/internal/secret"
	"github.com/keyward/keyward/internal/storage"
)

// Secrets serves projects, environments and secrets.
type Secrets struct {
	Svc   *secret.Service
	Authz Authorizer
	Audit Auditor // nil: changes are audited by the edge after the fact
	// Usage, when set, counts each read of a secret's value (kind
	// monitor.KindSecret, subject PROJECT/ENV/PATH), so the inventory can
	// tell secrets nobody reads.
	Usage func(kind, subject string, status int)
}

// noteRead counts a read of the value of secret path in project/env.
func (s *Secrets) noteRead(project, env, path string) {
	if s.Usage != nil {
		s.Usage(monitor.KindSecret, project+"/"+env+"/"+path, http.StatusOK)
	}
}

// MapSecretErrors registers the secret package's errors.
func MapSecretErrors(m *ErrorMapper) {
	m.Map(secret.ErrInvalid, http.StatusBadRequest, CodeInvalidArgument, "")
	m.Map(secret.ErrTooLarge, http.StatusRequestEntityTooLarge, CodeTooLarge, "")
	m.Map(secret.ErrProjectNotFound, http.StatusNotFound, CodeNotFound, "")
	m.Map(secret.ErrEnvNotFound, http.StatusNotFound, CodeNotFound, "")
	m.Map(secret.ErrNotFound, http.StatusNotFound, CodeNotFound, "")
	m.Map(secret.ErrDeleted, http.StatusNotFound, CodeNotFound, "")
	m.Map(secret.ErrVersionNotFound, http.StatusNotFound, CodeNotFound, "")
	m.Map(secret.ErrDestroyed, http.StatusNotFound, CodeNotFound, "")
	m.Map(secret.ErrExists, http.StatusConflict, CodeConflict, "")
}

// casError turns a check-and-set failure into a 409 carrying the current version.
func casError(err error) error {
	var ce *secret.CASError
	if errors.As(err, &ce) {
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: ce.Error(),
			Details: map[string]any{"current_version": ce.Current}, Err: err}
	}
	return err
}

// SecretResource is the policy resource of a secret path.
func SecretResource(project, env, path string) string {
	return "projects/" + project + "/envs/" + env + "/secrets/" + path
}

func pathValues(r *http.Request) (project, env, path string, err error) {
	project, env, path = r.PathValue("project"), r.PathValue("env"), r.PathValue("path")
	if err := secret.ValidateName("project", project); err != nil {
		return "", "", "", err
	}
	if env != "" || strings.Contains(r.Pattern, "{env}") {
		if err := secret.ValidateName("environment", env); err != nil {
			return "", "", "", err
		}
	}
	if strings.Contains(r.Pattern, "{path...}") {
		if err := secret.ValidatePath(path); err != nil {
			return "", "", "", err
		}
	}
	return project, env, path, nil
}

func secretRes(r *http.Request) (string, error) {
	p, e, path, err := pathValues(r)
	if err != nil {
		return "", err
	}
	SetAuditEnvironment(r.Context(), p+"/"+e)
	AddAuditDetail(r.Context(), "path", path)
	return SecretResource(p, e, path), nil
}

func folderRes(r *http.Request) (string, error) {
	p, e, _, err := pathValues(r)
	if err != nil {
		return "", err
	}
	prefix, err := secret.ValidatePrefix(r.URL.Query().Get("prefix"))
	if err != nil {
		return "", err
	}
	SetAuditEnvironment(r.Context(), p+"/"+e)
	if prefix != "" {
		AddAuditDetail(r.Context(), "prefix", prefix)
	}
	res := "projects/" + p + "/envs/" + e + "/secrets"
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		res += "/" + prefix
	}
	return res, nil
}

// auditFn returns the in-transaction audit hook of a change.
func (s *Secrets) auditFn(status int) secret.AuditFunc {
	if s.Audit == nil {
		return nil
	}
	return func(ctx context.Context, tx storage.Tx, _ int) error {
		return s.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, status))
	}
}

// done marks a successful change as audited (its entry committed with it).
func (s *Secrets) done(r *http.Request) {
	if s.Audit != nil {
		MarkAudited(r.Context())
	}
}

func caller(r *http.Request) string {
	if c := CallerFrom(r.Context()); c != nil {
		return c.Principal
	}
	return ""
}

// SecretValue is the body of a secret read.
type SecretValue struct {
	Path      string          `json:"path"`
	Value     string          `json:"value"`
	Version   int             `json:"version"`
	Current   int             `json:"current_version"`
	Metadata  secret.Metadata `json:"metadata"`
	CreatedAt time.Time       `json:"created_at"`
	CreatedBy string          `json:"created_by"`
	UpdatedAt time.Time       `json:"updated_at"`
	UpdatedBy string          `json:"updated_by"`
}

// PutSecretRequest is the body of a secret write.
type PutSecretRequest struct {
	Value    *string          `json:"value"`
	CAS      *int             `json:"cas,omitempty"`
	Metadata *secret.Metadata `json:"metadata,omitempty"`
}

// Routes returns the routes of the secret store.
func (s *Secrets) Routes() []Route {
	return []Route{
		{
			Pattern: "POST /v1/projects", Action: "write",
			Summary: "Create a project with dev, staging and prod environments.",
			Resource: func(r *http.Request) (string, error) {
				// The name is in the body; peek at it without consuming.
				return "projects", nil
			},
			Handle: func(r *http.Request) (int, any, error) {
				var in struct {
					Name string `json:"name"`
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				if err := secret.ValidateName("project", in.Name); err != nil {
					return 0, nil, err
				}
				AddAuditDetail(r.Context(), "project", in.Name)
				p, err := s.Svc.CreateProject(r.Context(), in.Name, caller(r), s.auditFn(http.StatusCreated))
				if err != nil {
					return 0, nil, err
				}
				s.done(r)
				return http.StatusCreated, p, nil
			},
		},
		{
			Pattern: "GET /v1/projects", Action: "list", Resource: static("projects"),
			Summary: "List projects (those the caller's policies reach).",
			Handle: func(r *http.Request) (int, any, error) {
				ps, err := s.Svc.ListProjects(r.Context())
				if err != nil {
					return 0, nil, err
				}
				c := CallerFrom(r.Context())
				out := []secret.Project{}
				for _, p := range ps {
					if s.reaches(c, "list", "projects/"+p.Name) {
						out = append(out, p)
					}
				}
				return http.StatusOK, map[string]any{"projects": out}, nil
			},
		},
		{
			Pattern: "POST /v1/projects/{project}/envs", Action: "write",
			Summary: "Create an environment in a project.",
			Resource: func(r *http.Request) (string, error) {
				p, _, _, err := pathValues(r)
				return "projects/" + p + "/envs", err
			},
			Handle: func(r *http.Request) (int, any, error) {
				p, _, _, err := pathValues(r)
				if err != nil {
					return 0, nil, err
				}
				var in struct {
					Name string `json:"name"`
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				AddAuditDetail(r.Context(), "env", in.Name)
				e, err := s.Svc.CreateEnv(r.Context(), p, in.Name, s.auditFn(http.StatusCreated))
				if err != nil {
					return 0, nil, err
				}
				s.done(r)
				return http.StatusCreated, e, nil
			},
		},
		{
			Pattern: "GET /v1/projects/{project}/envs", Action: "list",
			Summary: "List the environments of a project.",
			Resource: func(r *http.Request) (string, error) {
				p, _, _, err := pathValues(r)
				return "projects/" + p + "/envs", err
			},
			Handle: func(r *http.Request) (int, any, error) {
				p, _, _, _ := pathValues(r)
				envs, err := s.Svc.ListEnvs(r.Context(), p)
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, map[string]any{"environments": envs}, nil
			},
		},
		{
			Pattern: "GET /v1/projects/{project}/diff", Action: "list",
			Summary: "Compare the secret names (never values) of two environments: ?a=ENV&b=ENV.",
			Resource: func(r *http.Request) (string, error) {
				p, _, _, err := pathValues(r)
				if err != nil {
					return "", err
				}
				for _, e := range []string{r.URL.Query().Get("a"), r.URL.Query().Get("b")} {
					if err := secret.ValidateName("environment", e); err != nil {
						return "", err
					}
				}
				return "projects/" + p + "/envs/" + r.URL.Query().Get("a") + "/secrets", nil
			},
			Handle: func(r *http.Request) (int, any, error) {
				p, _, _, _ := pathValues(r)
				a, b := r.URL.Query().Get("a"), r.URL.Query().Get("b")
				if !s.reaches(CallerFrom(r.Context()), "list", "projects/"+p+"/envs/"+b+"/secrets") {
					return 0, nil, Errorf(http.StatusForbidden, CodePermissionDenied, "permission denied: list on projects/%s/envs/%s/secrets", p, b)
				}
				d, err := s.Svc.DiffEnvs(r.Context(), p, a, b)
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, d, nil
			},
		},
		{
			Pattern: "PUT /v1/projects/{project}/envs/{env}/secrets/{path...}", Action: "write", Resource: secretRes,
			Summary: "Write a new version of a secret: {\"value\": \"...\", \"cas\": N, \"metadata\": {...}}.",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, path, _ := pathValues(r)
				var in PutSecretRequest
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				if in.Value == nil {
					return 0, nil, Invalid("value is required")
				}
				info, err := s.Svc.Put(r.Context(), p, e, path, []byte(*in.Value), secret.PutOptions{
					CAS: in.CAS, Metadata: in.Metadata, By: caller(r), Audit: s.versionAudit(r, http.StatusOK),
				})
				if err != nil {
					return 0, nil, casError(err)
				}
				s.done(r)
				return http.StatusOK, info, nil
			},
		},
		{
			Pattern: "GET /v1/projects/{project}/envs/{env}/secrets/{path...}", Action: "read", Resource: secretRes,
			Summary: "Read a secret (?version=N for an older version).",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, path, _ := pathValues(r)
				version := 0
				if v := r.URL.Query().Get("version"); v != "" {
					n, err := strconv.Atoi(v)
					if err != nil || n <= 0 {
						return 0, nil, Invalid("version %q: want a positive integer", v)
					}
					version = n
				}
				sec, err := s.Svc.Get(r.Context(), p, e, path, version)
				if err != nil {
					return 0, nil, err
				}
				AddAuditDetail(r.Context(), "version", strconv.Itoa(sec.ReadVersion))
				s.noteRead(p, e, path)
				return http.StatusOK, SecretValue{
					Path: path, Value: string(sec.Value), Version: sec.ReadVersion, Current: sec.Version, Metadata: sec.Metadata,
					CreatedAt: sec.CreatedAt, CreatedBy: sec.CreatedBy, UpdatedAt: sec.UpdatedAt, UpdatedBy: sec.UpdatedBy,
				}, nil
			},
		},
		{
			Pattern: "DELETE /v1/projects/{project}/envs/{env}/secrets/{path...}", Action: "delete", Resource: secretRes,
			Summary: "Soft-delete a secret (undelete restores it).",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, path, _ := pathValues(r)
				if err := s.Svc.Delete(r.Context(), p, e, path, caller(r), s.auditFn(http.StatusNoContent)); err != nil {
					return 0, nil, err
				}
				s.done(r)
				return http.StatusNoContent, nil, nil
			},
		},
		{
			Pattern: "POST /v1/projects/{project}/envs/{env}/undelete/{path...}", Action: "write", Resource: secretRes,
			Summary: "Restore a soft-deleted secret.",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, path, _ := pathValues(r)
				if err := s.Svc.Undelete(r.Context(), p, e, path, caller(r), s.auditFn(http.StatusNoContent)); err != nil {
					return 0, nil, err
				}
				s.done(r)
				return http.StatusNoContent, nil, nil
			},
		},
		{
			Pattern: "POST /v1/projects/{project}/envs/{env}/destroy/{path...}", Action: "delete", Resource: secretRes,
			Summary: "Wipe versions of a secret for good: {\"versions\": [1, 2]}, or all versions when empty.",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, path, _ := pathValues(r)
				var in struct {
					Versions []int `json:"versions"`
				}
				if err := decodeOptional(r, &in); err != nil {
					return 0, nil, err
				}
				AddAuditDetail(r.Context(), "versions", joinInts(in.Versions))
				if err := s.Svc.Destroy(r.Context(), p, e, path, in.Versions, s.auditFn(http.StatusNoContent)); err != nil {
					return 0, nil, err
				}
				s.done(r)
				return http.StatusNoContent, nil, nil
			},
		},
		{
			Pattern: "POST /v1/projects/{project}/envs/{env}/rollback/{path...}", Action: "write", Resource: secretRes,
			Summary: "Write a new version that copies an older one: {\"version\": N}.",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, path, _ := pathValues(r)
				var in struct {
					Version int `json:"version"`
				}
				if err := decode(r, &in); err != nil {
					return 0, nil, err
				}
				AddAuditDetail(r.Context(), "from_version", strconv.Itoa(in.Version))
				info, err := s.Svc.Rollback(r.Context(), p, e, path, in.Version, secret.PutOptions{By: caller(r), Audit: s.versionAudit(r, http.StatusOK)})
				if err != nil {
					return 0, nil, err
				}
				s.done(r)
				return http.StatusOK, info, nil
			},
		},
		{
			Pattern: "GET /v1/projects/{project}/envs/{env}/history/{path...}", Action: "read", Resource: secretRes,
			Summary: "List the versions of a secret (no values).",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, path, _ := pathValues(r)
				h, err := s.Svc.History(r.Context(), p, e, path)
				if err != nil {
					return 0, nil, err
				}
				return http.StatusOK, map[string]any{"versions": h}, nil
			},
		},
		{
			Pattern: "GET /v1/projects/{project}/envs/{env}/secrets", Action: "list", Resource: folderRes,
			Summary: "List secret names below ?prefix= (?recursive=true for all depths); filtered by policy.",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, _, _ := pathValues(r)
				prefix, _ := secret.ValidatePrefix(r.URL.Query().Get("prefix"))
				recursive := r.URL.Query().Get("recursive") == "true"
				entries, err := s.Svc.List(r.Context(), p, e, prefix, recursive)
				if err != nil {
					return 0, nil, err
				}
				c := CallerFrom(r.Context())
				out := []secret.Entry{}
				for _, en := range entries {
					name := prefix + en.Name
					if en.Folder {
						name = strings.TrimSuffix(name, "/")
					}
					if s.reaches(c, "list", SecretResource(p, e, name)) {
						out = append(out, en)
					}
				}
				return http.StatusOK, map[string]any{"secrets": out}, nil
			},
		},
		{
			Pattern: "GET /v1/projects/{project}/envs/{env}/folder", Action: "list", Resource: folderRes,
			Summary: "Read every secret below ?prefix= as a map of relative path to value (?recursive=true); only secrets the caller may read.",
			Handle: func(r *http.Request) (int, any, error) {
				p, e, _, _ := pathValues(r)
				prefix, _ := secret.ValidatePrefix(r.URL.Query().Get("prefix"))
				values, err := s.Svc.ReadFolder(r.Context(), p, e, prefix, r.URL.Query().Get("recursive") == "true")
				if err != nil {
					return 0, nil, err
				}
				c := CallerFrom(r.Context())
				out := map[string]string{}
				for rel, v := range values {
					if allowed, _ := s.Authz.Decide(c, "read", SecretResource(p, e, prefix+rel)); allowed {
						out[rel] = string(v)
						s.noteRead(p, e, prefix+rel)
					}
				}
				AddAuditDetail(r.Context(), "count", strconv.Itoa(len(out)))
				return http.StatusOK, map[string]any{"secrets": out}, nil
			},
		},
	}
}

// versionAudit records the written version in the in-transaction entry.
func (s *Secrets) versionAudit(r *http.Request, status int) secret.AuditFunc {
	if s.Audit == nil {
		return nil
	}
	return func(ctx context.Context, tx storage.Tx, version int) error {
		AddAuditDetail(ctx, "version", strconv.Itoa(version))
		return s.Audit.AuditTx(ctx, tx, AuditEventFor(ctx, status))
	}
}

// reaches reports whether c may perform action on resource or on anything
// below it (list endpoints show a folder when something in it is visible).
func (s *Secrets) reaches(c *Caller, action, resource string) bool {
	if c == nil {
		return false
	}
	if ok, _ := s.Authz.Decide(c, action, resource); ok {
		return true
	}
	if pa, ok := s.Authz.(interface {
		AllowedBelow(c *Caller, action, prefix string) bool
	}); ok {
		return pa.AllowedBelow(c, action, strings.TrimSuffix(resource, "/"))
	}
	return false
}

func joinInts(v []int) string {
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = strconv.Itoa(n)
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, ",")
}
