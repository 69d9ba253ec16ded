// Package secret is keyward's secret store: projects, environments within a
// project, and versioned secrets at slash-separated paths within an
// environment.
//
// Invariants:
//   - Every value is sealed by the barrier with its environment's key before
//     it reaches storage; the additional data names the environment, path and
//     version (secret/<env-id>/<path>/<version>), so a ciphertext copied to
//     another row fails to open.
//   - Every write makes a new immutable version; concurrent writers never lose
//     an update (the secret's row is locked for the write), and check-and-set
//     writes fail with the current version when it moved.
//   - Names are validated before any storage access; "." and ".." never pass.
//
// Imported by internal/server (and its HTTP handlers) only.
package secret

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/events"
	"github.com/keyward/keyward/internal/storage"
)

// Errors. Messages name what was wrong; none carries a value.
var (
	ErrInvalid         = errors.New("invalid argument")
	ErrTooLarge        = errors.New("secret value is too large")
	ErrProjectNotFound = errors.New("project not found")
	ErrEnvNotFound     = errors.New("environment not found")
	ErrNotFound        = errors.New("secret not found")
	ErrDeleted         = errors.New("secret is deleted (undelete it to read it)")
	ErrVersionNotFound = errors.New("secret version not found")
	ErrDestroyed       = errors.New("secret version was destroyed")
	ErrExists          = errors.New("already exists")
)

// CASError reports a check-and-set write whose expected version was not the
// current one.
type CASError struct{ Current int }

func (e *CASError) Error() string {
	return fmt.Sprintf("check-and-set failed: the current version is %d", e.Current)
}

// DefaultEnvs are created with every project.
var DefaultEnvs = []string{"dev", "staging", "prod"}

// Sealer encrypts values under an environment's key (the barrier).
type Sealer interface {
	SealEnv(envID string, aad, plaintext []byte) ([]byte, error)
	OpenEnv(envID string, aad, ciphertext []byte) ([]byte, error)
}

// EventChange is the event every change of what a secret's current value
// reads as (a write, rollback, delete, undelete or destroy) appends in its
// transaction, keyed "project/env/path", so nodes that cache resolved values
// (the gateway) drop them.
const EventChange = "secret.change"

// Options configure a Service.
type Options struct {
	Now func() time.Time
	// MaxVersions is how many versions a secret keeps unless its metadata
	// says otherwise (default 20).
	MaxVersions int
	// Changed, when set, is called after a change of a secret's current
	// value has committed (the same changes that append EventChange), so
	// this node's caches drop it at once; other nodes learn it from the
	// event.
	Changed func(project, env, path string)
}

// Service is the secret store.
type Service struct {
	store   storage.Store
	sealer  Sealer
	now     func() time.Time
	maxVer  int
	changed func(project, env, path string)
}

// New returns a Service.
func New(store storage.Store, sealer Sealer, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxVersions <= 0 {
		opts.MaxVersions = DefaultVersions
	}
	return &Service{store: store, sealer: sealer, now: opts.Now, maxVer: opts.MaxVersions, changed: opts.Changed}
}

// appendChange records EventChange for a secret inside tx.
func appendChange(ctx context.Context, tx storage.Tx, project, env, path string) error {
	return events.Append(ctx, tx, EventChange, project+"/"+env+"/"+path)
}

// notify tells Options.Changed about a committed change; err is the
// change's result.
func (s *Service) notify(err error, project, env, path string) {
	if err == nil && s.changed != nil {
		s.changed(project, env, path)
	}
}

// AuditFunc appends the audit entry of a change inside its transaction;
// version is the version written (0 when the change writes none).
type AuditFunc func(ctx context.Context, tx storage.Tx, version int) error

// Project is a named group of environments.
type Project struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	Envs      []string  `json:"environments,omitempty"`
}

