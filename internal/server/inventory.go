package server

import (
	"context"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/device"
	"github.com/keyward/keyward/internal/gateway"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/inventory"
	"github.com/keyward/keyward/internal/monitor"
)

// inventorySources turn each domain's records into inventory items: every
// long-lived token, client API key, service account, secret, integration
// and device.
func (n *Node) inventorySources(devices *device.Service) []inventory.Source {
	return []inventory.Source{
		{Kind: inventory.KindToken, List: n.inventoryTokens},
		{Kind: inventory.KindKey, List: n.inventoryKeys},
		{Kind: inventory.KindService, List: n.inventoryServices},
		{Kind: inventory.KindSecret, List: n.inventorySecrets},
		{Kind: inventory.KindIntegration, List: n.inventoryIntegrations},
		{Kind: inventory.KindDevice, List: func(ctx context.Context) ([]inventory.Item, error) { return inventoryDevices(ctx, devices) }},
	}
}

// eachEnv calls fn for every project/env.
func (n *Node) eachEnv(ctx context.Context, fn func(project, env string) error) error {
	projects, err := n.secrets.ListProjects(ctx)
	if err != nil {
		return err
	}
	for _, p := range projects {
		for _, e := range p.Envs {
			if err := fn(p.Name, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (n *Node) inventoryKeys(ctx context.Context) ([]inventory.Item, error) {
	now := time.Now()
	var out []inventory.Item
	err := n.eachEnv(ctx, func(project, env string) error {
		for cursor := ""; ; {
			keys, err := n.apikeys.List(ctx, project, env, 1000, cursor)
			if err != nil || len(keys) == 0 {
				return err
			}
			for _, k := range keys {
				it := inventory.Item{
					Kind: inventory.KindKey, ID: k.ID, Name: k.Name, Scope: project + "/" + env,
					Owner: k.Owner, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt,
					LastUsedAt: k.LastUsedAt, LastUsedFrom: k.LastUsedAddr, UseTracked: true, State: inventory.StateActive,
				}
				if it.Owner == "" {
					it.Owner = k.CreatedBy
				}
				switch {
				case !k.RevokedAt.IsZero() && !k.RevokedAt.After(now): // in a rotation's grace it still works
					it.State = inventory.StateRevoked
				case !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(now):
					it.State = inventory.StateExpired
				case !k.DisabledAt.IsZero():
					it.State = inventory.StateDisabled
				}
				out = append(out, it)
			}
			cursor = keys[len(keys)-1].ID
		}
	})
	return out, err
}

func (n *Node) inventoryServices(ctx context.Context) ([]inventory.Item, error) {
	var out []inventory.Item
	for cursor := ""; ; {
		page, err := n.identity.ListServices(ctx, identity.MaxListLimit, cursor)
		if err != nil || len(page) == 0 {
			return out, err
		}
		for _, s := range page {
			it := inventory.Item{
				Kind: inventory.KindService, ID: s.Name, Scope: strings.Join(s.Policies, ","),
				CreatedAt: s.CreatedAt, RotatedAt: s.SecretCreatedAt, LastUsedAt: s.LastLoginAt, UseTracked: true,
				State: inventory.StateActive,
			}
			if s.Disabled {
				it.State = inventory.StateDisabled
			}
			out = append(out, it)
		}
		cursor = page[len(page)-1].Name
	}
}

// inventorySecrets lists every secret with its last use: the last read of
// its value (the usage counts, kept 30 days), or the last gateway call of
// an integration that injects it, whichever is later.
func (n *Node) inventorySecrets(ctx context.Context) ([]inventory.Item, error) {
	var out []inventory.Item
	err := n.eachEnv(ctx, func(project, env string) error {
		entries, err := n.secrets.List(ctx, project, env, "", true)
		for _, e := range entries {
			if e.Folder {
				continue
			}
			out = append(out, inventory.Item{
				Kind: inventory.KindSecret, ID: project + "/" + env + "/" + e.Name, Scope: project + "/" + env,
				Owner: e.CreatedBy, CreatedAt: e.CreatedAt, RotatedAt: e.UpdatedAt, State: inventory.StateActive,
				UseTracked: true,
			})
		}
		return err
	})
	if err != nil || len(out) == 0 {
		return out, err
	}
	ids := make([]string, len(out))
	for i, it := range out {
		ids[i] = it.ID
	}
	read, err := n.usage.LastSeen(ctx, monitor.KindSecret, ids)
	if err != nil {
		return nil, err
	}
	injected, err := n.secretsInjected(ctx)
	if err != nil {
		return nil, err
	}
	for i := range out {
		it := &out[i]
		it.LastUsedAt = read[it.ID]
		if t := injected[it.ID]; t.After(it.LastUsedAt) {
			it.LastUsedAt = t
		}
	}
	return out, nil
}

// secretsInjected maps each secret an integration injects to the last
// call through such an integration.
func (n *Node) secretsInjected(ctx context.Context) (map[string]time.Time, error) {
	ins, used, err := n.integrationsUsed(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for _, in := range ins {
		if t := used[in.Name]; t.After(out[in.Secret]) {
			out[in.Secret] = t
		}
	}
	return out, nil
}

// integrationsUsed lists the integrations and the last call through each.
func (n *Node) integrationsUsed(ctx context.Context) ([]gateway.Integration, map[string]time.Time, error) {
	ins, err := n.integrations.List(ctx)
	if err != nil || len(ins) == 0 {
		return nil, nil, err
	}
	names := make([]string, len(ins))
	for i, in := range ins {
		names[i] = in.Name
	}
	used, err := n.usage.LastSeen(ctx, monitor.KindIntegration, names)
	if err != nil {
		return nil, nil, err
	}
	return ins, used, nil
}

func (n *Node) inventoryIntegrations(ctx context.Context) ([]inventory.Item, error) {
	ins, used, err := n.integrationsUsed(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]inventory.Item, 0, len(ins))
	for _, in := range ins {
		out = append(out, inventory.Item{
			Kind: inventory.KindIntegration, ID: in.Name, Scope: in.Upstream, Secret: in.Secret,
			Owner: in.CreatedBy, CreatedAt: in.CreatedAt, LastUsedAt: used[in.Name], UseTracked: true,
			State: inventory.StateActive,
		})
	}
	return out, nil
}

func inventoryDevices(ctx context.Context, devices *device.Service) ([]inventory.Item, error) {
	var out []inventory.Item
	for cursor := ""; ; {
		page, err := devices.List(ctx, 1000, cursor)
		if err != nil || len(page) == 0 {
			return out, err
		}
		for _, d := range page {
			it := inventory.Item{
				Kind: inventory.KindDevice, ID: d.ID, Name: d.Name, Scope: strings.Join(d.Policies, ","),
				CreatedAt: d.CreatedAt, LastUsedAt: d.LastTokenAt, UseTracked: true, State: inventory.StateActive,
			}
			if !d.DisabledAt.IsZero() {
				it.State = inventory.StateDisabled
			}
			out = append(out, it)
		}
		cursor = page[len(page)-1].ID
	}
}

// maxInventoryTokens bounds the long-lived tokens listed: they are the
// exception, and a node with more has a problem the list shows anyway.
const maxInventoryTokens = 10000

func (n *Node) inventoryTokens(ctx context.Context) ([]inventory.Item, error) {
	out, err := n.longLivedTokens(ctx)
	if err != nil || len(out) == 0 {
		return out, err
	}
	accessors := make([]string, len(out))
	for i, it := range out {
		accessors[i] = it.ID
	}
	used, err := n.usage.LastSeen(ctx, monitor.KindToken, accessors)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].LastUsedAt = used[out[i].ID]
	}
	return out, nil
}

// longLivedTokens lists the long-lived tokens as inventory items, without
// their last use (the usage table's, which inventoryTokens adds).
func (n *Node) longLivedTokens(ctx context.Context) ([]inventory.Item, error) {
	toks, err := n.tokens.LongLived(ctx, inventory.LongLived, maxInventoryTokens)
	if err != nil {
		return nil, err
	}
	out := make([]inventory.Item, 0, len(toks))
	for _, t := range toks {
		out = append(out, inventory.Item{
			Kind: inventory.KindToken, ID: t.Accessor, Scope: strings.Join(t.Policies, ","), Owner: t.Principal,
			CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, UseTracked: true, State: inventory.StateActive,
		})
	}
	return out, nil
}
