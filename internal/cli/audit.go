package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/spf13/cobra"
)

// parseTimeFlag reads a --since/--until value: a duration before now
// ("1h", "30m", "7d" for days), an RFC 3339 time, or a date (2006-01-02, UTC).
func parseTimeFlag(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && fmt.Sprint(n) == days && n >= 0 && n <= 36500 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, Usagef("--%s %q: want a duration before now (1h, 7d) or a time (2026-01-02T15:04:05Z, 2026-01-02)", flag, s)
}

func newAuditCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the tamper-evident audit log",
		Long: `Every request keyward answers leaves an audit entry: who, what, which
resource, the outcome. Entries are hash-chained and periodically signed, so
keyward audit verify detects an entry that was altered, removed or reordered.`,
		Example: `  keyward audit list --since 24h --outcome denied
  keyward audit verify`,
	}
	addGlobals(cmd, g)
	cmd.AddCommand(auditListCmd(env, g), auditVerifyCmd(env, g))
	return cmd
}

func auditListCmd(env *Env, g *globals) *cobra.Command {
	var since, until string
	var f client.AuditFilter
	var all bool
	var last int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit entries, oldest first",
		Long: `List audit entries, oldest first, filtered by time, principal, resource
prefix and outcome. One page of --limit entries is shown; --all follows the
pages to the end, and --after SEQ starts after an entry.

--last N shows the newest N matching entries instead (still oldest first,
like tail); --before SEQ then pages back to older ones.`,
		Example: `  keyward audit list --since 1h --outcome denied
  keyward audit list --last 20
  keyward audit list --last 50 --principal service:ci --before 1042
  keyward audit list --principal user:alice --resource projects/payments/ --all -o json`,
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
			switch f.Outcome {
			case "", "allowed", "denied", "error":
			default:
				return Usagef("--outcome %q: want allowed, denied or error", f.Outcome)
			}
			if f.Limit < 1 || f.Limit > 1000 {
				return Usagef("--limit %d: want 1 to 1000", f.Limit)
			}
			if f.After < 0 {
				return Usagef("--after must not be negative")
			}
			if f.Before < 0 {
				return Usagef("--before must not be negative")
			}
			if cmd.Flags().Changed("last") {
				switch {
				case last < 1 || last > 1000:
					return Usagef("--last %d: want 1 to 1000", last)
				case all:
					return Usagef("--last shows one page of the newest entries; --all follows pages from the oldest: give one")
				case cmd.Flags().Changed("limit"):
					return Usagef("--last sets the page size: drop --limit")
				}
				f.Newest, f.Limit = true, last
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			entries := []client.AuditEntry{}
			var next int64
			for {
				page, n, err := c.ListAudit(cmd.Context(), f)
				if err != nil {
					return err
				}
				entries = append(entries, page...)
				next = n
				if !all || n == 0 || n <= f.After {
					break
				}
				f.After = n
			}
			if asJSON {
				return printJSON(env.Stdout, entries)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tPRINCIPAL\tACTION\tRESOURCE\tOUTCOME\tSTATUS")
			for _, e := range entries {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\n", e.Seq, e.Time.UTC().Format(time.RFC3339), dash(e.Principal),
					dash(e.Action), dash(e.Resource), e.Outcome, e.Status)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			switch {
			case f.Newest && next != 0:
				fmt.Fprintf(env.Stderr, "Older entries exist: --last %d --before %d.\n", last, next)
			case !all && next != 0:
				fmt.Fprintf(env.Stderr, "More entries follow: --all, or --after %d.\n", next)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "entries from this time: a duration before now (1h, 7d) or an RFC 3339 time")
	fl.StringVar(&until, "until", "", "entries before this time (same forms as --since)")
	fl.StringVar(&f.Principal, "principal", "", "only this principal, e.g. user:alice or service:ci")
	fl.StringVar(&f.ResourcePrefix, "resource", "", "only resources starting with this prefix")
	fl.StringVar(&f.Outcome, "outcome", "", "only this outcome: allowed, denied or error")
	fl.IntVar(&f.Limit, "limit", 100, "entries per page (1 to 1000)")
	fl.Int64Var(&f.After, "after", 0, "start after the entry with this sequence number")
	fl.BoolVar(&all, "all", false, "follow the pages to the last entry")
	fl.IntVar(&last, "last", 0, "show the newest N matching entries (1 to 1000) instead of the oldest")
	fl.Int64Var(&f.Before, "before", 0, "only entries before the one with this sequence number (to page back with --last)")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func auditVerifyCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Verify the audit log's hash chain and signatures (exit 1 when tampered)",
		Long: `Ask the server to re-check the whole audit log: every entry's hash and link
to the one before, and every signed checkpoint. Exits 0 when the log is
intact and 1, naming the first bad entry, when it is not.`,
		Example: `  keyward audit verify || page-the-security-team`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			v, err := c.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(env.Stdout, v); err != nil {
					return err
				}
			} else if v.OK {
				fmt.Fprintf(env.Stdout, "audit log intact: %d entries, %d checkpoints\n", v.Entries, v.Checkpoints)
			} else {
				fmt.Fprintf(env.Stdout, "audit log TAMPERED: first bad entry %d: %s\n", v.FirstBad, v.Problem)
			}
			if !v.OK {
				return &ExitError{Code: ExitFailure}
			}
			return nil
		},
	}
}
