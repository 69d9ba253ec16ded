package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/spf13/cobra"
)

func newKeyCmd(env *Env) *cobra.Command {
	g := &globals{}
	var af addrFlags
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Create, inspect, update, rotate, revoke and verify client API keys",
		Long: `Client API keys (kwk_…) are long-lived credentials for partners, third-party
developers and server-to-server callers. A key belongs to an environment of a
project, is shown once at creation, and is stored only as an HMAC.

A key may call the gateway directly (Authorization: Bearer kwk_…), only on the
integrations its scopes name, within its rate limit and quota. Your own API
can check keys with 'keyward key verify' or POST /v1/keys/verify.

Keys of the prod, production and live environments are live keys and start
with kwk_live; keys of every other environment are test keys and start with
kwk_test. Rate limits are counted per keyward node: with N nodes a key may
make up to N times its rate. Quotas are exact across nodes.

The project and environment come from -p and -e, or $KEYWARD_PROJECT and
$KEYWARD_ENV.`,
		Example: `  keyward key create -p shop -e prod --name acme --scope integrations/maps \
      --ttl 90d --rate 100/min --quota 10000 --refill monthly --cidr 10.0.0.0/8 --meta '{"team":"x"}'
  keyward key list -p shop -e prod
  keyward key update -p shop -e prod key_4Fz9XkQ2mB7pLr0aYc3d --quota 50000 --rate 500/min
  keyward key rotate -p shop -e prod key_4Fz9XkQ2mB7pLr0aYc3d --grace 24h
  printf %s "$KEY" | keyward key verify`,
	}
	addGlobals(cmd, g)
	cmd.PersistentFlags().StringVarP(&af.project, "project", "p", "", "project (default $KEYWARD_PROJECT)")
	cmd.PersistentFlags().StringVarP(&af.env, "env", "e", "", "environment (default $KEYWARD_ENV)")
	where := func() (string, string, error) {
		p, e := af.project, af.env
		if p == "" {
			p = env.Getenv("KEYWARD_PROJECT")
		}
		if e == "" {
			e = env.Getenv("KEYWARD_ENV")
		}
		if p == "" || e == "" {
			return "", "", Usagef("give the project and environment with -p PROJECT -e ENV")
		}
		return p, e, nil
	}
	cmd.AddCommand(keyCreateCmd(env, g, where), keyListCmd(env, g, where), keyGetCmd(env, g, where),
		keyUpdateCmd(env, g, where), keyRevokeCmd(env, g, where), keyRotateCmd(env, g, where), keyVerifyCmd(env, g))
	return cmd
}

type whereFunc func() (project, env string, err error)

// checkKeyRequest validates the flags of key create the way the server
// does, so a typo is a usage error before any request.
func checkKeyRequest(req *client.CreateKeyRequest) error {
	if req.Name == "" {
		return Usagef("give the key a --name")
	}
	if len(req.Scopes) == 0 {
		return Usagef("give at least one --scope, such as integrations/maps")
	}
	if _, err := apikey.ParseDuration("ttl", req.TTL); err != nil {
		return keyFlagError("--", err)
	}
	if req.Quota < 0 || req.RefillAmount < 0 {
		return Usagef("--quota and --refill-amount must not be negative")
	}
	if req.Refill != "" && req.Quota == 0 {
		return Usagef("--refill needs a --quota")
	}
	return cmp.Or(checkScopes(req.Scopes), checkRate(req.Rate), checkRefill(req.Refill), checkCIDRs(req.CIDRs), checkMeta(req.Meta))
}

// keyFlagError is the usage error of a key flag the apikey package refused.
func keyFlagError(prefix string, err error) error {
	return Usagef("%s%s", prefix, strings.TrimPrefix(err.Error(), "invalid argument: "))
}

// The checks of key create's and key update's flags, each nil when good.

func checkScopes(scopes []string) error {
	for _, s := range scopes {
		if err := apikey.ValidateScope(s); err != nil {
			return keyFlagError("--scope: ", err)
		}
	}
	return nil
}

