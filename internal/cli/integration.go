package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/spf13/cobra"
)

func newIntegrationCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:     "integration",
		Aliases: []string{"integrations"},
		Short:   "Manage gateway integrations: third-party APIs called with a key callers never see",
		Long: `An integration is an upstream API, the secret holding its key, and how keyward
injects the key into calls. Callers with a token allowed "proxy" on
integrations/NAME call the API through keyward at

  $KEYWARD_ADDR/v1/gateway/NAME/<path below the upstream>

and never hold the key. Creating or changing an integration needs write on
integrations/NAME and read on its secret. See docs/gateway.md.`,
	}
	addGlobals(cmd, g)
	cmd.AddCommand(integrationCreateCmd(env, g), integrationUpdateCmd(env, g), integrationGetCmd(env, g),
		integrationListCmd(env, g), integrationDeleteCmd(env, g))
	return cmd
}

// specFlags are the settings of an integration as flags.
type specFlags struct {
	upstream, secret, inject, timeout, maxBody string
	rate, callerRate                           string
	methods, paths, strip                      []string
	allowPrivate                               bool
}

func (f *specFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.upstream, "upstream", "", "base URL of the API, e.g. https://api.example.com/v2")
	fl.StringVar(&f.secret, "secret", "", "PROJECT/ENV/PATH of the secret holding the key")
	fl.StringVar(&f.inject, "inject", "", "where the key goes: 'header:NAME=TEMPLATE' (TEMPLATE holds {{secret}}), 'query:NAME' or 'basic:USER'")
	fl.StringArrayVar(&f.methods, "method", nil, "allowed method (repeatable; default all of GET HEAD POST PUT PATCH DELETE OPTIONS)")
	fl.StringArrayVar(&f.paths, "path", nil, "allowed path glob below the upstream, '*' one segment, '**' any (repeatable; default /**)")
	fl.StringVar(&f.timeout, "timeout", "", "longest a whole call may take (default 30s)")
	fl.StringVar(&f.maxBody, "max-body", "", "largest request body, e.g. 1MiB or 500KB (default 10MiB)")
	fl.StringArrayVar(&f.strip, "strip-header", nil, "response header to remove (repeatable)")
	fl.BoolVar(&f.allowPrivate, "allow-private", false, "allow an upstream on loopback or a private network, and plain http")
	fl.StringVar(&f.rate, "rate", "", "most calls through the integration, all callers together, e.g. 100/s or 6000/min (per node; empty: none)")
	fl.StringVar(&f.callerRate, "caller-rate", "", "most calls of each token or API key through the integration, e.g. 60/min (per node; empty: none)")
}

// apply sets the flags the user gave on spec.
func (f *specFlags) apply(cmd *cobra.Command, spec *client.IntegrationSpec) error {
	ch := cmd.Flags().Changed
	if ch("upstream") {
		spec.Upstream = f.upstream
	}
	if ch("secret") {
		spec.Secret = f.secret
	}
	if ch("inject") {
		spec.Inject = f.inject
	}
	if ch("method") {
		spec.Methods = splitList(f.methods)
	}
	if ch("path") {
		spec.Paths = splitList(f.paths)
	}
	if ch("strip-header") {
		spec.StripResponseHeaders = splitList(f.strip)
	}
	if ch("timeout") {
		d, err := time.ParseDuration(f.timeout)
		if err != nil || d <= 0 {
			return Usagef("--timeout %q: want a duration such as 10s or 2m", f.timeout)
		}
		spec.Timeout = d.String()
	}
	if ch("max-body") {
		n, err := parseSize(f.maxBody) // shared with scan
		if err != nil {
			return Usagef("--max-body: %v", err)
		}
		spec.MaxBodyBytes = n
	}
	if ch("allow-private") {
		spec.AllowPrivate = f.allowPrivate
	}
	if ch("rate") {
		spec.Rate = f.rate
	}
	if ch("caller-rate") {
		spec.CallerRate = f.callerRate
	}
	return nil
}

// splitList accepts repeated flags and comma-separated values alike.
func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

const integrationExamples = `  keyward integration create maps --upstream https://maps.googleapis.com/maps/api \
      --secret mobile/prod/google-maps-key --inject 'query:key' \
      --method GET --path '/geocode/**' --path '/place/*/json'
  keyward integration create stripe --upstream https://api.stripe.com \
      --secret payments/prod/stripe-key --inject 'header:Authorization=Bearer {{secret}}' \
      --method GET --method POST --path '/v1/**' --timeout 10s --max-body 1MiB
  keyward integration create twilio --upstream https://api.twilio.com/2010-04-01 \
      --secret comms/prod/twilio-token --inject 'basic:ACCOUNT_SID' --strip-header X-Twilio-Debug`

