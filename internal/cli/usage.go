package cli

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/spf13/cobra"
)

func newUsageCmd(env *Env) *cobra.Command {
	g := &globals{}
	var since, until string
	var f client.UsageFilter
	var perMinute bool
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show request counts per API key, token and integration",
		Long: `Show how credentials and integrations were used: requests per subject
and response status, summed over the period (or per minute with
--per-minute). Subjects are API key ids, token accessors and integration
names. Each node writes its counts to storage every 10 seconds (and at
shutdown), so the calls of the last few seconds may not show yet. Needs
read on sys/usage.`,
		Example: `  keyward usage --since 24h
  keyward usage --kind integration --subject maps --per-minute --since 15m
  keyward usage --kind key -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			now := time.Now()
			if f.Since, err = parseTimeFlag("since", since, now); err != nil {
				return err
			}
			if f.Until, err = parseTimeFlag("until", until, now); err != nil {
				return err
			}
			switch f.Kind {
			case "", "key", "token", "integration", "secret":
			default:
				return Usagef("--kind %q: want key, token, integration or secret", f.Kind)
			}
			if f.Subject != "" && f.Kind == "" {
				return Usagef("--subject needs --kind")
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			rows, err := c.Usage(cmd.Context(), f)
			if err != nil {
				return err
			}
			if !perMinute {
				rows = sumUsage(rows)
			}
			if len(rows) == 0 && !asJSON {
				// Counts reach storage every monitor.DefaultFlushEvery: a
				// caller who just made a call would otherwise wonder.
				fmt.Fprintln(env.Stderr, "No usage in this period. Nodes write their counts every 10 seconds: the last few seconds' calls may not show yet.")
			}
			if perMinute {
				return printList(env.Stdout, asJSON, rows, "MINUTE\tKIND\tSUBJECT\tSTATUS\tCOUNT", func(r client.UsageRow) string {
					return fmt.Sprintf("%s\t%s\t%s\t%d\t%d", r.Minute.UTC().Format("2006-01-02T15:04Z"), r.Kind, r.Subject, r.Status, r.Count)
				})
			}
			return printList(env.Stdout, asJSON, rows, "KIND\tSUBJECT\tSTATUS\tCOUNT", func(r client.UsageRow) string {
				return fmt.Sprintf("%s\t%s\t%d\t%d", r.Kind, r.Subject, r.Status, r.Count)
			})
		},
	}
	addGlobals(cmd, g)
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "1h", "from this time: a duration before now (1h, 7d) or an RFC 3339 time")
	fl.StringVar(&until, "until", "", "before this time (same forms as --since)")
	fl.StringVar(&f.Kind, "kind", "", "only this kind of subject: key, token, integration or secret (reads of its value)")
	fl.StringVar(&f.Subject, "subject", "", "only this subject (a key id, token accessor, integration name or PROJECT/ENV/PATH of a secret; needs --kind)")
	fl.BoolVar(&perMinute, "per-minute", false, "one row per minute instead of totals for the period")
	fl.IntVar(&f.Limit, "limit", 0, "at most this many per-minute rows from the server (default: the server's cap)")
	return cmd
}

// sumUsage adds the per-minute rows of each (kind, subject, status) up,
// ordered by kind, subject and status.
func sumUsage(rows []client.UsageRow) []client.UsageRow {
	type key struct {
		kind, subject string
		status        int
	}
	index := map[key]int{}
	var out []client.UsageRow
	for _, r := range rows {
		k := key{r.Kind, r.Subject, r.Status}
		if i, ok := index[k]; ok {
			out[i].Count += r.Count
			continue
		}
		index[k] = len(out)
		out = append(out, client.UsageRow{Kind: r.Kind, Subject: r.Subject, Status: r.Status, Count: r.Count})
	}
	slices.SortFunc(out, func(a, b client.UsageRow) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Status, b.Status))
	})
	return out
}

func newAlertsCmd(env *Env) *cobra.Command {
	g := &globals{}
	var since string
	var limit int
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Show anomalies detected in the use of API keys and tokens, and credentials about to expire",
		Long: `Show what credential monitoring detected, newest first. Every minute the
server compares each API key's and token's requests with its own past:

  spike     at least 600 requests in a minute and ten times its average
            minute over the hour before (a leaked key put to work, a
            runaway client)
  refusals  at least 30 refusals (403) in a minute, half its requests or
            more (a credential probing what else it may reach)
  new_network
            an API key used from a network (IPv4 /24, IPv6 /48) it was not
            used from in 30 days, when it had been used from another
  expiring  a long-lived token or an API key expires within the server's
            expiry_warning (two weeks by default; COUNT is the days left):
            renew or rotate it; never revoked

Each detection is audited (principal system:monitor, action alert) and
counted in keyward_alerts_total. With the server setting anomaly_revoke
(--anomaly-revoke spike,refusals,new_network) the credential is also revoked; the
RESPONSE column says which. Needs read on sys/alerts.`,
		Example: `  keyward alerts
  keyward alerts --since 7d -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, from, c, err := g.setupSince(env, since)
			if err != nil {
				return err
			}
			alerts, err := c.Alerts(cmd.Context(), from, limit)
			if err != nil {
				return err
			}
			if len(alerts) == 0 && !asJSON {
				fmt.Fprintln(env.Stderr, "No anomalies detected in this period.")
			}
			return printList(env.Stdout, asJSON, alerts, "TIME\tANOMALY\tCREDENTIAL\tCOUNT\tDETAIL\tRESPONSE", func(a client.Alert) string {
				detail := "-"
				switch {
				case a.Kind == "spike":
					detail = fmt.Sprintf("usual %.1f/min", a.Baseline)
				case a.Kind == "expiring":
					detail = a.Detail // "expires <time>"; COUNT is the days left
				case a.Detail != "":
					detail = "from " + a.Detail
				}
				return fmt.Sprintf("%s\t%s\t%s %s\t%d\t%s\t%s", a.Time.UTC().Format(time.RFC3339), a.Kind, a.SubjectKind, a.Subject, a.Count, detail, a.Response)
			})
		},
	}
	addGlobals(cmd, g)
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "24h", "from this time: a duration before now (24h, 7d) or an RFC 3339 time")
	fl.IntVar(&limit, "limit", 0, "at most this many alerts (default: the server's cap, 1000)")
	return cmd
}
