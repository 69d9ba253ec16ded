package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Project is a group of environments.
type Project struct {
	Name         string    `json:"name"`
	CreatedAt    time.Time `json:"created_at"`
	CreatedBy    string    `json:"created_by"`
	Environments []string  `json:"environments,omitempty"`
}

// Environment is an environment of a project.
type Environment struct {
	Project   string    `json:"project"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Metadata describes a secret.
type Metadata struct {
	Description      string            `json:"description,omitempty"`
	Owner            string            `json:"owner,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	RotationInterval string            `json:"rotation_interval,omitempty"`
	ExpiresAt        *time.Time        `json:"expires_at,omitempty"`
	MaxVersions      int               `json:"max_versions,omitempty"`
}

// SecretInfo is a secret's version state and metadata, without its value.
type SecretInfo struct {
	Path          string     `json:"path"`
	Version       int        `json:"version"`
	OldestVersion int        `json:"oldest_version"`
	Metadata      Metadata   `json:"metadata"`
	CreatedAt     time.Time  `json:"created_at"`
	CreatedBy     string     `json:"created_by"`
	UpdatedAt     time.Time  `json:"updated_at"`
	UpdatedBy     string     `json:"updated_by"`
	DeletedAt     *time.Time `json:"deleted_at,omitempty"`
}

// Secret is a value read from keyward.
type Secret struct {
	Path           string    `json:"path"`
	Value          string    `json:"value"`
	Version        int       `json:"version"`
	CurrentVersion int       `json:"current_version"`
	Metadata       Metadata  `json:"metadata"`
	CreatedAt      time.Time `json:"created_at"`
	CreatedBy      string    `json:"created_by"`
	UpdatedAt      time.Time `json:"updated_at"`
	UpdatedBy      string    `json:"updated_by"`
}

// SecretVersion describes one kept version.
type SecretVersion struct {
	Version     int        `json:"version"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by"`
	DestroyedAt *time.Time `json:"destroyed_at,omitempty"`
	Current     bool       `json:"current"`
}

// SecretEntry is an item of a listing.
type SecretEntry struct {
	Name      string    `json:"name"`
	Folder    bool      `json:"folder,omitempty"`
	Version   int       `json:"version,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// EnvDiff lists secret names per environment.
type EnvDiff struct {
	OnlyA []string `json:"only_a"`
	OnlyB []string `json:"only_b"`
	Both  []string `json:"both"`
}

// escapePath escapes each segment of a slash-separated path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func envBase(project, env string) string {
	return "/v1/projects/" + url.PathEscape(project) + "/envs/" + url.PathEscape(env)
}

// CreateProject creates a project with dev, staging and prod.
func (c *Client) CreateProject(ctx context.Context, name string) (*Project, error) {
	var p Project
	_, err := c.do(ctx, http.MethodPost, "/v1/projects", nil, map[string]string{"name": name}, &p)
	return &p, err
}

// ListProjects lists the projects the caller can see.
func (c *Client) ListProjects(ctx context.Context) ([]Project, error) {
	var r struct {
		Projects []Project `json:"projects"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/projects", nil, nil, &r)
	return r.Projects, err
}

// CreateEnv adds an environment to a project.
func (c *Client) CreateEnv(ctx context.Context, project, name string) (*Environment, error) {
	var e Environment
	_, err := c.do(ctx, http.MethodPost, "/v1/projects/"+url.PathEscape(project)+"/envs", nil, map[string]string{"name": name}, &e)
	return &e, err
}