func checkRate(rate string) error {
	if _, err := ratelimit.ParseLimit(rate); err != nil {
		return Usagef("--rate: %v", err)
	}
	return nil
}

func checkRefill(refill string) error {
	if _, err := apikey.ParseRefill(refill); err != nil {
		return keyFlagError("--", err)
	}
	return nil
}

func checkCIDRs(cidrs []string) error {
	for _, c := range cidrs {
		if _, err := netip.ParsePrefix(c); err != nil {
			if _, aerr := netip.ParseAddr(c); aerr != nil {
				return Usagef("--cidr %q: want a network such as 10.0.0.0/8 or an address", c)
			}
		}
	}
	return nil
}

func checkMeta(meta []byte) error {
	if len(meta) == 0 {
		return nil
	}
	if _, err := apikey.NormalizeMeta(meta); err != nil {
		return keyFlagError("--meta: ", err)
	}
	return nil
}

func keyCreateCmd(env *Env, g *globals, where whereFunc) *cobra.Command {
	var req client.CreateKeyRequest
	var meta string
	cmd := &cobra.Command{
		Use:   "create --name NAME --scope RESOURCE [flags]",
		Short: "Create a client API key (printed once)",
		Long: `Create a client API key in an environment. The key is printed once, on
stdout: store it now (a secret manager, the partner's vault). keyward keeps only
an HMAC and cannot show it again; if it is lost, rotate or create another.

Scopes are resource patterns: integrations/maps allows the maps integration,
integrations/* every integration. --ttl takes days (90d), weeks (2w) or a
duration (12h). --rate is N/sec, N/min, N/hour or N/day. --quota counts uses
in all; with --refill daily or monthly it is reset to --refill-amount (default:
the quota) at the start of each UTC day or month.`,
		Example: `  keyward key create -p shop -e prod --name acme --scope integrations/maps \
      --ttl 90d --rate 100/min --quota 10000 --refill monthly --cidr 10.0.0.0/8 --meta '{"team":"x"}'
  keyward key create -p shop -e staging --name ci --scope 'integrations/*' -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			p, e, err := where()
			if err != nil {
				return err
			}
			if meta != "" {
				req.Meta = json.RawMessage(meta)
			}
			if err := checkKeyRequest(&req); err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			k, err := c.CreateKey(cmd.Context(), p, e, req)
			if err != nil {
				return err
			}
			printWarnings(env, k.Warnings)
			if asJSON {
				return printJSON(env.Stdout, k)
			}
			fmt.Fprintf(env.Stdout, "Key:          %s\n", k.Key)
			printKeyInfo(env.Stdout, &k.KeyInfo)
			fmt.Fprintln(env.Stderr, "Store this key now: it is shown once and cannot be recovered.")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "a name for the key (required)")
	f.StringVar(&req.Owner, "owner", "", "who the key is for (a partner, a customer id); returned by verify")
	f.StringArrayVar(&req.Scopes, "scope", nil, "a resource the key may proxy to, e.g. integrations/maps (repeatable, required)")
	f.StringVar(&req.TTL, "ttl", "", "lifetime, e.g. 90d, 2w, 12h (default: never expires)")
	f.StringVar(&req.Rate, "rate", "", "rate limit, e.g. 100/min (default: none)")
	f.Int64Var(&req.Quota, "quota", 0, "number of uses in all (default: unlimited)")
	f.StringVar(&req.Refill, "refill", "", "reset the quota daily or monthly (UTC)")
	f.Int64Var(&req.RefillAmount, "refill-amount", 0, "what a refill resets the quota to (default: --quota)")
	f.StringArrayVar(&req.CIDRs, "cidr", nil, "a network the key may be used from (repeatable)")
	f.StringVar(&meta, "meta", "", `a JSON object returned by verify, e.g. '{"team":"x"}' (at most 4 KiB)`)
	return cmd
}

func keyListCmd(env *Env, g *globals, where whereFunc) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the environment's keys (never the keys themselves)",
		Example: `  keyward key list -p shop -e prod -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			p, e, err := where()
			if err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			all, err := allPages(func(cursor string) ([]client.KeyInfo, string, error) {
				return c.ListKeys(cmd.Context(), p, e, 1000, cursor)
			})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, all)
			}
			if len(all) == 0 {
				fmt.Fprintf(env.Stderr, "No keys in %s/%s\n", p, e)
				return nil
			}
			fmt.Fprintf(env.Stdout, "%-24s  %-4s  %-7s  %-20s  %-20s  %s\n", "ID", "KIND", "STATUS", "NAME", "LAST USED", "SCOPES")
			for _, k := range all {
				last := "never"
				if k.LastUsedAt != nil {
					last = k.LastUsedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(env.Stdout, "%-24s  %-4s  %-7s  %-20s  %-20s  %s\n", k.ID, k.EnvironmentKind, k.Status, k.Name, last, strings.Join(k.Scopes, ","))
			}
			return nil
		},
	}
}