// Env is an environment of a project.
type Env struct {
	Project   string    `json:"project"`
	Name      string    `json:"name"`
	ID        string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// Metadata describes a secret; it is stored unencrypted and never holds a value.
type Metadata struct {
	Description      string            `json:"description,omitempty"`
	Owner            string            `json:"owner,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	RotationInterval string            `json:"rotation_interval,omitempty"` // Go duration, e.g. "720h"
	ExpiresAt        *time.Time        `json:"expires_at,omitempty"`
	MaxVersions      int               `json:"max_versions,omitempty"`
}

func (m *Metadata) validate() error {
	if len(m.Description) > 1024 || len(m.Owner) > 256 || len(m.Tags) > 64 {
		return fmt.Errorf("%w: metadata is too large (description 1024, owner 256 bytes, 64 tags)", ErrInvalid)
	}
	for k, v := range m.Tags {
		if k == "" || len(k) > 128 || len(v) > 256 {
			return fmt.Errorf("%w: tag %q: keys 1-128 bytes, values up to 256", ErrInvalid, printable(k))
		}
	}
	if m.RotationInterval != "" {
		d, err := time.ParseDuration(m.RotationInterval)
		if err != nil || d <= 0 {
			return fmt.Errorf("%w: rotation_interval %q: want a positive duration such as 720h", ErrInvalid, printable(m.RotationInterval))
		}
	}
	if m.MaxVersions < 0 || m.MaxVersions > 1000 {
		return fmt.Errorf("%w: max_versions must be between 1 and 1000", ErrInvalid)
	}
	return nil
}

// Info is a secret's metadata and version state.
type Info struct {
	Path          string     `json:"path"`
	Version       int        `json:"version"` // current version
	OldestVersion int        `json:"oldest_version"`
	Metadata      Metadata   `json:"metadata"`
	CreatedAt     time.Time  `json:"created_at"`
	CreatedBy     string     `json:"created_by"`
	UpdatedAt     time.Time  `json:"updated_at"`
	UpdatedBy     string     `json:"updated_by"`
	DeletedAt     *time.Time `json:"deleted_at,omitempty"`
}

// Secret is a value with its version and metadata.
type Secret struct {
	Info
	Value       []byte `json:"-"`
	ReadVersion int    `json:"-"`
}

// Version describes one version of a secret.
type Version struct {
	Version     int        `json:"version"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by"`
	DestroyedAt *time.Time `json:"destroyed_at,omitempty"`
	Current     bool       `json:"current"`
}

// Entry is one item of a listing: a secret or, in a non-recursive listing, a folder.
type Entry struct {
	Name      string    `json:"name"`
	Folder    bool      `json:"folder,omitempty"`
	Version   int       `json:"version,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
}

func newID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func optTime(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromNanos(n.Int64)
	return &t
}

func aad(envID, path string, version int) []byte {
	return []byte("secret/" + envID + "/" + path + "/" + strconv.Itoa(version))
}

// CreateProject creates a project and its default environments.
func (s *Service) CreateProject(ctx context.Context, name, by string, audit AuditFunc) (*Project, error) {
	if err := ValidateName("project", name); err != nil {
		return nil, err
	}
	now := s.now()
	p := &Project{Name: name, CreatedAt: now.UTC(), CreatedBy: by, Envs: append([]string(nil), DefaultEnvs...)}
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		id := newID()
		if _, err := tx.Exec(ctx, `INSERT INTO projects (id, name, created_at, created_by) VALUES ($1, $2, $3, $4)`, id, name, nanos(now), by); err != nil {
			if errors.Is(err, storage.ErrConflict) {
				return fmt.Errorf("project %q: %w", name, ErrExists)
			}
			return err
		}
		for _, e := range DefaultEnvs {
			if _, err := tx.Exec(ctx, `INSERT INTO environments (id, project_id, name, created_at) VALUES ($1, $2, $3, $4)`, newID(), id, e, nanos(now)); err != nil {
				return err
			}
		}
		return runAudit(ctx, tx, audit)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func runAudit(ctx context.Context, tx storage.Tx, audit AuditFunc) error {
	return runAuditVersion(ctx, tx, audit, 0)
}

func runAuditVersion(ctx context.Context, tx storage.Tx, audit AuditFunc, version int) error {
	if audit == nil {
		return nil
	}
	return audit(ctx, tx, version)
}

// ListProjects returns every project, by name.
func (s *Service) ListProjects(ctx context.Context) ([]Project, error) {
	var out []Project
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT p.name, p.created_at, p.created_by, e.name FROM projects p LEFT JOIN environments e ON e.project_id = p.id ORDER BY p.name, e.name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name, by string
			var at int64
			var env sql.NullString
			if err := rows.Scan(&name, &at, &by, &env); err != nil {
				return err
			}
			if len(out) == 0 || out[len(out)-1].Name != name {
				out = append(out, Project{Name: name, CreatedAt: fromNanos(at), CreatedBy: by})
			}
			if env.Valid {
				out[len(out)-1].Envs = append(out[len(out)-1].Envs, env.String)
			}
		}
		return rows.Err()
	})
	return out, err
}

// CreateEnv adds an environment to a project.
func (s *Service) CreateEnv(ctx context.Context, project, name string, audit AuditFunc) (*Env, error) {
	if err := ValidateName("project", project); err != nil {
		return nil, err
	}
	if err := ValidateName("environment", name); err != nil {
		return nil, err
	}
	now := s.now()
	env := &Env{Project: project, Name: name, CreatedAt: now.UTC(), ID: newID()}
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		var pid string
		if err := tx.QueryRow(ctx, `SELECT id FROM projects WHERE name = $1`, project).Scan(&pid); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("project %q: %w", project, ErrProjectNotFound)
			}
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO environments (id, project_id, name, created_at) VALUES ($1, $2, $3, $4)`, env.ID, pid, name, nanos(now)); err != nil {
			if errors.Is(err, storage.ErrConflict) {
				return fmt.Errorf("environment %q in project %q: %w", name, project, ErrExists)
			}
			return err
		}
		return runAudit(ctx, tx, audit)
	})
	if err != nil {
		return nil, err
	}
	return env, nil
}

