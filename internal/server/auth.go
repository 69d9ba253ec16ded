package server

import (
	"context"
	"errors"
	"net/netip"

	"github.com/keyward/keyward/internal/httpapi"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// tokenAuth authenticates bearer tokens through the token service's cache.
type tokenAuth struct{ svc *token.Service }

func (a *tokenAuth) Authenticate(ctx context.Context, bearer string, src netip.Addr) (*httpapi.Caller, error) {
	t, err := a.svc.Verify(ctx, bearer, src)
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
