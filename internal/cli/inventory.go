package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/keyward/keyward/internal/apikey"
	"github.com/spf13/cobra"
)

func newInventoryCmd(env *Env) *cobra.Command {
	g := &globals{}
	var kinds []string
	var unused, notRotated, expiring string
	var inactive bool
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "List every long-lived credential: owner, scope, age, rotation, expiry, last use",
		Long: `List what keyward holds and has issued that lives long:

  token        access tokens set to live longer than a day (root tokens,
               tokens issued or renewed for days), by accessor; owner
               their principal, scope their policies; last use recorded
  key          client API keys (kwk_), by id; scope project/env; last use
               and address recorded
  service      service accounts, by name; scope their policies; ROTATED is
               when their current secret was issued; last use is their
               last login
  secret       stored secrets, by project/env/path; ROTATED is their last
               version (values are never shown); last use is the last read
               of the value or call of an integration injecting it
  integration  gateway integrations, by name; scope their upstream; the
               secret they inject; last use from the usage counts (kept 30
               days)
  device       enrolled devices, by id; scope their policies; last use is
               their last token

Only active ones are listed unless --inactive. --unused-for lists what
nobody used for that long (never used counts from their creation); --not-rotated-for the ones whose value is older; --expiring-within
the ones that expire soon. Needs read on sys/inventory, which shows the
names and dates of every credential (never a value).`,
		Example: `  keyward inventory
  keyward inventory --unused-for 90d                  # candidates for revocation
  keyward inventory --kind secret,service --not-rotated-for 180d
  keyward inventory --kind key --expiring-within 14d -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			f := client.InventoryFilter{Kinds: kinds, Inactive: inactive}
			for _, fl := range []struct {
				name, value string
				d           *time.Duration
			}{{"unused-for", unused, &f.UnusedFor}, {"not-rotated-for", notRotated, &f.NotRotatedFor}, {"expiring-within", expiring, &f.ExpiringWithin}} {
				if *fl.d, err = apikey.ParseDuration("--"+fl.name, fl.value); err != nil {
					return Usagef("%s", strings.TrimPrefix(err.Error(), apikey.ErrInvalid.Error()+": "))
				}
			}
			for _, k := range kinds {
				switch k {
				case "token", "key", "service", "secret", "integration", "device":
				default:
					return Usagef("--kind %q: want token, key, service, secret, integration or device", k)
				}
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			items, err := c.Inventory(cmd.Context(), f)
			if err != nil {
				return err
			}
			if len(items) == 0 && !asJSON {
				fmt.Fprintln(env.Stderr, "No credential matches.")
				return nil
			}
			now := time.Now()
			return printList(env.Stdout, asJSON, items, "KIND\tID\tSCOPE\tOWNER\tAGE\tROTATED\tEXPIRES\tLAST USED\tSTATE",
				func(it client.InventoryItem) string {
					scope := it.Scope
					if it.Secret != "" {
						scope += " (" + it.Secret + ")"
					}
					id := it.ID
					if it.Name != "" {
						id += " (" + it.Name + ")"
					}
					return strings.Join([]string{it.Kind, id, dash(scope), dash(it.Owner), ago(now, it.CreatedAt, ""),
						ago(now, it.RotatedAt, " ago"), until(now, it.ExpiresAt), lastUse(now, it), it.State}, "\t")
				})
		},
	}
	addGlobals(cmd, g)
	fl := cmd.Flags()
	fl.StringSliceVar(&kinds, "kind", nil, "only these kinds: token, key, service, secret, integration, device (comma-separated)")
	fl.StringVar(&unused, "unused-for", "", "only credentials not used for this long (90d, 36h); secrets are left out")
	fl.StringVar(&notRotated, "not-rotated-for", "", "only credentials whose value is older than this (180d)")
	fl.StringVar(&expiring, "expiring-within", "", "only credentials that expire within this long (14d)")
	fl.BoolVar(&inactive, "inactive", false, "also list disabled, revoked and expired credentials")
	return cmd
}

// span writes d coarsely: days past two days, else hours, else minutes.
func span(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d >= 2*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		return strconv.Itoa(max(0, int(d/time.Minute))) + "m"
	}
}

// ago is how long before now t was, with suffix ("-" for no time).
func ago(now, t time.Time, suffix string) string {
	if t.IsZero() {
		return "-"
	}
	return span(now.Sub(t)) + suffix
}

// until is how long after now t is ("expired" when past, "-" for never).
func until(now, t time.Time) string {
	switch {
	case t.IsZero():
		return "-"
	case !t.After(now):
		return "expired"
	}
	return "in " + span(t.Sub(now))
}

// lastUse is when it was last used and from where: "never" when its use is
// recorded and there is none, "-" when its kind's use is not recorded.
func lastUse(now time.Time, it client.InventoryItem) string {
	switch {
	case !it.UseTracked:
		return "-"
	case it.LastUsedAt.IsZero():
		return "never"
	case it.LastUsedFrom != "":
		return ago(now, it.LastUsedAt, " ago") + " from " + it.LastUsedFrom
	}
	return ago(now, it.LastUsedAt, " ago")
}