// ListEnvs returns the environments of a project.
func (s *Service) ListEnvs(ctx context.Context, project string) ([]Env, error) {
	if err := ValidateName("project", project); err != nil {
		return nil, err
	}
	var out []Env
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		var pid string
		if err := tx.QueryRow(ctx, `SELECT id FROM projects WHERE name = $1`, project).Scan(&pid); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("project %q: %w", project, ErrProjectNotFound)
			}
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, name, created_at FROM environments WHERE project_id = $1 ORDER BY name`, pid)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e := Env{Project: project}
			var at int64
			if err := rows.Scan(&e.ID, &e.Name, &at); err != nil {
				return err
			}
			e.CreatedAt = fromNanos(at)
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}

// envID resolves project/env inside a transaction.
func envID(ctx context.Context, tx storage.Tx, project, env string) (string, error) {
	if err := ValidateName("project", project); err != nil {
		return "", err
	}
	if err := ValidateName("environment", env); err != nil {
		return "", err
	}
	var id string
	err := tx.QueryRow(ctx, `SELECT e.id FROM environments e JOIN projects p ON p.id = e.project_id WHERE p.name = $1 AND e.name = $2`, project, env).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		var pid string
		if tx.QueryRow(ctx, `SELECT id FROM projects WHERE name = $1`, project).Scan(&pid) != nil {
			return "", fmt.Errorf("project %q: %w", project, ErrProjectNotFound)
		}
		return "", fmt.Errorf("environment %q in project %q: %w", env, project, ErrEnvNotFound)
	}
	return id, err
}

// PutOptions qualify a write.
type PutOptions struct {
	// CAS, when not nil, is the version the caller expects to be current
	// (0: the secret must not exist yet).
	CAS *int
	// Metadata, when not nil, replaces the secret's metadata.
	Metadata *Metadata
	By       string
	Audit    AuditFunc
}

// Put writes a new version of the secret at path and returns its info.
func (s *Service) Put(ctx context.Context, project, env, path string, value []byte, opts PutOptions) (*Info, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	if len(value) > MaxValueBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(value), MaxValueBytes)
	}
	if opts.Metadata != nil {
		if err := opts.Metadata.validate(); err != nil {
			return nil, err
		}
	}
	var info *Info
	var err error
	// A first write racing another first write of the same path loses the
	// INSERT; it is retried and then sees the row (and the CAS rules).
	for attempt := 0; attempt < 3; attempt++ {
		err = s.store.Write(ctx, func(tx storage.Tx) error {
			id, err := envID(ctx, tx, project, env)
			if err != nil {
				return err
			}
			info, err = s.putTx(ctx, tx, id, project, env, path, func(int) ([]byte, error) { return value, nil }, opts)
			return err
		})
		if !errors.Is(err, storage.ErrConflict) {
			break
		}
	}
	s.notify(err, project, env, path)
	return info, err
}

// putTx writes a new version whose value comes from valueFor(current).
func (s *Service) putTx(ctx context.Context, tx storage.Tx, id, project, env, path string, valueFor func(current int) ([]byte, error), opts PutOptions) (*Info, error) {
	now := s.now()
	cur, exists, err := loadInfo(ctx, tx, id, path, true)
	if err != nil {
		return nil, err
	}
	current := 0
	if exists {
		current = cur.Version
	}
	if opts.CAS != nil && *opts.CAS != current {
		return nil, &CASError{Current: current}
	}
	value, err := valueFor(current)
	if err != nil {
		return nil, err
	}
	v := current + 1
	ct, err := s.sealer.SealEnv(id, aad(id, path, v), value)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO secret_versions (env_id, path, version, ciphertext, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)`,
		id, path, v, ct, nanos(now), opts.By); err != nil {
		return nil, err
	}
	info := cur
	if !exists {
		info = &Info{Path: path, CreatedAt: now.UTC(), CreatedBy: opts.By, OldestVersion: 1}
	}
	if opts.Metadata != nil {
		info.Metadata = *opts.Metadata
	}
	meta, _ := json.Marshal(info.Metadata)
	info.Version, info.UpdatedAt, info.UpdatedBy, info.DeletedAt = v, now.UTC(), opts.By, nil
	keep := s.maxVer
	if info.Metadata.MaxVersions > 0 {
		keep = info.Metadata.MaxVersions
	}
	if v-keep+1 > info.OldestVersion {
		info.OldestVersion = v - keep + 1
	}
	if exists {
		_, err = tx.Exec(ctx, `UPDATE secrets SET current_version = $3, oldest_version = $4, meta = $5, updated_at = $6, updated_by = $7, deleted_at = NULL WHERE env_id = $1 AND path = $2`,
			id, path, v, info.OldestVersion, string(meta), nanos(now), opts.By)
	} else {
		_, err = tx.Exec(ctx, `INSERT INTO secrets (env_id, path, current_version, oldest_version, meta, created_at, created_by, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $7)`,
			id, path, v, info.OldestVersion, string(meta), nanos(now), opts.By)
	}
	if err != nil {
		return nil, err
	}
	// Versions past the retention are removed, ciphertext and all.
	if _, err := tx.Exec(ctx, `DELETE FROM secret_versions WHERE env_id = $1 AND path = $2 AND version < $3`, id, path, info.OldestVersion); err != nil {
		return nil, err
	}
	if err := appendChange(ctx, tx, project, env, path); err != nil {
		return nil, err
	}
	if err := runAuditVersion(ctx, tx, opts.Audit, v); err != nil {
		return nil, err
	}
	return info, nil
}

