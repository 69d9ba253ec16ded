package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/keyward/keyward/internal/ratelimit"
	"github.com/spf13/cobra"
)

// checkDuration validates a duration flag the way the server reads it: a Go
// duration ("15m", "1h30m") or a whole number of seconds. Empty is allowed.
func checkDuration(flag, s string) error {
	if s == "" {
		return nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil && strconv.FormatUint(n, 10) == s {
		return nil
	}
	return Usagef("--%s %q: want a duration such as 15m or 1h", flag, s)
}

func newTokenCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, look up, renew and revoke tokens",
		Long: `Tokens are short-lived bearer credentials. A token can create child tokens
that never exceed it (policies, environments, networks, lifetime); revoking a
token revokes its children too. Tokens are named by their accessor, which is
not a credential: it can look up, renew and revoke a token, but not use it.`,
		Example: `  keyward token create --policy payments-ci --ttl 10m
  keyward token revoke --accessor 3f2a9c0d1b`,
	}
	addGlobals(cmd, g)
	cmd.AddCommand(tokenCreateCmd(env, g), tokenLookupCmd(env, g), tokenRenewCmd(env, g), tokenRevokeCmd(env, g), tokenIntrospectCmd(env, g))
	return cmd
}

func tokenCreateCmd(env *Env, g *globals) *cobra.Command {
	var (
		req  client.CreateTokenRequest
		meta []string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a child token of the current token (printed once)",
		Long: `Create a child of the current token. It may narrow, never widen, what the
current token may do: a subset of its policies, environments and networks, a
shorter life, a number of uses, a slower rate. The new token is printed once.

--rate limits the requests the new token makes, every one of them (refused
ones too): N/sec, N/min, N/hour, N/day or N/30s. Over it, keyward answers 429
with Retry-After and RateLimit-* headers. A child of a token with a rate gets
that rate unless it asks for a slower one; a faster one is refused. Rates are
counted per keyward node: with N nodes a token may make up to N times its
rate.

--meta labels the new token (up to 16 KEY=VALUE pairs; keys of A-Z a-z 0-9
_ . -, values of at most 512 bytes); token lookup shows them. A child does not
inherit its parent's meta.`,
		Example: `  keyward token create --policy payments-ci --ttl 10m --bound-env staging
  keyward token create --ttl 1h --max-uses 1 --bound-cidr 10.0.0.0/8 -o json
  keyward token create --policy mobile-app --ttl 15m --rate 100/min
  keyward token create --ttl 30m --meta team=payments --meta ticket=OPS-142`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			if err := checkDuration("ttl", req.TTL); err != nil {
				return err
			}
			if err := checkDuration("max-ttl", req.MaxTTL); err != nil {
				return err
			}
			if req.MaxUses < 0 {
				return Usagef("--max-uses must not be negative")
			}
			if _, err := ratelimit.ParseLimit(req.Rate); err != nil {
				return Usagef("--rate: %v", err)
			}
			if req.Meta, err = parseMeta(meta); err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			it, err := c.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			printWarnings(env, it.Warnings)
			return printIssuedToken(env, asJSON, it)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&req.Policies, "policy", nil, "a policy of the new token (repeatable; default: the current token's)")
	f.StringVar(&req.TTL, "ttl", "", "lifetime until renewed, e.g. 10m")
	f.StringVar(&req.MaxTTL, "max-ttl", "", "lifetime that renewals cannot pass, e.g. 8h")
	f.StringArrayVar(&req.BoundEnvs, "bound-env", nil, "an environment the token is limited to (repeatable)")
	f.StringArrayVar(&req.BoundCIDRs, "bound-cidr", nil, "a network the token may be used from (repeatable)")
	f.IntVar(&req.MaxUses, "max-uses", 0, "number of requests the token may make (0: unlimited)")
	f.StringVar(&req.Rate, "rate", "", "requests per period the token may make, e.g. 100/min (default: the current token's)")
	f.StringArrayVar(&meta, "meta", nil, "a KEY=VALUE label of the new token (repeatable)")
	return cmd
}

// parseMeta reads --meta KEY=VALUE arguments (the value may hold '='); the
// server checks keys and values. An error shows no value.
func parseMeta(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	meta := make(map[string]string, len(args))
	for i, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, Usagef("--meta: want KEY=VALUE, but argument %d has no '='", i+1)
		}
		if _, dup := meta[k]; dup {
			return nil, Usagef("--meta: key %q is given twice", k)
		}
		meta[k] = v
	}
	return meta, nil
}

