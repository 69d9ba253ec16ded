package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/httpapi"
	"github.com/keyward/keyward/internal/seal"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/version"
)

// Rows of the sys table that hold the node's seal state.
const (
	sysKeyring    = "barrier/keyring"     // the keyring, sealed under the root key
	sysSealConfig = "barrier/seal-config" // shares and threshold, JSON
	sysRootToken  = "auth/root-token"     // HMAC of the root token
	// sysWrappedRoot is the root key wrapped by an HSM's key (seal
	// pkcs11), which lets the node unseal itself at start.
	sysWrappedRoot = "barrier/root-wrapped"
)

// Errors of the operator surface.
var (
	ErrAlreadyInitialized = errors.New("keyward is already initialized")
	ErrNotInitialized     = errors.New("keyward is not initialized; run 'keyward operator init'")
	ErrAlreadyUnsealed    = errors.New("keyward is already unsealed")
	ErrNoWrappedRoot      = errors.New("the HSM holds no wrapped root key for this node yet; unseal it once with its shares ('keyward operator unseal') and it unseals itself from then on")
)

type sealConfig struct {
	Shares        int       `json:"shares"`
	Threshold     int       `json:"threshold"`
	InitializedAt time.Time `json:"initialized_at"`
}

// sys implements httpapi.Sys over the barrier and the store.
type sys struct {
	store   storage.Store
	barrier *barrier.Barrier

	mu          sync.Mutex // serialises init, unseal and rotate
	initialized bool
	cfg         sealConfig
	keyring     []byte // sealed keyring blob as stored
	// onUnseal runs after the barrier opens (services load their caches).
	onUnseal func(ctx context.Context) error
	// onSeal runs after the barrier closes (services drop their caches).
	onSeal func()
	// healthErr reports a failing dependency (audit log) while unsealed.
	healthErr func() error
	// wrapper, when set (seal pkcs11), wraps the root key at init and at
	// the first unseal by shares, and unwraps it at start.
	wrapper seal.Wrapper
	wrapped []byte // the stored wrapped root key; nil when none
	log     *slog.Logger
}

// load reads the seal state from storage.
func (s *sys) load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadLocked(ctx)
}