func loadInfo(ctx context.Context, tx storage.Tx, id, path string, lock bool) (*Info, bool, error) {
	q := `SELECT current_version, oldest_version, meta, created_at, created_by, updated_at, updated_by, deleted_at FROM secrets WHERE env_id = $1 AND path = $2`
	if lock {
		q += tx.LockForUpdate()
	}
	info := &Info{Path: path}
	var meta string
	var created, updated int64
	var deleted sql.NullInt64
	err := tx.QueryRow(ctx, q, id, path).Scan(&info.Version, &info.OldestVersion, &meta, &created, &info.CreatedBy, &updated, &info.UpdatedBy, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if err := json.Unmarshal([]byte(meta), &info.Metadata); err != nil {
		return nil, false, fmt.Errorf("secret %s: corrupt metadata: %w", path, err)
	}
	info.CreatedAt, info.UpdatedAt, info.DeletedAt = fromNanos(created), fromNanos(updated), optTime(deleted)
	return info, true, nil
}

// Get reads a secret: the current version when version is 0.
func (s *Service) Get(ctx context.Context, project, env, path string, version int) (*Secret, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	if version < 0 {
		return nil, fmt.Errorf("%w: version must be positive", ErrInvalid)
	}
	var out *Secret
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		id, err := envID(ctx, tx, project, env)
		if err != nil {
			return err
		}
		info, ok, err := loadInfo(ctx, tx, id, path, false)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s: %w", path, ErrNotFound)
		}
		if version == 0 {
			if info.DeletedAt != nil {
				return fmt.Errorf("%s: %w", path, ErrDeleted)
			}
			version = info.Version
		}
		value, err := s.openVersion(ctx, tx, id, path, version)
		if err != nil {
			return err
		}
		out = &Secret{Info: *info, Value: value, ReadVersion: version}
		return nil
	})
	return out, err
}

