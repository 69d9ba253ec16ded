package cli

import (
	"context"
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
	var wait bool
	var waitFor time.Duration
	cmd := &cobra.Command{
		Use:   "request --policy NAME... --reason TEXT [--ttl 1h] [--wait]",
		Short: "Ask for policies for a while",
		Long: `Ask for policies for a while. An approver (someone allowed admin on
sys/access/policies/NAME for each policy, never you) approves or denies it;
then 'keyward access token ID' gives you the token, once.

With --wait the command waits for the decision (up to --wait-timeout) and,
once approved, prints the token at once, so a script can use it:

  export KEYWARD_TOKEN=$(keyward access request --policy prod-read \
      --reason "INC-42" --wait -o json | jq -r .token)

A denied or expired request exits non-zero with the approver's note.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(policies) == 0 || strings.TrimSpace(reason) == "" {
				return Usagef("give --policy NAME (repeatable) and --reason TEXT")
			}
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			if wait && waitFor <= 0 {
				return Usagef("--wait-timeout must be positive")
			}
			r, err := c.RequestAccess(cmd.Context(), policies, ttl, reason)
			if err != nil {
				return err
			}
			if wait {
				return waitForAccess(cmd.Context(), env, c, asJSON, r, waitFor)
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
	f.BoolVar(&wait, "wait", false, "wait for the decision and, once approved, print the token")
	f.DurationVar(&waitFor, "wait-timeout", 15*time.Minute, "with --wait: how long to wait for a decision")
	return cmd
}

// accessPollEvery is how often --wait reads the request's state.
var accessPollEvery = 2 * time.Second

// waitForAccess waits until r is decided, then takes and prints its token
// (approved) or fails saying why (denied, expired, still pending at the
// timeout). Progress goes to stderr: stdout holds only the token.
func waitForAccess(ctx context.Context, env *Env, c *client.Client, asJSON bool, r *client.AccessRequest, timeout time.Duration) error {
	fmt.Fprintf(env.Stderr, "Requested %s for %s: %s; waiting up to %s for an approver (keyward access approve %s)...\n",
		strings.Join(r.Policies, ", "), shortDuration(r.TTL), r.ID, shortDuration(timeout.String()), r.ID)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(accessPollEvery)
	defer tick.Stop()
	for r.State == "pending" {
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("request %s is still pending after %s; once approved, run: keyward access token %s", r.ID, timeout, r.ID)
			}
			return ctx.Err()
		case <-tick.C:
		}
		next, err := c.AccessRequest(ctx, r.ID)
		if err != nil {
			if ctx.Err() != nil {
				continue // the timeout's message, above
			}
			return err
		}
		r = next
	}
	switch r.State {
	case "approved":
		fmt.Fprintf(env.Stderr, "Approved by %s%s.\n", r.DecidedBy, noteSuffix(r.Note))
		it, err := c.AccessToken(ctx, r.ID)
		if err != nil {
			return err
		}
		return printIssuedToken(env, asJSON, it)
	case "denied":
		return fmt.Errorf("request %s was denied by %s%s", r.ID, r.DecidedBy, noteSuffix(r.Note))
	default:
		return fmt.Errorf("request %s is %s", r.ID, r.State)
	}
}

func noteSuffix(note string) string {
	if note == "" {
		return ""
	}
	return ": " + oneLine(note, 200)
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