func integrationCreateCmd(env *Env, g *globals) *cobra.Command {
	var f specFlags
	cmd := &cobra.Command{
		Use:   "create NAME --upstream URL --secret PROJECT/ENV/PATH --inject SPEC",
		Short: "Create an integration",
		Long: `Create an integration. NAME is 1 to 63 lowercase letters, digits and '-'.

The upstream must be https; upstreams on loopback, private, link-local and
other internal addresses (and plain http) need --allow-private. The key is read
from the secret at call time; after a rotation the next call uses the new one.`,
		Example: integrationExamples,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, req := range []string{"upstream", "secret", "inject"} {
				if !cmd.Flags().Changed(req) {
					return Usagef("--%s is required", req)
				}
			}
			spec := client.IntegrationSpec{Name: args[0]}
			if err := f.apply(cmd, &spec); err != nil {
				return err
			}
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			in, err := c.CreateIntegration(cmd.Context(), spec)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, in)
			}
			fmt.Fprintf(env.Stdout, "Created integration %s -> %s\nCall it at %s\n", in.Name, in.Upstream, c.GatewayURL(in.Name, "<path>"))
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func integrationUpdateCmd(env *Env, g *globals) *cobra.Command {
	var f specFlags
	cmd := &cobra.Command{
		Use:   "update NAME [flags]",
		Short: "Change some settings of an integration",
		Long: `Change the settings given as flags and keep the others. A list flag
(--method, --path, --strip-header) replaces the whole list.`,
		Example: `  keyward integration update stripe --timeout 20s
  keyward integration update maps --path '/geocode/**' --path '/directions/**'
  keyward integration update stripe --secret payments/prod/stripe-key-v2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			cur, err := c.GetIntegration(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			spec := cur.IntegrationSpec
			if err := f.apply(cmd, &spec); err != nil {
				return err
			}
			in, err := c.UpdateIntegration(cmd.Context(), args[0], spec)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, in)
			}
			fmt.Fprintf(env.Stdout, "Updated integration %s\n", in.Name)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func integrationGetCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show an integration's settings (never the key)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			in, err := c.GetIntegration(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, in)
			}
			printIntegration(env.Stdout, in, c.GatewayURL(in.Name, "<path>"))
			return nil
		},
	}
}

func printIntegration(w io.Writer, in *client.Integration, callURL string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	strip := strings.Join(in.StripResponseHeaders, ", ")
	if strip == "" {
		strip = "-"
	}
	for _, row := range [][2]string{
		{"name", in.Name}, {"upstream", in.Upstream}, {"secret", in.Secret}, {"inject", in.Inject},
		{"methods", strings.Join(in.Methods, ", ")}, {"paths", strings.Join(in.Paths, ", ")},
		{"timeout", in.Timeout}, {"max body", strconv.FormatInt(in.MaxBodyBytes, 10) + " bytes"},
		{"strip headers", strip}, {"allow private", strconv.FormatBool(in.AllowPrivate)},
		{"rate", dash(in.Rate)}, {"caller rate", dash(in.CallerRate)},
		{"created", in.CreatedAt.Format(time.RFC3339) + " by " + in.CreatedBy},
		{"updated", in.UpdatedAt.Format(time.RFC3339) + " by " + in.UpdatedBy},
		{"call at", callURL},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	tw.Flush()
}

func integrationListCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List integrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			list, err := c.ListIntegrations(cmd.Context())
			if err != nil {
				return err
			}
			return printList(env.Stdout, asJSON, list, "NAME\tUPSTREAM\tSECRET\tINJECT\tMETHODS", func(in client.Integration) string {
				return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", in.Name, in.Upstream, in.Secret, in.Inject, strings.Join(in.Methods, ","))
			})
		},
	}
}

func integrationDeleteCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an integration; calls through it stop at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			if err := c.DeleteIntegration(cmd.Context(), args[0]); err != nil {
				return err
			}
			if ok, _ := g.json(); ok {
				return printJSON(env.Stdout, map[string]any{"deleted": args[0]})
			}
			fmt.Fprintf(env.Stdout, "Deleted integration %s\n", args[0])
			return nil
		},
	}
}