func (s *Service) openVersion(ctx context.Context, tx storage.Tx, id, path string, version int) ([]byte, error) {
	var ct []byte
	var destroyed sql.NullInt64
	err := tx.QueryRow(ctx, `SELECT ciphertext, destroyed_at FROM secret_versions WHERE env_id = $1 AND path = $2 AND version = $3`, id, path, version).Scan(&ct, &destroyed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s version %d: %w", path, version, ErrVersionNotFound)
	}
	if err != nil {
		return nil, err
	}
	if destroyed.Valid || ct == nil {
		return nil, fmt.Errorf("%s version %d: %w", path, version, ErrDestroyed)
	}
	return s.sealer.OpenEnv(id, aad(id, path, version), ct)
}

// History lists the versions a secret keeps, newest first.
func (s *Service) History(ctx context.Context, project, env, path string) ([]Version, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	var out []Version
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		id, err := envID(ctx, tx, project, env)
		if err != nil {
			return err
		}
		info, ok, err := loadInfo(ctx, tx, id, path, false)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s: %w", path, ErrNotFound)
		}
		rows, err := tx.Query(ctx, `SELECT version, created_at, created_by, destroyed_at FROM secret_versions WHERE env_id = $1 AND path = $2 ORDER BY version DESC`, id, path)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v Version
			var at int64
			var destroyed sql.NullInt64
			if err := rows.Scan(&v.Version, &at, &v.CreatedBy, &destroyed); err != nil {
				return err
			}
			v.CreatedAt, v.DestroyedAt, v.Current = fromNanos(at), optTime(destroyed), v.Version == info.Version
			out = append(out, v)
		}
		return rows.Err()
	})
	return out, err
}

// Rollback writes a new version whose value is a copy of version to.
func (s *Service) Rollback(ctx context.Context, project, env, path string, to int, opts PutOptions) (*Info, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	if to <= 0 {
		return nil, fmt.Errorf("%w: version must be positive", ErrInvalid)
	}
	var info *Info
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		id, err := envID(ctx, tx, project, env)
		if err != nil {
			return err
		}
		if _, ok, err := loadInfo(ctx, tx, id, path, true); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("%s: %w", path, ErrNotFound)
		}
		info, err = s.putTx(ctx, tx, id, project, env, path, func(int) ([]byte, error) { return s.openVersion(ctx, tx, id, path, to) }, opts)
		return err
	})
	s.notify(err, project, env, path)
	return info, err
}