func (s *sys) loadLocked(ctx context.Context) error {
	var keyring, cfg, wrapped []byte
	err := s.store.Read(ctx, func(tx storage.Tx) error {
		var err error
		if keyring, err = storage.GetSys(ctx, tx, sysKeyring); err != nil {
			return err
		}
		if cfg, err = storage.GetSys(ctx, tx, sysSealConfig); err != nil {
			return err
		}
		wrapped, err = storage.GetSys(ctx, tx, sysWrappedRoot)
		if errors.Is(err, storage.ErrNotFound) {
			wrapped, err = nil, nil
		}
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		s.initialized = false
		return nil
	}
	if err != nil {
		return err
	}
	var sc sealConfig
	if err := json.Unmarshal(cfg, &sc); err != nil {
		return fmt.Errorf("seal configuration is corrupt: %w", err)
	}
	s.initialized, s.cfg, s.keyring, s.wrapped = true, sc, keyring, wrapped
	return nil
}

// initResult is what initialisation hands back before it is shown once.
type initResult struct {
	shares    []string
	rootToken string
	threshold int
}

// initialize generates and stores the seal state in one transaction. Before
// the commit, beforeCommit may persist what must exist if the commit happens
// (dev mode writes its key file there): a crash between the two leaves an
// uninitialised store, never a half-initialised one.
func (s *sys) initialize(ctx context.Context, shares, threshold int, beforeCommit func(*initResult) error) (*initResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(ctx); err != nil {
		return nil, err
	}
	if s.initialized {
		return nil, ErrAlreadyInitialized
	}
	res, err := barrier.Init(shares, threshold)
	if err != nil {
		return nil, err
	}
	// Open a throwaway barrier to compute the root token's HMAC.
	tmp := barrier.New()
	if err := tmp.UnsealKey(res.RootKey, res.Keyring); err != nil {
		return nil, err
	}
	rootToken := credential.New(credential.AccessToken)
	rootHash := tmp.MAC("token", []byte(rootToken))
	tmp.Seal()
	var wrapped []byte
	if s.wrapper != nil {
		if wrapped, err = res.RootKey.WrapRoot(s.wrapper.Wrap); err != nil {
			return nil, fmt.Errorf("wrapping the root key with the %s seal: %w", s.wrapper.Type(), err)
		}
	}
	sc := sealConfig{Shares: shares, Threshold: threshold, InitializedAt: time.Now().UTC()}
	cfg, _ := json.Marshal(sc)
	out := &initResult{shares: res.Shares, rootToken: rootToken, threshold: threshold}
	if beforeCommit != nil {
		if err := beforeCommit(out); err != nil {
			return nil, err
		}
	}
	err = s.store.Write(ctx, func(tx storage.Tx) error {
		for _, kv := range []struct {
			k string
			v []byte
		}{{sysKeyring, res.Keyring}, {sysSealConfig, cfg}, {sysRootToken, rootHash}, {sysWrappedRoot, wrapped}} {
			if kv.v == nil {
				continue
			}
			if err := storage.InsertSys(ctx, tx, kv.k, kv.v); err != nil {
				if errors.Is(err, storage.ErrConflict) {
					return ErrAlreadyInitialized
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.initialized, s.cfg, s.keyring, s.wrapped = true, sc, res.Keyring, wrapped
	if wrapped != nil {
		// A node with an HSM seal is unsealed from initialisation on, as
		// it will be after every start. The initialisation has committed:
		// its shares and root token are answered whatever happens here (a
		// failure leaves the node sealed, as the answer says).
		err := s.barrier.UnsealKey(res.RootKey, res.Keyring)
		if err == nil && s.onUnseal != nil {
			if err = s.onUnseal(ctx); err != nil {
				s.barrier.Seal()
			}
		}
		if err != nil {
			s.log.Error("initialized, but unsealing with the HSM's key failed; restart the node or unseal it with its shares", "err", err)
		}
	}
	return out, nil
}

// Init implements httpapi.Sys.
func (s *sys) Init(ctx context.Context, shares, threshold int) (*httpapi.InitResponse, error) {
	res, err := s.initialize(ctx, shares, threshold, nil)
	if err != nil {
		return nil, err
	}
	out := &httpapi.InitResponse{Shares: res.shares, RootToken: res.rootToken, Threshold: res.threshold, Seal: config.SealShamir, Sealed: s.barrier.Sealed()}
	if s.wrapper != nil {
		out.Seal = s.wrapper.Type()
	}
	return out, nil
}

// Unseal implements httpapi.Sys. An empty share resets the progress.
func (s *sys) Unseal(ctx context.Context, share string) (*httpapi.UnsealResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.initialized {
		if err := s.loadLocked(ctx); err != nil {
			return nil, err
		}
		if !s.initialized {
			return nil, ErrNotInitialized
		}
	}
	if !s.barrier.Sealed() {
		return nil, ErrAlreadyUnsealed
	}
	if share == "" {
		s.barrier.ResetUnseal()
		return &httpapi.UnsealResponse{Sealed: true, Progress: 0, Threshold: s.cfg.Threshold}, nil
	}
	p, err := s.barrier.SubmitShare(share, s.cfg.Threshold, s.keyring)
	if err != nil {
		return nil, err
	}
	if !p.Sealed && s.onUnseal != nil {
		if err := s.onUnseal(ctx); err != nil {
			s.barrier.Seal()
			return nil, fmt.Errorf("unsealed, but starting services failed: %w", err)
		}
	}
	if !p.Sealed {
		s.storeWrappedLocked(ctx)
	}
	return &httpapi.UnsealResponse{Sealed: p.Sealed, Progress: p.Progress, Threshold: p.Threshold}, nil
}

// storeWrappedLocked gives an HSM-sealed node that was unsealed by shares
// what it needs to unseal itself next time: the root key wrapped by the
// HSM, unless the stored one already opens. This enables auto unseal on a
// node initialised with shares only, and repairs a wrapped key that no
// longer opens (another HSM key, a changed row). A failure is logged: the
// node is unsealed either way.
func (s *sys) storeWrappedLocked(ctx context.Context) {
	if s.wrapper == nil {
		return
	}
	if s.wrapped != nil {
		if root, err := s.wrapper.Unwrap(s.wrapped); err == nil {
			clear(root)
			return
		}
	}
	blob, err := s.barrier.WrapRoot(s.wrapper.Wrap)
	if err == nil {
		err = s.store.Write(ctx, func(tx storage.Tx) error {
			return storage.PutSys(ctx, tx, sysWrappedRoot, blob)
		})
	}
	if err != nil {
		s.log.Error("storing the root key wrapped by the HSM failed; the node will need its unseal shares at the next start", "seal", s.wrapper.Type(), "err", err)
		return
	}
	s.wrapped = blob
	s.log.Info("root key wrapped by the HSM and stored: the node unseals itself from its next start", "seal", s.wrapper.Type())
}

// autoUnseal opens the barrier with the root key the HSM unwraps (seal
// pkcs11). Without a wrapped key yet (a node initialised with shares only)
// it reports ErrNoWrappedRoot; the first unseal by shares stores one.
func (s *sys) autoUnseal(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wrapper == nil || !s.initialized || !s.barrier.Sealed() {
		return nil
	}
	if s.wrapped == nil {
		return ErrNoWrappedRoot
	}
	root, err := s.wrapper.Unwrap(s.wrapped)
	if err != nil {
		return err
	}
	if err := s.barrier.UnsealRoot(root, s.keyring); err != nil {
		return fmt.Errorf("the HSM's root key does not open the keyring: %w", err)
	}
	if s.onUnseal != nil {
		if err := s.onUnseal(ctx); err != nil {
			s.barrier.Seal()
			return fmt.Errorf("unsealed by the HSM, but starting services failed: %w", err)
		}
	}
	return nil
}

// unsealWithShare is the dev-mode path: one share opens the barrier.
func (s *sys) unsealWithShare(ctx context.Context, share string) error {
	res, err := s.Unseal(ctx, share)
	if err != nil {
		return err
	}
	if res.Sealed {
		return errors.New("dev key file did not unseal the barrier")
	}
	return nil
}

// Seal implements httpapi.Sys.
func (s *sys) Seal(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.barrier.Seal()
	if s.onSeal != nil {
		s.onSeal()
	}
	return nil
}

// Rotate implements httpapi.Sys.
func (s *sys) Rotate(ctx context.Context) (*httpapi.RotateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.barrier.Rotate(func(keyring []byte) error {
		err := s.store.Write(ctx, func(tx storage.Tx) error {
			return storage.PutSys(ctx, tx, sysKeyring, keyring)
		})
		if err == nil {
			s.keyring = keyring
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &httpapi.RotateResponse{KeyVersion: v}, nil
}

// Health implements httpapi.Sys.
func (s *sys) Health(ctx context.Context) *httpapi.HealthResponse {
	s.mu.Lock()
	initialized := s.initialized
	s.mu.Unlock()
	if !initialized {
		// Another node may have initialised the shared store.
		if err := s.load(ctx); err == nil {
			s.mu.Lock()
			initialized = s.initialized
			s.mu.Unlock()
		}
	}
	h := &httpapi.HealthResponse{
		Initialized: initialized,
		Sealed:      s.barrier.Sealed(),
		Version:     version.String(),
		Storage:     s.store.Backend(),
		Seal:        config.SealShamir,
	}
	if s.wrapper != nil {
		h.Seal = s.wrapper.Type()
	}
	if initialized && !h.Sealed {
		if s.healthErr != nil {
			if err := s.healthErr(); err != nil {
				h.Error = err.Error()
			}
		}
	}
	return h
}

// mapErrors registers the domain errors of this node's packages.
func mapErrors(m *httpapi.ErrorMapper) {
	m.Map(ErrAlreadyInitialized, http.StatusConflict, httpapi.CodeConflict, "")
	m.Map(ErrNotInitialized, http.StatusServiceUnavailable, httpapi.CodeSealed, "")
	m.Map(ErrAlreadyUnsealed, http.StatusBadRequest, httpapi.CodeInvalidArgument, "")
	m.Map(barrier.ErrSealed, http.StatusServiceUnavailable, httpapi.CodeSealed, "keyward is sealed")
	m.Map(barrier.ErrMalformedShare, http.StatusBadRequest, httpapi.CodeInvalidArgument, "")
	m.Map(barrier.ErrDuplicateShare, http.StatusBadRequest, httpapi.CodeInvalidArgument, "")
	m.Map(barrier.ErrWrongShares, http.StatusBadRequest, httpapi.CodeInvalidArgument, "")
	m.Map(barrier.ErrInvalidParams, http.StatusBadRequest, httpapi.CodeInvalidArgument, "")
	m.Map(credential.ErrLength, http.StatusUnauthorized, httpapi.CodeUnauthenticated, "token is malformed")
	m.Map(credential.ErrPrefix, http.StatusUnauthorized, httpapi.CodeUnauthenticated, "token is malformed")
	m.Map(credential.ErrCharset, http.StatusUnauthorized, httpapi.CodeUnauthenticated, "token is malformed")
	m.Map(credential.ErrChecksum, http.StatusUnauthorized, httpapi.CodeUnauthenticated, "token is malformed")
}

// Backup implements httpapi.Sys: a snapshot of the SQLite database, its
// size and SHA-256 (sent as Repr-Digest, RFC 9530, and in the request's
// audit entry), removed once sent. The copy holds what the database holds:
// secrets sealed under the keyring, the keyring sealed under the root key
// (so only the unseal keys open it), hashes of tokens, and the audit log.
func (s *sys) Backup(ctx context.Context) (*httpapi.Stream, error) {
	snap, ok := s.store.(storage.Snapshotter)
	if !ok {
		return nil, httpapi.Invalid("this node stores its data in %s: back it up with PostgreSQL's own tools (pg_dump, or base backups with WAL archiving); see docs/operations.md", s.store.Backend())
	}
	f, err := snap.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	body := &removeOnClose{f}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("backup: reading the snapshot: %w", err)
	}
	sum := h.Sum(nil)
	httpapi.AddAuditDetail(ctx, "backup_bytes", strconv.FormatInt(n, 10))
	httpapi.AddAuditDetail(ctx, "backup_sha256", hex.EncodeToString(sum))
	name := "keyward-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
	return &httpapi.Stream{Body: body, Size: n, ContentType: "application/vnd.sqlite3", Header: http.Header{
		"Content-Disposition": {`attachment; filename="` + name + `"`},
		"Repr-Digest":         {"sha-256=:" + base64.StdEncoding.EncodeToString(sum) + ":"},
	}}, nil
}

// removeOnClose is a temporary file removed when closed.
type removeOnClose struct{ *os.File }

func (f *removeOnClose) Close() error {
	err := f.File.Close()
	if rerr := os.Remove(f.Name()); err == nil {
		err = rerr
	}
	return err
}
