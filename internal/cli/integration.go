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

(or at the server's data-plane address, when it has one: create and get
print where) and never hold the key. Creating or changing an integration needs write on
integrations/NAME and read on its secret. See docs/gateway.md.`,
	}
	addGlobals(cmd, g)
	cmd.AddCommand(integrationCreateCmd(env, g), integrationUpdateCmd(env, g), integrationGetCmd(env, g),
		integrationListCmd(env, g), integrationDeleteCmd(env, g), integrationCheckCmd(env, g))
	return cmd
}

func integrationCheckCmd(env *Env, g *globals) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check NAME [--path /v1/me]",
		Short: "Try an integration: its secret, token, upstream connection and, with --path, a call (exit 1 on failure)",
		Long: `Try an integration the way a call would use it, step by step, and stop at
the first failure:

  integration  its stored settings are valid
  secret       its secret can be read and injected
  token        (OAuth 2.0) the token endpoint issues a token now
  connect      the upstream resolves to an allowed address and answers
               a connection (and a TLS handshake for https)
  request      with --path: a GET of that path with the credential
               injected; only the status is shown

Nothing of the secret, a token or the answer's body is shown. Needs write
on integrations/NAME. Exit status 1 when a step fails.`,
		Example: `  keyward integration check stripe
  keyward integration check stripe --path /v1/balance`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if path != "" && !strings.HasPrefix(path, "/") {
				return Usagef("--path %q: want an absolute path below the upstream, e.g. /v1/me", path)
			}
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			rep, err := c.CheckIntegration(cmd.Context(), args[0], path)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(env.Stdout, rep); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
				for _, s := range rep.Steps {
					mark := "ok"
					if !s.OK {
						mark = "FAILED"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t(%d ms)\n", s.Step, mark, s.Detail, s.Millis)
				}
				tw.Flush()
			}
			if !rep.OK {
				return &ExitError{Code: ExitFailure}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "path", "", "also GET this path below the upstream with the credential (only the status is shown)")
	return cmd
}

// specFlags are the settings of an integration as flags.
type specFlags struct {
	upstream, secret, inject, timeout, maxBody string
	rate, callerRate                           string
	methods, paths, strip                      []string
	allowPrivate, websocket                    bool
	// The oauth2 object, with --inject oauth2.
	tokenURL, clientID, audience, clientAuth string
	scopes                                   []string
}

// oauth2Flags fill the oauth2 object; they go only with --inject oauth2.
var oauth2Flags = []string{"token-url", "client-id", "scope", "audience", "client-auth"}

func (f *specFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.upstream, "upstream", "", "base URL of the API, e.g. https://api.example.com/v2")
	fl.StringVar(&f.secret, "secret", "", "PROJECT/ENV/PATH of the secret holding the key")
	fl.StringVar(&f.inject, "inject", "", "where the key goes: 'header:NAME=TEMPLATE' (TEMPLATE holds {{secret}}), 'query:NAME', 'basic:USER', or 'oauth2' (the secret is an OAuth 2.0 client secret; see --token-url)")
	fl.StringArrayVar(&f.methods, "method", nil, "allowed method (repeatable; default all of GET HEAD POST PUT PATCH DELETE OPTIONS)")
	fl.StringArrayVar(&f.paths, "path", nil, "allowed path glob below the upstream, '*' one segment, '**' any (repeatable; default /**)")
	fl.StringVar(&f.timeout, "timeout", "", "longest a whole call may take (default 30s); of a WebSocket session, the handshake only")
	fl.StringVar(&f.maxBody, "max-body", "", "largest request body, e.g. 1MiB or 500KB (default 10MiB)")
	fl.StringArrayVar(&f.strip, "strip-header", nil, "response header to remove (repeatable)")
	fl.BoolVar(&f.allowPrivate, "allow-private", false, "allow an upstream on loopback or a private network, and plain http")
	fl.StringVar(&f.rate, "rate", "", "most calls through the integration, all callers together, e.g. 100/s or 6000/min (empty: none)")
	fl.StringVar(&f.callerRate, "caller-rate", "", "most calls of each token or API key through the integration, e.g. 60/min (empty: none)")
	fl.BoolVar(&f.websocket, "websocket", false, "let callers open WebSocket sessions through the integration (needs GET among the methods; --websocket=false turns it off)")
	fl.StringVar(&f.tokenURL, "token-url", "", "with --inject oauth2: the token endpoint keyward gets access tokens from (client credentials grant)")
	fl.StringVar(&f.clientID, "client-id", "", "with --inject oauth2: the OAuth client id")
	fl.StringArrayVar(&f.scopes, "scope", nil, "with --inject oauth2: a scope to request (repeatable, or several separated by spaces; default: the server's)")
	fl.StringVar(&f.audience, "audience", "", "with --inject oauth2: the audience parameter to send (Auth0, Okta)")
	fl.StringVar(&f.clientAuth, "client-auth", "", "with --inject oauth2: how the client secret is sent to the token endpoint: basic (HTTP basic auth) or post (in the form) (default basic)")
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
	if ch("websocket") {
		spec.WebSocket = f.websocket
	}
	return f.applyOAuth2(cmd, spec)
}

// applyOAuth2 sets the oauth2 flags the user gave on spec.OAuth2 when the
// integration's inject (given or, on update, kept) is oauth2, and drops
// spec.OAuth2 when it is another kind.
func (f *specFlags) applyOAuth2(cmd *cobra.Command, spec *client.IntegrationSpec) error {
	ch := cmd.Flags().Changed
	if spec.Inject != client.InjectOAuth2 {
		for _, name := range oauth2Flags {
			if !ch(name) {
				continue
			}
			if ch("inject") || spec.Inject == "" {
				return Usagef("--%s goes only with --inject oauth2", name)
			}
			return Usagef("--%s goes only with --inject oauth2 (this integration injects %s)", name, spec.Inject)
		}
		spec.OAuth2 = nil
		return nil
	}
	var o client.OAuth2
	if spec.OAuth2 != nil {
		o = *spec.OAuth2
	}
	if ch("token-url") {
		o.TokenURL = f.tokenURL
	}
	if ch("client-id") {
		o.ClientID = f.clientID
	}
	if ch("scope") {
		o.Scopes = splitScopes(f.scopes)
	}
	if ch("audience") {
		o.Audience = f.audience
	}
	if ch("client-auth") {
		if f.clientAuth != "basic" && f.clientAuth != "post" {
			return Usagef("--client-auth %q: want basic or post", f.clientAuth)
		}
		o.AuthStyle = f.clientAuth
	}
	if o.TokenURL == "" {
		return Usagef("--token-url is required with --inject oauth2")
	}
	if o.ClientID == "" {
		return Usagef("--client-id is required with --inject oauth2")
	}
	spec.OAuth2 = &o
	return nil
}

// splitScopes accepts repeated flags and space-separated values alike
// ("--scope 'read write'", the form of OAuth's scope parameter).
func splitScopes(vs []string) []string {
	var out []string
	for _, v := range vs {
		out = append(out, strings.Fields(v)...)
	}
	return out
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
      --secret comms/prod/twilio-token --inject 'basic:ACCOUNT_SID' --strip-header X-Twilio-Debug
  keyward integration create crm --upstream https://example.my.salesforce.com \
      --secret crm/prod/salesforce-client-secret --inject oauth2 \
      --token-url https://example.my.salesforce.com/services/oauth2/token \
      --client-id 3MVG9... --scope api
  keyward integration create openai-realtime --upstream https://api.openai.com \
      --secret ai/prod/openai-key --inject 'header:Authorization=Bearer {{secret}}' \
      --method GET --path '/v1/realtime' --websocket`