// Delete soft-deletes a secret: reads fail until Undelete; versions stay.
func (s *Service) Delete(ctx context.Context, project, env, path, by string, audit AuditFunc) error {
	return s.setDeleted(ctx, project, env, path, true, audit)
}

// Undelete restores a soft-deleted secret.
func (s *Service) Undelete(ctx context.Context, project, env, path, by string, audit AuditFunc) error {
	return s.setDeleted(ctx, project, env, path, false, audit)
}

func (s *Service) setDeleted(ctx context.Context, project, env, path string, deleted bool, audit AuditFunc) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		id, err := envID(ctx, tx, project, env)
		if err != nil {
			return err
		}
		var res sql.Result
		if deleted {
			res, err = tx.Exec(ctx, `UPDATE secrets SET deleted_at = $3 WHERE env_id = $1 AND path = $2 AND deleted_at IS NULL`, id, path, nanos(s.now()))
		} else {
			res, err = tx.Exec(ctx, `UPDATE secrets SET deleted_at = NULL WHERE env_id = $1 AND path = $2 AND deleted_at IS NOT NULL`, id, path)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if _, ok, err := loadInfo(ctx, tx, id, path, false); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("%s: %w", path, ErrNotFound)
			}
			// Already in the wanted state: idempotent.
		}
		if err := appendChange(ctx, tx, project, env, path); err != nil {
			return err
		}
		return runAudit(ctx, tx, audit)
	})
	s.notify(err, project, env, path)
	return err
}

// Destroy wipes the ciphertext of the given versions (all versions when
// none are given, which also soft-deletes the secret). Destroyed versions
// cannot be read or rolled back to.
func (s *Service) Destroy(ctx context.Context, project, env, path string, versions []int, audit AuditFunc) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	for _, v := range versions {
		if v <= 0 {
			return fmt.Errorf("%w: version must be positive", ErrInvalid)
		}
	}
	err := s.store.Write(ctx, func(tx storage.Tx) error {
		id, err := envID(ctx, tx, project, env)
		if err != nil {
			return err
		}
		if _, ok, err := loadInfo(ctx, tx, id, path, true); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("%s: %w", path, ErrNotFound)
		}
		now := nanos(s.now())
		if len(versions) == 0 {
			if _, err := tx.Exec(ctx, `UPDATE secret_versions SET ciphertext = NULL, destroyed_at = $3 WHERE env_id = $1 AND path = $2 AND destroyed_at IS NULL`, id, path, now); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE secrets SET deleted_at = $3 WHERE env_id = $1 AND path = $2 AND deleted_at IS NULL`, id, path, now); err != nil {
				return err
			}
		}
		for _, v := range versions {
			res, err := tx.Exec(ctx, `UPDATE secret_versions SET ciphertext = NULL, destroyed_at = $4 WHERE env_id = $1 AND path = $2 AND version = $3`, id, path, v, now)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("%s version %d: %w", path, v, ErrVersionNotFound)
			}
		}
		if err := appendChange(ctx, tx, project, env, path); err != nil {
			return err
		}
		return runAudit(ctx, tx, audit)
	})
	s.notify(err, project, env, path)
	return err
}

// prefixRange returns [lo, hi) covering every path below prefix ("" = all).
// '0' follows '/' in byte order; path columns use bytewise ("C") collation.
func prefixRange(prefix string) (string, string) {
	if prefix == "" {
		return "", "\x7f"
	}
	return prefix, prefix[:len(prefix)-1] + "0"
}

// List returns the secrets below prefix (a folder path, "" for the root).
// Without recursive, deeper secrets are folded into folder entries.
func (s *Service) List(ctx context.Context, project, env, prefix string, recursive bool) ([]Entry, error) {
	p, err := ValidatePrefix(prefix)
	if err != nil {
		return nil, err
	}
	lo, hi := prefixRange(p)
	var out []Entry
	err = s.store.Read(ctx, func(tx storage.Tx) error {
		id, err := envID(ctx, tx, project, env)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT path, current_version, updated_at, created_at, created_by FROM secrets WHERE env_id = $1 AND path >= $2 AND path < $3 AND deleted_at IS NULL ORDER BY path`, id, lo, hi)
		if err != nil {
			return err
		}
		defer rows.Close()
		seen := map[string]bool{}
		for rows.Next() {
			var path, by string
			var v int
			var at, created int64
			if err := rows.Scan(&path, &v, &at, &created, &by); err != nil {
				return err
			}
			rel := strings.TrimPrefix(path, p)
			if !recursive {
				if i := strings.IndexByte(rel, '/'); i >= 0 {
					folder := rel[:i+1]
					if !seen[folder] {
						seen[folder] = true
						out = append(out, Entry{Name: folder, Folder: true})
					}
					continue
				}
			}
			out = append(out, Entry{Name: rel, Version: v, UpdatedAt: fromNanos(at), CreatedAt: fromNanos(created), CreatedBy: by})
		}
		return rows.Err()
	})
	return out, err
}