func keyGetCmd(env *Env, g *globals, where whereFunc) *cobra.Command {
	return &cobra.Command{
		Use:     "get KEY_ID",
		Short:   "Describe a key: settings, quota left, last use",
		Example: `  keyward key get -p shop -e prod key_4Fz9XkQ2mB7pLr0aYc3d`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return keyAction(cmd, env, g, where, args[0], func(c *client.Client, p, e, id string) (*client.KeyInfo, error) {
				return c.GetKey(cmd.Context(), p, e, id)
			})
		},
	}
}

func keyRevokeCmd(env *Env, g *globals, where whereFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke KEY_ID",
		Short: "Revoke a key now (on every node within a second)",
		Long: `Revoke a key at once. It is refused on every keyward node within a second (a
key with a quota at once). Revoking a rotated key ends its grace period.`,
		Example: `  keyward key revoke -p shop -e prod key_4Fz9XkQ2mB7pLr0aYc3d`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return keyAction(cmd, env, g, where, args[0], func(c *client.Client, p, e, id string) (*client.KeyInfo, error) {
				return c.RevokeKey(cmd.Context(), p, e, id)
			})
		},
	}
}

// keyAction runs a call that answers one key and prints it.
func keyAction(cmd *cobra.Command, env *Env, g *globals, where whereFunc, id string, fn func(c *client.Client, p, e, id string) (*client.KeyInfo, error)) error {
	asJSON, err := g.json()
	if err != nil {
		return err
	}
	p, e, err := where()
	if err != nil {
		return err
	}
	if !apikey.ValidID(id) {
		return Usagef("%q is not a key id (key_ followed by 20 letters and digits); the key itself is never an argument", truncate(id))
	}
	c, err := g.newClient(env)
	if err != nil {
		return err
	}
	k, err := fn(c, p, e, id)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env.Stdout, k)
	}
	printKeyInfo(env.Stdout, k)
	return nil
}

