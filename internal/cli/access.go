package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/spf13/cobra"
)

func newAccessCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Just-in-time access: ask for policies for a while, approve, get a token",
		Long: `Just-in-time access: instead of holding production policies all the time,
ask for them when needed, for a while and a reason. Someone allowed admin on
sys/access/policies/NAME for each policy asked for approves or denies (never
the requester); the requester then exchanges the approved request for a
token holding those policies for the time asked, once, within an hour of the
approval. A pending request expires after a day. Every step is audited.`,
		Example: `  keyward access request --policy prod-read --ttl 30m --reason "INC-42: checkout errors"
  keyward access list --state pending           # approvers: what waits for you
  keyward access approve acr_3f2a9c0d1b --note "ok for INC-42"
  keyward access token acr_3f2a9c0d1b            # the requester, once approved`,
	}
	addGlobals(cmd, g)
	cmd.AddCommand(accessRequestCmd(env, g), accessListCmd(env, g), accessDecideCmd(env, g, true), accessDecideCmd(env, g, false), accessTokenCmd(env, g))
	return cmd
}

func accessRequestCmd(env *Env, g *globals) *cobra.Command {
	var policies []string
	var ttl, reason string
	cmd := &cobra.Command{
		Use:   "request --policy NAME... --reason TEXT [--ttl 1h]",
		Short: "Ask for policies for a while",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(policies) == 0 || strings.TrimSpace(reason) == "" {
				return Usagef("give --policy NAME (repeatable) and --reason TEXT")
			}
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			r, err := c.RequestAccess(cmd.Context(), policies, ttl, reason)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, r)
			}
			fmt.Fprintf(env.Stdout, "Requested %s for %s: %s (pending until %s)\n", strings.Join(r.Policies, ", "), shortDuration(r.TTL), r.ID, r.ExpiresAt.Local().Format(time.DateTime))
			fmt.Fprintf(env.Stderr, "An approver runs: keyward access approve %s\nThen: keyward access token %s\n", r.ID, r.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&policies, "policy", nil, "a policy to hold for a while (repeatable)")
	f.StringVar(&ttl, "ttl", "", "how long the granted token lasts, 1m to 12h (default 1h)")
	f.StringVar(&reason, "reason", "", "why: a ticket, an incident (required; the approver and the audit log see it)")
	return cmd
}

func accessListCmd(env *Env, g *globals) *cobra.Command {
	var state, since string
	cmd := &cobra.Command{
		Use:   "list [--state pending]",
		Short: "List your requests and those you may decide",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, from, c, err := g.setupSince(env, since)
			if err != nil {
				return err
			}
			rs, err := c.AccessRequests(cmd.Context(), state, from)
			if err != nil {
				return err
			}
			return printList(env.Stdout, asJSON, rs, "ID\tSTATE\tREQUESTER\tPOLICIES\tTTL\tREASON", func(r client.AccessRequest) string {
				return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", r.ID, r.State, r.Requester, strings.Join(r.Policies, ","), shortDuration(r.TTL), oneLine(r.Reason, 60))
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only pending, approved, denied, issued or expired requests")
	cmd.Flags().StringVar(&since, "since", "7d", "requests made since: a duration before now (7d, 24h) or an RFC 3339 time")
	return cmd
}

func accessDecideCmd(env *Env, g *globals, approve bool) *cobra.Command {
	var note string
	use, short := "deny ID", "Deny a pending request (needs admin on sys/access/policies/NAME)"
	if approve {
		use, short = "approve ID", "Approve a pending request (needs admin on sys/access/policies/NAME; not your own)"
	}
	cmd := &cobra.Command{
		Use:   use + " [--note TEXT]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			r, err := c.DecideAccess(cmd.Context(), args[0], approve, note)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, r)
			}
			fmt.Fprintf(env.Stdout, "%s %s's request %s for %s (%s)\n", map[bool]string{true: "Approved", false: "Denied"}[approve], r.Requester, r.ID, strings.Join(r.Policies, ", "), shortDuration(r.TTL))
			return nil
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "a note for the requester and the audit log")
	return cmd
}

func accessTokenCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "token ID",
		Short: "Exchange your approved request for its token (once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			it, err := c.AccessToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printIssuedToken(env, asJSON, it)
		},
	}
}

// shortDuration shows "1h0m0s" as "1h", "30m0s" as "30m", "1h30m0s" as "1h30m".
func shortDuration(s string) string {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil || d <= 0:
		return s
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0 && d > time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// oneLine cuts s to n runes on one line, for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
