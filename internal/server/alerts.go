package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/inventory"
	"github.com/keyward/keyward/internal/monitor"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/token"
)

// monitorPrincipal is who the audit log names for credential monitoring.
const monitorPrincipal = "system:monitor"

// respondToAlert is the detector's response to an anomaly this node
// recorded: an audit entry and a log line always, and, for the kinds named
// by anomaly_revoke, the revocation of the credential, in the transaction
// of that entry.
func (n *Node) respondToAlert(ctx context.Context, a *monitor.Alert) string {
	e := &audit.Entry{
		Principal: monitorPrincipal, Action: "alert", Outcome: audit.OutcomeAllowed, Status: 200,
		Detail: alertDetail(a),
	}
	response := monitor.ResponseAlert
	revoke := slices.Contains(n.cfg.AnomalyRevoke, a.Kind)
	var err error
	switch a.SubjectKind {
	case monitor.KindKey:
		e.Detail["key_id"] = a.Subject
		var k *apikey.Key
		if k, err = n.apikeys.ByID(ctx, a.Subject); err == nil {
			e.Resource, e.Environment = apikey.Resource(k.Project, k.Env, k.ID), k.Project+"/"+k.Env
			if revoke {
				e.Detail["response"] = monitor.ResponseRevoked
				_, err = n.apikeys.Revoke(ctx, k.Project, k.Env, k.ID, func(ctx context.Context, tx storage.Tx, _ string) error {
					return n.auditLog.AppendTx(ctx, tx, e)
				})
			}
		}
	case monitor.KindToken:
		e.Resource = "auth/tokens/" + a.Subject
		if revoke {
			e.Detail["response"] = monitor.ResponseRevoked
			_, err = n.tokens.Revoke(ctx, a.Subject, func(ctx context.Context, tx storage.Tx) error {
				return n.auditLog.AppendTx(ctx, tx, e)
			})
		}
	default:
		err = fmt.Errorf("unknown credential kind %q", a.SubjectKind)
	}
	metric := "alert"
	switch {
	case revoke && err == nil:
		response, metric = monitor.ResponseRevoked, monitor.ResponseRevoked
	case revoke:
		response, metric = "revoke failed: "+alertError(err), "failed"
	}
	if response != monitor.ResponseRevoked {
		// Not written with a revocation: written on its own.
		e.Detail["response"] = response
		if e.Resource == "" {
			e.Resource = a.SubjectKind + "s/" + a.Subject
		}
		if aerr := n.auditLog.Append(ctx, e); aerr != nil {
			n.log.Error("auditing a credential anomaly failed", "alert_id", a.ID, "err", aerr)
		}
	}
	n.metrics.ObserveAlert(a.Kind, metric)
	msg := "credential anomaly detected"
	if a.Kind == monitor.AlertExpiring {
		msg = "credential expires soon"
	}
	args := []any{"credential", a.SubjectKind, "id", a.Subject}
	for _, k := range slices.Sorted(maps.Keys(e.Detail)) {
		args = append(args, k, e.Detail[k])
	}
	n.log.Warn(msg, args...)
	return response
}

// alertDetail is the audit detail of alert a: its kind and id, and what
// its kind measures.
func alertDetail(a *monitor.Alert) map[string]string {
	d := map[string]string{"anomaly": a.Kind, "alert_id": strconv.FormatInt(a.ID, 10)}
	switch a.Kind {
	case monitor.AlertExpiring: // Minute is the expiry, Count the days left
		d["expires_at"] = a.Minute.UTC().Format(time.RFC3339)
		d["days_left"] = strconv.FormatInt(a.Count, 10)
		return d
	case monitor.AlertSpike:
		d["baseline"] = strconv.FormatFloat(a.Baseline, 'f', 1, 64)
	case monitor.AlertNewNetwork:
		d["network"] = a.Detail
	}
	d["count"] = strconv.FormatInt(a.Count, 10)
	d["minute"] = a.Minute.Format(time.RFC3339)
	return d
}

// newKeyNetwork reports an API key used from a network new to it
// (apikey.Options.OnNewNetwork) as a new_network anomaly.
func (n *Node) newKeyNetwork(keyID, network string, at time.Time) {
	if n.detector == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := &monitor.Alert{Kind: monitor.AlertNewNetwork, SubjectKind: monitor.KindKey, Subject: keyID, Minute: at, Count: 1, Detail: network}
	if _, err := n.detector.Report(ctx, a); err != nil {
		n.log.Warn("recording a new network of an API key failed", "key_id", keyID, "err", err)
	}
}

// expiryAlerts raises an expiring alert for each long-lived token and API
// key that expires within cfg.ExpiryWarning: once per credential and
// expiry, whichever node looks first (the alerts table's key), so an
// expiry moved later (a renewed key) is reported again when it nears.
func (n *Node) expiryAlerts(ctx context.Context) {
	w := n.cfg.ExpiryWarning
	if w <= 0 || n.detector == nil {
		return
	}
	now := time.Now()
	for _, src := range []struct {
		kind string
		list func(context.Context) ([]inventory.Item, error)
	}{{monitor.KindToken, n.longLivedTokens}, {monitor.KindKey, n.inventoryKeys}} {
		items, err := src.list(ctx)
		if err != nil {
			n.log.Warn("looking for credentials that expire soon failed", "credential", src.kind, "err", err)
			continue
		}
		for _, it := range items {
			left := it.ExpiresAt.Sub(now)
			if it.State != inventory.StateActive || it.ExpiresAt.IsZero() || left <= 0 || left > w {
				continue
			}
			a := &monitor.Alert{Kind: monitor.AlertExpiring, SubjectKind: src.kind, Subject: it.ID, Minute: it.ExpiresAt,
				Count: int64(left / (24 * time.Hour)), Detail: "expires " + it.ExpiresAt.UTC().Format(time.RFC3339)}
			if _, err := n.detector.Report(ctx, a); err != nil {
				n.log.Warn("recording an expiring credential failed", "credential", src.kind, "id", it.ID, "err", err)
			}
		}
	}
}

// alertError says briefly why a revocation failed, for the alert record.
func alertError(err error) string {
	switch {
	case errors.Is(err, apikey.ErrNotFound), errors.Is(err, token.ErrNotFound):
		return "the credential no longer exists"
	case errors.Is(err, storage.ErrUnavailable):
		return "storage unavailable"
	}
	return "internal error (see the server log)"
}