// ReadFolder returns the current values of the secrets below prefix, keyed
// by their path relative to prefix (recursive, or direct children only).
func (s *Service) ReadFolder(ctx context.Context, project, env, prefix string, recursive bool) (map[string][]byte, error) {
	p, err := ValidatePrefix(prefix)
	if err != nil {
		return nil, err
	}
	lo, hi := prefixRange(p)
	out := map[string][]byte{}
	err = s.store.Read(ctx, func(tx storage.Tx) error {
		id, err := envID(ctx, tx, project, env)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT s.path, s.current_version, v.ciphertext FROM secrets s JOIN secret_versions v ON v.env_id = s.env_id AND v.path = s.path AND v.version = s.current_version
			WHERE s.env_id = $1 AND s.path >= $2 AND s.path < $3 AND s.deleted_at IS NULL AND v.ciphertext IS NOT NULL ORDER BY s.path`, id, lo, hi)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var path string
			var v int
			var ct []byte
			if err := rows.Scan(&path, &v, &ct); err != nil {
				return err
			}
			rel := strings.TrimPrefix(path, p)
			if !recursive && strings.Contains(rel, "/") {
				continue
			}
			value, err := s.sealer.OpenEnv(id, aad(id, path, v), ct)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			out[rel] = value
		}
		return rows.Err()
	})
	return out, err
}

// Diff compares the secret names (never values) of two environments.
type Diff struct {
	OnlyA []string `json:"only_a"`
	OnlyB []string `json:"only_b"`
	Both  []string `json:"both"`
}

// DiffEnvs lists which secret paths exist in envA, envB or both.
func (s *Service) DiffEnvs(ctx context.Context, project, envA, envB string) (*Diff, error) {
	a, err := s.List(ctx, project, envA, "", true)
	if err != nil {
		return nil, err
	}
	b, err := s.List(ctx, project, envB, "", true)
	if err != nil {
		return nil, err
	}
	inB := map[string]bool{}
	for _, e := range b {
		inB[e.Name] = true
	}
	d := &Diff{OnlyA: []string{}, OnlyB: []string{}, Both: []string{}}
	for _, e := range a {
		if inB[e.Name] {
			d.Both = append(d.Both, e.Name)
			delete(inB, e.Name)
		} else {
			d.OnlyA = append(d.OnlyA, e.Name)
		}
	}
	for n := range inB {
		d.OnlyB = append(d.OnlyB, n)
	}
	sort.Strings(d.OnlyB)
	return d, nil
}