func truncate(s string) string {
	if strings.HasPrefix(s, "kw") && len(s) > 8 {
		return s[:8] + "…" // never echo a credential
	}
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func keyUpdateCmd(env *Env, g *globals, where whereFunc) *cobra.Command {
	var (
		name, owner, meta, ttl, rate, refill string
		scopes, cidrs                        []string
		anyNetwork, disable, enable          bool
		quota, remaining, refillAmount       int64
	)
	cmd := &cobra.Command{
		Use:   "update KEY_ID [flags]",
		Short: "Change a key's settings in place (scopes, limits, quota, networks, expiry, metadata), or suspend it",
		Long: `Change some settings of a key without issuing a new one: the partner goes on
using the same key, and every node applies the change within a second. Only
the flags given change. --scope replaces all the scopes; --cidr replaces the
networks (--any-network removes them); --ttl sets the expiry from now, or
"never"; --rate none removes the rate limit; --quota 0 removes the quota.
Changing --quota moves what is left of it by the same amount (raising a
plan from 10000 to 50000 gives 40000 more uses now); --remaining sets what is
left outright. A refill that gave the old quota gives the new one.
--disable suspends the key (every use refused, verify answers DISABLED) until
--enable, without revoking it: for a partner whose account is on hold.

A revoked key cannot be changed, nor one that was rotated (change its
successor, which holds the settings that count).`,
		Example: `  keyward key update -p shop -e prod key_4Fz9XkQ2mB7pLr0aYc3d --quota 50000 --rate 500/min
  keyward key update -p shop -e prod key_4Fz9XkQ2mB7pLr0aYc3d --remaining 10000
  keyward key update -p shop -e prod key_4Fz9XkQ2mB7pLr0aYc3d --ttl 90d --meta '{"plan":"gold"}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			var req client.UpdateKeyRequest
			if f.Changed("name") {
				req.Name = &name
			}
			if f.Changed("owner") {
				req.Owner = &owner
			}
			if f.Changed("scope") {
				if err := checkScopes(scopes); err != nil {
					return err
				}
				req.Scopes = scopes
			}
			if f.Changed("meta") {
				if err := checkMeta([]byte(meta)); err != nil {
					return err
				}
				req.Meta = json.RawMessage(meta)
			}
			switch {
			case anyNetwork && f.Changed("cidr"):
				return Usagef("--any-network and --cidr exclude each other")
			case anyNetwork:
				req.CIDRs = &[]string{}
			case f.Changed("cidr"):
				if err := checkCIDRs(cidrs); err != nil {
					return err
				}
				req.CIDRs = &cidrs
			}
			if f.Changed("ttl") {
				if ttl != "never" {
					if d, err := apikey.ParseDuration("ttl", ttl); err != nil || d <= 0 {
						return Usagef("--ttl %q: want a duration such as 90d, 2w or 12h, or never", ttl)
					}
				}
				req.TTL = &ttl
			}
			if f.Changed("rate") {
				if rate == "none" {
					rate = ""
				}
				if err := checkRate(rate); err != nil {
					return err
				}
				req.Rate = &rate
			}
			for _, n := range []struct {
				flag string
				v    *int64
				dst  **int64
			}{{"quota", &quota, &req.Quota}, {"remaining", &remaining, &req.Remaining}, {"refill-amount", &refillAmount, &req.RefillAmount}} {
				if f.Changed(n.flag) {
					if *n.v < 0 {
						return Usagef("--%s must not be negative", n.flag)
					}
					*n.dst = n.v
				}
			}
			switch {
			case disable && enable:
				return Usagef("--disable and --enable exclude each other")
			case disable || enable:
				req.Disabled = &disable
			}
			if f.Changed("refill") {
				if refill == "none" {
					refill = ""
				}
				if err := checkRefill(refill); err != nil {
					return err
				}
				req.Refill = &refill
			}
			if !slices.ContainsFunc([]string{"name", "owner", "scope", "meta", "cidr", "any-network", "ttl", "rate", "quota", "remaining", "refill", "refill-amount", "disable", "enable"}, f.Changed) {
				return Usagef("nothing to change: give at least one of --name, --owner, --scope, --meta, --cidr, --any-network, --ttl, --rate, --quota, --remaining, --refill, --disable, --enable")
			}
			return keyAction(cmd, env, g, where, args[0], func(c *client.Client, p, e, id string) (*client.KeyInfo, error) {
				return c.UpdateKey(cmd.Context(), p, e, id, req)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "a new name")
	f.StringVar(&owner, "owner", "", "who the key is for")
	f.StringArrayVar(&scopes, "scope", nil, "the scopes, replacing all of them (repeatable)")
	f.StringVar(&meta, "meta", "", `a JSON object replacing the metadata ('{}' removes it)`)
	f.StringArrayVar(&cidrs, "cidr", nil, "the networks the key may be used from, replacing them (repeatable)")
	f.BoolVar(&anyNetwork, "any-network", false, "remove the network restriction")
	f.StringVar(&ttl, "ttl", "", "expire this long from now (90d, 2w, 12h), or never")
	f.StringVar(&rate, "rate", "", "rate limit, e.g. 100/min, or none")
	f.Int64Var(&quota, "quota", 0, "number of uses in all (0: unlimited); what is left moves by the change")
	f.Int64Var(&remaining, "remaining", 0, "set what is left of the quota")
	f.StringVar(&refill, "refill", "", "reset the quota daily or monthly (UTC), or none")
	f.Int64Var(&refillAmount, "refill-amount", 0, "what a refill resets the quota to (with --refill)")
	f.BoolVar(&disable, "disable", false, "suspend the key: refused everywhere (verify says DISABLED) until --enable")
	f.BoolVar(&enable, "enable", false, "let a disabled key work again")
	return cmd
}

func keyRotateCmd(env *Env, g *globals, where whereFunc) *cobra.Command {
	var grace string
	cmd := &cobra.Command{
		Use:   "rotate KEY_ID [--grace 24h]",
		Short: "Issue a successor with the same settings; the old key works until the grace ends",
		Long: `Issue a new key with the same name, scopes, limits and metadata, printed once.
The old key keeps working for the grace period (default 24h; 0s revokes it at
once) and shares its quota and rate with the new key, so a client can switch
over without a failed request.`,
		Example: `  keyward key rotate -p shop -e prod key_4Fz9XkQ2mB7pLr0aYc3d --grace 72h`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			p, e, err := where()
			if err != nil {
				return err
			}
			if !apikey.ValidID(args[0]) {
				return Usagef("%q is not a key id (key_ followed by 20 letters and digits)", truncate(args[0]))
			}
			if _, err := apikey.ParseDuration("grace", grace); err != nil {
				return keyFlagError("--", err)
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			k, err := c.RotateKey(cmd.Context(), p, e, args[0], grace)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, k)
			}
			fmt.Fprintf(env.Stdout, "Key:          %s\n", k.Key)
			printKeyInfo(env.Stdout, &k.KeyInfo)
			if k.Previous != nil && k.Previous.GraceUntil != nil {
				fmt.Fprintf(env.Stdout, "Old key %s works until %s\n", k.Previous.ID, k.Previous.GraceUntil.UTC().Format(time.RFC3339))
			} else if k.Previous != nil {
				fmt.Fprintf(env.Stdout, "Old key %s is revoked\n", k.Previous.ID)
			}
			fmt.Fprintln(env.Stderr, "Store this key now: it is shown once and cannot be recovered.")
			return nil
		},
	}
	cmd.Flags().StringVar(&grace, "grace", "", "how long the old key keeps working, e.g. 24h, 7d (default 24h; 0s: revoke now)")
	return cmd
}

// errInvalidKey makes key verify exit 1 without another message.
var errInvalidKey = &ExitError{Code: ExitFailure}

func keyVerifyCmd(env *Env, g *globals) *cobra.Command {
	var req client.VerifyKeyRequest
	var noConsume bool
	cmd := &cobra.Command{
		Use:   "verify [--resource R] [--source-addr ADDR] [--no-consume]",
		Short: "Verify a key read from stdin; exit 0 when valid, 1 when not",
		Long: `Verify a client API key the way your API would (POST /v1/keys/verify). The key
is read from stdin, never from the command line, where it would land in shell
history and process listings. Verifying uses one request of the key's rate
limit and quota unless --no-consume is given. The caller needs read on the
key; a key it may not read is reported as NOT_FOUND.`,
		Example: `  printf %s "$KEY" | keyward key verify
  keyward key verify --resource integrations/maps --source-addr 10.1.2.3 < key.txt
  printf %s "$KEY" | keyward key verify --no-consume -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 { // never echo it: it may be the key
				return Usagef("key verify takes no arguments: the key is read from stdin, never from the command line")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			key, err := readSecretLine(env, "API key: ")
			if err != nil {
				return err
			}
			if key == "" {
				return Usagef("no key on stdin: pipe it in, e.g. printf %%s \"$KEY\" | keyward key verify")
			}
			if req.SourceAddr != "" {
				if _, err := netip.ParseAddr(req.SourceAddr); err != nil {
					return Usagef("--source-addr %q: want an IP address", req.SourceAddr)
				}
			}
			if noConsume {
				f := false
				req.Consume = &f
			}
			req.Key = key
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			v, err := c.VerifyKey(cmd.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(env.Stdout, v); err != nil {
					return err
				}
			} else {
				printVerification(env.Stdout, v, credential.ParseType(key, credential.APIKey) == nil)
			}
			if !v.Valid {
				return errInvalidKey
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Resource, "resource", "", "require the key's scopes to cover this resource, e.g. integrations/maps")
	cmd.Flags().StringVar(&req.SourceAddr, "source-addr", "", "the address the key was presented from (checked against its CIDRs)")
	cmd.Flags().BoolVar(&noConsume, "no-consume", false, "report the key's state without using its rate or quota")
	return cmd
}

func printVerification(w io.Writer, v *client.KeyVerification, wellFormed bool) {
	line := func(k, val string) { fmt.Fprintf(w, "%-14s%s\n", k+":", val) }
	line("Valid", yesNo(v.Valid))
	line("Code", v.Code)
	if v.Message != "" {
		line("Reason", v.Message)
	} else if !wellFormed {
		line("Reason", "not a keyward API key (wrong length, prefix or checksum)")
	}
	if v.KeyID == "" {
		return
	}
	line("Key ID", v.KeyID)
	line("Name", v.Name)
	if v.Owner != "" {
		line("Owner", v.Owner)
	}
	line("Environment", v.Project+"/"+v.Env+" ("+v.EnvironmentKind+")")
	line("Scopes", listOrNone(v.Scopes))
	if len(v.Meta) > 0 {
		line("Meta", string(v.Meta))
	}
	if v.Remaining != nil {
		line("Remaining", fmt.Sprint(*v.Remaining))
	}
	if rl := v.RateLimit; rl != nil {
		line("Rate limit", fmt.Sprintf("%d of %d left, full again in %ds", rl.Remaining, rl.Limit, rl.Reset))
	}
	line("Expires", expiry(v.ExpiresAt))
}

// printKeyInfo writes a key description for people.
func printKeyInfo(w io.Writer, k *client.KeyInfo) {
	line := func(name, v string) { fmt.Fprintf(w, "%-14s%s\n", name+":", v) }
	line("ID", k.ID)
	line("Name", k.Name)
	if k.Owner != "" {
		line("Owner", k.Owner)
	}
	line("Environment", k.Project+"/"+k.Env+" ("+k.EnvironmentKind+" key)")
	line("Status", k.Status)
	line("Scopes", listOrNone(k.Scopes))
	line("Expires", expiry(k.ExpiresAt))
	if k.Rate != "" {
		line("Rate limit", k.Rate)
	}
	if k.Quota > 0 {
		q := fmt.Sprintf("%d", k.Quota)
		if k.Remaining != nil {
			q = fmt.Sprintf("%d of %d left", *k.Remaining, k.Quota)
		}
		if k.Refill != "" {
			q += fmt.Sprintf(", refilled %s to %d", k.Refill, k.RefillAmount)
		}
		line("Quota", q)
	}
	if len(k.CIDRs) > 0 {
		line("CIDRs", strings.Join(k.CIDRs, ", "))
	}
	if len(k.Meta) > 0 {
		line("Meta", string(k.Meta))
	}
	if k.GraceUntil != nil {
		line("Grace until", k.GraceUntil.UTC().Format(time.RFC3339))
	}
	if k.RevokedAt != nil {
		line("Revoked", k.RevokedAt.UTC().Format(time.RFC3339))
	}
	if k.DisabledAt != nil {
		line("Disabled", "since "+k.DisabledAt.UTC().Format(time.RFC3339)+" (keyward key update --enable lets it work again)")
	}
	if k.RotatedFrom != "" {
		line("Rotated from", k.RotatedFrom)
	}
	if k.RotatedTo != "" {
		line("Rotated to", k.RotatedTo)
	}
	line("Created", k.CreatedAt.UTC().Format(time.RFC3339)+" by "+k.CreatedBy)
	if k.LastUsedAt != nil {
		line("Last used", k.LastUsedAt.UTC().Format(time.RFC3339)+" from "+k.LastUsedAddr)
	} else {
		line("Last used", "never")
	}
}