// ListEnvs lists a project's environments.
func (c *Client) ListEnvs(ctx context.Context, project string) ([]Environment, error) {
	var r struct {
		Environments []Environment `json:"environments"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/projects/"+url.PathEscape(project)+"/envs", nil, nil, &r)
	return r.Environments, err
}

// DiffEnvs compares the secret names of two environments.
func (c *Client) DiffEnvs(ctx context.Context, project, a, b string) (*EnvDiff, error) {
	var d EnvDiff
	_, err := c.do(ctx, http.MethodGet, "/v1/projects/"+url.PathEscape(project)+"/diff", url.Values{"a": {a}, "b": {b}}, nil, &d)
	return &d, err
}

// PutSecretOptions qualify a write.
type PutSecretOptions struct {
	CAS      *int
	Metadata *Metadata
}

// PutSecret writes a new version.
func (c *Client) PutSecret(ctx context.Context, project, env, path, value string, opts PutSecretOptions) (*SecretInfo, error) {
	body := map[string]any{"value": value}
	if opts.CAS != nil {
		body["cas"] = *opts.CAS
	}
	if opts.Metadata != nil {
		body["metadata"] = opts.Metadata
	}
	var info SecretInfo
	_, err := c.do(ctx, http.MethodPut, envBase(project, env)+"/secrets/"+escapePath(path), nil, body, &info)
	return &info, err
}

// GetSecret reads a secret; version 0 reads the current one.
func (c *Client) GetSecret(ctx context.Context, project, env, path string, version int) (*Secret, error) {
	var q url.Values
	if version > 0 {
		q = url.Values{"version": {strconv.Itoa(version)}}
	}
	var s Secret
	_, err := c.do(ctx, http.MethodGet, envBase(project, env)+"/secrets/"+escapePath(path), q, nil, &s)
	return &s, err
}

// ListSecrets lists secret names below prefix.
func (c *Client) ListSecrets(ctx context.Context, project, env, prefix string, recursive bool) ([]SecretEntry, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if recursive {
		q.Set("recursive", "true")
	}
	var r struct {
		Secrets []SecretEntry `json:"secrets"`
	}
	_, err := c.do(ctx, http.MethodGet, envBase(project, env)+"/secrets", q, nil, &r)
	return r.Secrets, err
}

// ReadFolder reads every secret below prefix as a map of relative path to value.
func (c *Client) ReadFolder(ctx context.Context, project, env, prefix string, recursive bool) (map[string]string, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if recursive {
		q.Set("recursive", "true")
	}
	var r struct {
		Secrets map[string]string `json:"secrets"`
	}
	_, err := c.do(ctx, http.MethodGet, envBase(project, env)+"/folder", q, nil, &r)
	return r.Secrets, err
}

// SecretHistory lists the versions of a secret.
func (c *Client) SecretHistory(ctx context.Context, project, env, path string) ([]SecretVersion, error) {
	var r struct {
		Versions []SecretVersion `json:"versions"`
	}
	_, err := c.do(ctx, http.MethodGet, envBase(project, env)+"/history/"+escapePath(path), nil, nil, &r)
	return r.Versions, err
}

// RollbackSecret writes a new version copying version.
func (c *Client) RollbackSecret(ctx context.Context, project, env, path string, version int) (*SecretInfo, error) {
	var info SecretInfo
	_, err := c.do(ctx, http.MethodPost, envBase(project, env)+"/rollback/"+escapePath(path), nil, map[string]int{"version": version}, &info)
	return &info, err
}

// DeleteSecret soft-deletes a secret.
func (c *Client) DeleteSecret(ctx context.Context, project, env, path string) error {
	_, err := c.do(ctx, http.MethodDelete, envBase(project, env)+"/secrets/"+escapePath(path), nil, nil, nil)
	return err
}

// UndeleteSecret restores a soft-deleted secret.
func (c *Client) UndeleteSecret(ctx context.Context, project, env, path string) error {
	_, err := c.do(ctx, http.MethodPost, envBase(project, env)+"/undelete/"+escapePath(path), nil, nil, nil)
	return err
}

// DestroySecret wipes versions (all when none are given).
func (c *Client) DestroySecret(ctx context.Context, project, env, path string, versions ...int) error {
	if versions == nil {
		versions = []int{}
	}
	_, err := c.do(ctx, http.MethodPost, envBase(project, env)+"/destroy/"+escapePath(path), nil, map[string][]int{"versions": versions}, nil)
	return err
}