func integrationCreateCmd(env *Env, g *globals) *cobra.Command {
	var f specFlags
	cmd := &cobra.Command{
		Use:   "create NAME --upstream URL --secret PROJECT/ENV/PATH --inject SPEC",
		Short: "Create an integration",
		Long: `Create an integration. NAME is 1 to 63 lowercase letters, digits and '-'.

The upstream must be https; upstreams on loopback, private, link-local and
other internal addresses (and plain http) need --allow-private. The key is read
from the secret at call time; after a rotation the next call uses the new one.

With --inject oauth2 the secret is an OAuth 2.0 client secret: keyward gets
access tokens from --token-url (client credentials grant, as --client-id,
with each --scope and --audience) and sends them to the upstream as
"Authorization: Bearer TOKEN". --token-url and --client-id are required
then, and these flags go with no other --inject.

With --websocket callers may open WebSocket sessions through the
integration (a GET with "Upgrade: websocket"); it needs GET among the
methods. --timeout then bounds the handshake only.`,
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
			fmt.Fprintf(env.Stdout, "Created integration %s -> %s\nCall it at %s\n", in.Name, in.Upstream, c.CallURL(in, "<path>"))
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
(--method, --path, --strip-header, --scope) replaces the whole list.

The OAuth 2.0 flags (--token-url, --client-id, --scope, --audience,
--client-auth) change an integration that injects oauth2, or one being
switched to it with --inject oauth2; switching to another --inject drops
its OAuth 2.0 settings.`,
		Example: `  keyward integration update stripe --timeout 20s
  keyward integration update maps --path '/geocode/**' --path '/directions/**'
  keyward integration update stripe --secret payments/prod/stripe-key-v2
  keyward integration update crm --scope api --scope refresh_token
  keyward integration update openai-realtime --websocket=false`,
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
			printIntegration(env.Stdout, in, c.CallURL(in, "<path>"))
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
	rows := [][2]string{
		{"name", in.Name}, {"upstream", in.Upstream}, {"secret", in.Secret}, {"inject", in.Inject},
		{"methods", strings.Join(in.Methods, ", ")}, {"paths", strings.Join(in.Paths, ", ")},
		{"timeout", in.Timeout}, {"max body", strconv.FormatInt(in.MaxBodyBytes, 10) + " bytes"},
		{"strip headers", strip}, {"allow private", strconv.FormatBool(in.AllowPrivate)},
		{"rate", dash(in.Rate)}, {"caller rate", dash(in.CallerRate)}, {"websocket", yesNo(in.WebSocket)},
	}
	if o := in.OAuth2; o != nil {
		auth := o.AuthStyle
		if auth == "" {
			auth = "basic"
		}
		rows = append(rows, [][2]string{
			{"token url", o.TokenURL}, {"client id", o.ClientID}, {"scopes", dash(strings.Join(o.Scopes, " "))},
			{"audience", dash(o.Audience)}, {"client auth", auth},
		}...)
	}
	rows = append(rows, [][2]string{
		{"created", in.CreatedAt.Format(time.RFC3339) + " by " + in.CreatedBy},
		{"updated", in.UpdatedAt.Format(time.RFC3339) + " by " + in.UpdatedBy},
		{"call at", callURL},
	}...)
	for _, row := range rows {
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
