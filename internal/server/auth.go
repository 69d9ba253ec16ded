package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/httpapi"
	"github.com/keyward/keyward/internal/secret"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// tokenAuth authenticates bearer credentials through the caches of the
// token and API key services, by prefix: kwk_ is a client API key,
// anything else is treated as an access token.
type tokenAuth struct {
	svc  *token.Service
	keys *apikey.Service
}

func (a *tokenAuth) Authenticate(ctx context.Context, bearer string, src netip.Addr) (*httpapi.Caller, error) {
	if a.keys != nil && strings.HasPrefix(bearer, credential.APIKey.Prefix()) {
		return a.authenticateKey(ctx, bearer, src)
	}
	t, err := a.svc.Verify(ctx, bearer, src)
	if err != nil {
		return nil, err
	}
	if c, ok := t.Ext.(*httpapi.Caller); ok {
		return c, nil
	}
	return callerOf(t), nil
}

// Recheck is Authenticate for a request under way (the session check of a
// WebSocket session or a streamed answer): it spends no use of a
// use-limited token. An API key's Authenticate spends nothing already.
func (a *tokenAuth) Recheck(ctx context.Context, bearer string, src netip.Addr) (*httpapi.Caller, error) {
	if a.keys != nil && strings.HasPrefix(bearer, credential.APIKey.Prefix()) {
		return a.authenticateKey(ctx, bearer, src)
	}
	t, err := a.svc.Recheck(ctx, bearer, src)
	if err != nil {
		return nil, err
	}
	if c, ok := t.Ext.(*httpapi.Caller); ok {
		return c, nil
	}
	return callerOf(t), nil
}

// callerOf is the request principal of a token; the token cache keeps it in
// Token.Ext so the hot path builds it once per cache fill.
func callerOf(t *token.Token) *httpapi.Caller {
	return &httpapi.Caller{
		Principal: t.Principal, AuthMethod: t.AuthMethod, Accessor: t.Accessor, AccessorHMAC: t.AccessorHMAC,
		Policies: t.Policies, BoundEnvs: t.BoundEnvs, JKT: t.JKT, Token: t,
	}
}

// authenticateKey checks a client API key used directly (on the gateway):
// format, checksum, revocation, expiry and CIDRs. It spends nothing: the
// key's rate and quota are charged by credentialLimits.Authorized once the
// call is authorised. Every failure is the edge's 401.
func (a *tokenAuth) authenticateKey(ctx context.Context, bearer string, src netip.Addr) (*httpapi.Caller, error) {
	k, err := a.keys.Authenticate(ctx, bearer, src)
	if err != nil {
		return nil, err
	}
	if c, ok := k.Ext.(*httpapi.Caller); ok {
		return c, nil
	}
	return keyCallerOf(k), nil
}

// keyCallerOf is the request principal of an API key: no policies, only
// the key (and so its scopes). The key cache keeps it in Key.Ext.
func keyCallerOf(k *apikey.Key) *httpapi.Caller {
	return &httpapi.Caller{Principal: "apikey:" + k.ID, AuthMethod: "apikey", Accessor: k.ID, AccessorHMAC: k.IDHMAC, Key: k}
}

// envExists tells the API key service whether project/env exists.
func (n *Node) envExists(ctx context.Context, project, env string) error {
	envs, err := n.secrets.ListEnvs(ctx, project)
	if errors.Is(err, secret.ErrProjectNotFound) {
		return fmt.Errorf("%w: project %q does not exist", apikey.ErrEnvNotFound, project)
	}
	if err != nil {
		return err
	}
	for _, e := range envs {
		if e.Name == env {
			return nil
		}
	}
	return fmt.Errorf("%w: environment %q of project %q does not exist", apikey.ErrEnvNotFound, env, project)
}

// adoptRootToken moves the root token created at init from the sys table
// (where init put its HMAC, before any service existed) into the tokens
// table, where it is an ordinary, revocable token holding the root policy.
func (n *Node) adoptRootToken(ctx context.Context) error {
	return n.store.Write(ctx, func(tx storage.Tx) error {
		h, err := storage.GetSys(ctx, tx, sysRootToken)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := n.tokens.AdoptRoot(ctx, tx, h); err != nil {
			return err
		}
		return storage.DeleteSys(ctx, tx, sysRootToken)
	})
}

// barrierCursors seals list cursors with the barrier (AES-GCM, the kind of
// list as associated data): opaque to the caller, and not forgeable.
type barrierCursors struct{ b *barrier.Barrier }

func (c barrierCursors) Seal(kind, name string) (string, error) {
	ct, err := c.b.Encrypt([]byte("list-cursor:"+kind), []byte(name))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(ct), nil
}

func (c barrierCursors) Open(kind, cursor string) (string, error) {
	ct, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", err
	}
	pt, err := c.b.Decrypt([]byte("list-cursor:"+kind), ct)
	if err != nil {
		return "", err
	}
	return string(pt), nil
}