// printTokenInfo writes a token description for people.
func printTokenInfo(w io.Writer, ti *client.TokenInfo) {
	line := func(k, v string) { fmt.Fprintf(w, "%-14s%s\n", k+":", v) }
	line("Accessor", ti.Accessor)
	line("Principal", ti.Principal)
	line("Auth method", ti.AuthMethod)
	line("Policies", listOrNone(ti.Policies))
	if ti.TTL != "" {
		line("TTL", ti.TTL)
	}
	line("Expires", expiry(ti.ExpiresAt))
	if ti.MaxExpiresAt != nil {
		line("Max expires", ti.MaxExpiresAt.UTC().Format(time.RFC3339))
	}
	line("Renewable", yesNo(ti.Renewable))
	if ti.MaxUses > 0 {
		line("Uses", fmt.Sprintf("%d of %d", ti.Uses, ti.MaxUses))
	}
	if ti.Rate != "" {
		line("Rate limit", ti.Rate)
	}
	if len(ti.BoundEnvs) > 0 {
		line("Bound envs", strings.Join(ti.BoundEnvs, ", "))
	}
	if len(ti.BoundCIDRs) > 0 {
		line("Bound CIDRs", strings.Join(ti.BoundCIDRs, ", "))
	}
	if ti.Parent != "" {
		line("Parent", ti.Parent)
	}
	label := "Meta:" // one KEY=VALUE a line, by key
	for _, k := range slices.Sorted(maps.Keys(ti.Meta)) {
		fmt.Fprintf(w, "%-14s%s=%s\n", label, k, ti.Meta[k])
		label = ""
	}
	if !ti.CreatedAt.IsZero() {
		line("Created", ti.CreatedAt.UTC().Format(time.RFC3339))
	}
	if ti.RevokedAt != nil {
		line("Revoked", ti.RevokedAt.UTC().Format(time.RFC3339))
	}
	if ti.Cnf != nil {
		line("Bound key", ti.Cnf.JKT+" (DPoP)")
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func tokenLookupCmd(env *Env, g *globals) *cobra.Command {
	var accessor string
	cmd := &cobra.Command{
		Use:   "lookup [--accessor ACCESSOR]",
		Short: "Describe the current token, or the token with an accessor",
		Example: `  keyward token lookup
  keyward token lookup --accessor 3f2a9c0d1b -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			var ti *client.TokenInfo
			if accessor != "" {
				ti, err = c.LookupAccessor(cmd.Context(), accessor)
			} else {
				ti, err = c.LookupSelf(cmd.Context())
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, ti)
			}
			printTokenInfo(env.Stdout, ti)
			return nil
		},
	}
	cmd.Flags().StringVar(&accessor, "accessor", "", "the accessor of another token (default: the current token)")
	return cmd
}

func tokenRenewCmd(env *Env, g *globals) *cobra.Command {
	var accessor, increment string
	cmd := &cobra.Command{
		Use:   "renew [--accessor ACCESSOR] [--increment 1h]",
		Short: "Extend a token's life, never past its maximum",
		Example: `  keyward token renew
  keyward token renew --accessor 3f2a9c0d1b --increment 30m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			if err := checkDuration("increment", increment); err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			var ti *client.TokenInfo
			if accessor != "" {
				ti, err = c.RenewAccessor(cmd.Context(), accessor, increment)
			} else {
				ti, err = c.RenewSelf(cmd.Context(), increment)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, ti)
			}
			fmt.Fprintf(env.Stdout, "Renewed token %s: expires %s\n", ti.Accessor, expiry(ti.ExpiresAt))
			return nil
		},
	}
	cmd.Flags().StringVar(&accessor, "accessor", "", "the accessor of another token (default: the current token)")
	cmd.Flags().StringVar(&increment, "increment", "", "extend by this much (default: the token's TTL)")
	return cmd
}

func tokenRevokeCmd(env *Env, g *globals) *cobra.Command {
	var accessor string
	var force bool
	cmd := &cobra.Command{
		Use:   "revoke [--accessor ACCESSOR]",
		Short: "Revoke a token and every token created from it",
		Long: `Revoke the current token, or the token with an accessor, together with all
the tokens created from it. The revocation is in force on every node within
a second. To revoke the saved token and delete its file, use keyward logout.

A token holding the root policy is revoked only with --force: revoking the
root token from 'keyward operator init' (and every token made from it) can
leave no one able to administer keyward. Create another admin token first.`,
		Example: `  keyward token revoke --accessor 3f2a9c0d1b
  KEYWARD_TOKEN=$CHILD keyward token revoke`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			if !force {
				var info *client.TokenInfo
				if accessor != "" {
					info, err = c.LookupAccessor(cmd.Context(), accessor)
				} else {
					info, err = c.LookupSelf(cmd.Context())
				}
				switch {
				case client.IsCode(err, "permission_denied"):
					// May revoke but not read the token: the guard is the
					// CLI's courtesy, not a permission; go on.
					info = &client.TokenInfo{}
				case err != nil:
					return err
				}
				if slices.Contains(info.Policies, "root") {
					return &ExitError{Code: ExitFailure, Err: fmt.Errorf("token %s holds the root policy: revoking it (and the tokens made from it) may leave no one able to administer keyward; "+
						"create another admin token first, then add --force", info.Accessor)}
				}
			}
			var n int
			if accessor != "" {
				n, err = c.RevokeAccessor(cmd.Context(), accessor)
			} else {
				n, err = c.RevokeSelf(cmd.Context())
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, map[string]int{"revoked": n})
			}
			fmt.Fprintf(env.Stdout, "Revoked %s\n", plural(n, "token"))
			return nil
		},
	}
	cmd.Flags().StringVar(&accessor, "accessor", "", "the accessor of the token to revoke (default: the current token)")
	cmd.Flags().BoolVar(&force, "force", false, "revoke a token that holds the root policy too")
	return cmd
}

func tokenIntrospectCmd(env *Env, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "introspect",
		Short: "Describe a token read from standard input (OAuth introspection, RFC 7662)",
		Long: `Describe a token someone presented to you: whether it is active, its policies
(scope), subject, expiry, rate limit and, for a DPoP-bound token, the
thumbprint of its key. The token is read as one line of standard input, never as an argument,
so it stays out of shell history. The current token needs read on
sys/introspect.`,
		Example: `  printf %s "$PRESENTED_TOKEN" | keyward token introspect
  keyward token introspect -o json < token.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			tok, err := newLineInput(env).line()
			if err != nil {
				return fmt.Errorf("reading the token from standard input: %w", err)
			}
			tok = strings.TrimSpace(tok)
			if tok == "" {
				return Usagef("give the token to describe on standard input")
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			in, err := c.Introspect(cmd.Context(), tok)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, in)
			}
			w := env.Stdout
			line := func(k, v string) { fmt.Fprintf(w, "%-12s%s\n", k+":", v) }
			if !in.Active {
				line("Active", "no (unknown, expired or revoked)")
				return nil
			}
			line("Active", "yes")
			line("Subject", in.Sub)
			line("Policies", listOrNone(strings.Fields(in.Scope)))
			line("Type", in.TokenType)
			if in.Exp > 0 {
				line("Expires", time.Unix(in.Exp, 0).UTC().Format(time.RFC3339))
			}
			if in.ClientID != "" {
				line("Client", in.ClientID)
			}
			if in.Cnf != nil {
				line("Bound key", in.Cnf.JKT)
			}
			if in.Rate != "" {
				line("Rate limit", in.Rate)
			}
			return nil
		},
	}
	return cmd
}

// printIssuedToken shows a token just issued (once: it is not kept).
func printIssuedToken(env *Env, asJSON bool, it *client.IssuedToken) error {
	if asJSON {
		return printJSON(env.Stdout, it)
	}
	w := env.Stdout
	fmt.Fprintf(w, "Token:      %s\n", it.Token)
	fmt.Fprintf(w, "Accessor:   %s\n", it.Accessor)
	fmt.Fprintf(w, "Principal:  %s\n", it.Principal)
	fmt.Fprintf(w, "Policies:   %s\n", listOrNone(it.Policies))
	fmt.Fprintf(w, "Expires:    %s\n", expiry(it.ExpiresAt))
	if it.Rate != "" {
		fmt.Fprintf(w, "Rate limit: %s\n", it.Rate)
	}
	fmt.Fprintln(env.Stderr, "The token is shown once: hand it over now. Its accessor names it later.")
	return nil
}
