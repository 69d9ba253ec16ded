package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// maxIssuerFile bounds an issuer document read from a file.
const maxIssuerFile = 1 << 20

func durOrDefault(d client.Duration) string {
	if d == 0 {
		return "default"
	}
	return d.String()
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// simpleNameCmd is a command that calls fn(NAME) and prints done.
func simpleNameCmd(env *Env, g *globals, use, short, example string, fn func(c *client.Client, cmd *cobra.Command, name string) error, done string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			if err := fn(c, cmd, args[0]); err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, map[string]string{"name": args[0], "result": strings.Fields(done)[0]})
			}
			fmt.Fprintf(env.Stdout, done+"\n", args[0])
			return nil
		},
	}
}

func newUserCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage users (people who log in with a password and TOTP)",
		Example: `  keyward user create alice --policy dev
  keyward user totp enroll alice`,
	}
	addGlobals(cmd, g)
	totp := &cobra.Command{Use: "totp", Short: "Enroll or remove a user's TOTP second factor",
		Example: "  keyward user totp enroll alice\n  keyward user totp remove alice"}
	totp.AddCommand(userTOTPEnrollCmd(env, g),
		simpleNameCmd(env, g, "remove NAME", "Remove a user's TOTP enrolment", "  keyward user totp remove alice",
			func(c *client.Client, cmd *cobra.Command, n string) error { return c.RemoveTOTP(cmd.Context(), n) }, "removed TOTP of user %s"))
	cmd.AddCommand(userCreateCmd(env, g), userListCmd(env, g), userGetCmd(env, g),
		simpleNameCmd(env, g, "disable NAME", "Disable a user: logins fail and every token issued to the user is revoked", "  keyward user disable alice",
			func(c *client.Client, cmd *cobra.Command, n string) error { return c.DisableUser(cmd.Context(), n) }, "disabled user %s"),
		simpleNameCmd(env, g, "enable NAME", "Enable a disabled user", "  keyward user enable alice",
			func(c *client.Client, cmd *cobra.Command, n string) error { return c.EnableUser(cmd.Context(), n) }, "enabled user %s"),
		userPasswdCmd(env, g), totp)
	return cmd
}

func userCreateCmd(env *Env, g *globals) *cobra.Command {
	var req client.CreateUserRequest
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a user (the password is asked for twice, or read from stdin)",
		Long: `Create a user who logs in with keyward login NAME. The password is asked for
twice without echo on a terminal, else read as one line of standard input.`,
		Example: `  keyward user create alice --policy dev --policy ops --token-ttl 1h
  printf '%s\n' "$PASSWORD" | keyward user create ci-bot --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			if err := checkDuration("token-ttl", req.TokenTTL); err != nil {
				return err
			}
			if err := checkDuration("token-max-ttl", req.TokenMaxTTL); err != nil {
				return err
			}
			req.Name = args[0]
			if req.Password, err = newLineInput(env).newPassword(passwordStdin); err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			u, err := c.CreateUser(cmd.Context(), req)
			if err != nil {
				return err
			}
			printWarnings(env, u.Warnings)
			if asJSON {
				return printJSON(env.Stdout, u)
			}
			fmt.Fprintf(env.Stdout, "created user %s with policies %s\n", u.Name, listOrNone(u.Policies))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&req.Policies, "policy", nil, "a policy of the user's tokens (repeatable)")
	f.StringVar(&req.TokenTTL, "token-ttl", "", "lifetime of the user's tokens, e.g. 1h (default: the server's)")
	f.StringVar(&req.TokenMaxTTL, "token-max-ttl", "", "maximum lifetime with renewals, e.g. 12h")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password as one line of standard input")
	return cmd
}

func userListCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List users",
		Example: "  keyward user list\n  keyward user list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			us, err := allPages(func(cursor string) ([]client.User, string, error) {
				return c.ListUsers(cmd.Context(), 1000, cursor)
			})
			if err != nil {
				return err
			}
			return printList(env.Stdout, asJSON, us, "NAME\tPOLICIES\tTOTP\tDISABLED\tCREATED", func(u client.User) string {
				return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", u.Name, strings.Join(u.Policies, ","), yesNo(u.TOTPEnrolled), yesNo(u.Disabled), timeOrDash(u.CreatedAt))
			})
		},
	}
}

func userGetCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "get NAME",
		Short:   "Describe a user",
		Example: "  keyward user get alice",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			u, err := c.GetUser(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, u)
			}
			w := env.Stdout
			fmt.Fprintf(w, "Name:           %s\n", u.Name)
			fmt.Fprintf(w, "Policies:       %s\n", listOrNone(u.Policies))
			fmt.Fprintf(w, "Token TTL:      %s\n", durOrDefault(u.TokenTTL))
			fmt.Fprintf(w, "Token max TTL:  %s\n", durOrDefault(u.TokenMaxTTL))
			fmt.Fprintf(w, "TOTP:           %s\n", yesNo(u.TOTPEnrolled))
			fmt.Fprintf(w, "Disabled:       %s\n", yesNo(u.Disabled))
			fmt.Fprintf(w, "Created:        %s\n", timeOrDash(u.CreatedAt))
			fmt.Fprintf(w, "Updated:        %s\n", timeOrDash(u.UpdatedAt))
			return nil
		},
	}
}

func userPasswdCmd(env *Env, g *globals) *cobra.Command {
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a user's password (asked for twice, or read from stdin)",
		Example: `  keyward user passwd alice
  printf '%s\n' "$NEW_PASSWORD" | keyward user passwd alice --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			pw, err := newLineInput(env).newPassword(passwordStdin)
			if err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			if err := c.SetUserPassword(cmd.Context(), args[0], pw); err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, map[string]string{"name": args[0], "result": "password set"})
			}
			fmt.Fprintf(env.Stdout, "set the password of user %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password as one line of standard input")
	return cmd
}

func userTOTPEnrollCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "enroll NAME",
		Short: "Give a user a TOTP secret (printed once); logins then need a code",
		Long: `Enroll a user in TOTP. The secret and its otpauth:// URL are printed once:
add them to the user's authenticator app now (most apps read the URL as a QR
code). From then on keyward login asks for the six-digit code.`,
		Example: "  keyward user totp enroll alice",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			e, err := c.EnrollTOTP(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, e)
			}
			fmt.Fprintf(env.Stdout, "TOTP secret:  %s\notpauth URL:  %s\n", e.Secret, e.URL)
			fmt.Fprintln(env.Stderr, "Add the secret to the authenticator app now: it is shown once.")
			return nil
		},
	}
}

func newServiceCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Manage service accounts (machines that log in with a client id and secret)",
		Example: `  keyward service create ci --policy payments-ci
  keyward service rotate-secret ci --grace 1h`,
	}
	addGlobals(cmd, g)
	cmd.AddCommand(serviceCreateCmd(env, g), serviceListCmd(env, g), serviceGetCmd(env, g),
		simpleNameCmd(env, g, "disable NAME", "Disable a service account: logins fail and its tokens are revoked", "  keyward service disable ci",
			func(c *client.Client, cmd *cobra.Command, n string) error { return c.DisableService(cmd.Context(), n) }, "disabled service %s"),
		simpleNameCmd(env, g, "enable NAME", "Enable a disabled service account", "  keyward service enable ci",
			func(c *client.Client, cmd *cobra.Command, n string) error { return c.EnableService(cmd.Context(), n) }, "enabled service %s"),
		serviceRotateCmd(env, g))
	return cmd
}

func printServiceCredentials(env *Env, sc *client.ServiceCredentials) {
	fmt.Fprintf(env.Stdout, "Client ID:      %s\nClient secret:  %s\n", sc.ClientID, sc.ClientSecret)
	fmt.Fprintln(env.Stderr, "Store the client secret now: it is shown once and cannot be read back.")
}

func serviceCreateCmd(env *Env, g *globals) *cobra.Command {
	var req client.CreateServiceRequest
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a service account and print its client secret once",
		Long: `Create a service account. Its client id and client secret are printed once:
store the secret in the machine's secret store now. The account logs in with
keyward login --service --client-id ID.`,
		Example: `  keyward service create ci --policy payments-ci --bound-cidr 10.20.0.0/16 --token-ttl 15m
  keyward service create backup -o json > backup-credentials.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			if err := checkDuration("token-ttl", req.TokenTTL); err != nil {
				return err
			}
			if err := checkDuration("token-max-ttl", req.TokenMaxTTL); err != nil {
				return err
			}
			req.Name = args[0]
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			sc, err := c.CreateService(cmd.Context(), req)
			if err != nil {
				return err
			}
			printWarnings(env, sc.Warnings)
			if asJSON {
				return printJSON(env.Stdout, sc)
			}
			fmt.Fprintf(env.Stdout, "created service %s\n", req.Name)
			printServiceCredentials(env, sc)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&req.Policies, "policy", nil, "a policy of the account's tokens (repeatable)")
	f.StringArrayVar(&req.BoundCIDRs, "bound-cidr", nil, "a network the account may log in from (repeatable)")
	f.StringVar(&req.TokenTTL, "token-ttl", "", "lifetime of the account's tokens, e.g. 15m")
	f.StringVar(&req.TokenMaxTTL, "token-max-ttl", "", "maximum lifetime with renewals, e.g. 1h")
	return cmd
}

func serviceListCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List service accounts",
		Example: "  keyward service list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			ss, err := allPages(func(cursor string) ([]client.Service, string, error) {
				return c.ListServices(cmd.Context(), 1000, cursor)
			})
			if err != nil {
				return err
			}
			return printList(env.Stdout, asJSON, ss, "NAME\tCLIENT ID\tPOLICIES\tDISABLED\tCREATED", func(s client.Service) string {
				return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", s.Name, s.ClientID, strings.Join(s.Policies, ","), yesNo(s.Disabled), timeOrDash(s.CreatedAt))
			})
		},
	}
}

func serviceGetCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "get NAME",
		Short:   "Describe a service account (never its secret)",
		Example: "  keyward service get ci",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			s, err := c.GetService(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, s)
			}
			w := env.Stdout
			fmt.Fprintf(w, "Name:             %s\n", s.Name)
			fmt.Fprintf(w, "Client ID:        %s\n", s.ClientID)
			fmt.Fprintf(w, "Policies:         %s\n", listOrNone(s.Policies))
			fmt.Fprintf(w, "Bound CIDRs:      %s\n", listOrNone(s.BoundCIDRs))
			fmt.Fprintf(w, "Token TTL:        %s\n", durOrDefault(s.TokenTTL))
			fmt.Fprintf(w, "Token max TTL:    %s\n", durOrDefault(s.TokenMaxTTL))
			fmt.Fprintf(w, "Disabled:         %s\n", yesNo(s.Disabled))
			fmt.Fprintf(w, "Created:          %s\n", timeOrDash(s.CreatedAt))
			if s.SecretRotatedAt != nil {
				fmt.Fprintf(w, "Secret issued:    %s\n", timeOrDash(*s.SecretRotatedAt))
			}
			if s.PreviousValidUntil != nil {
				fmt.Fprintf(w, "Previous secret:  valid until %s\n", timeOrDash(*s.PreviousValidUntil))
			}
			return nil
		},
	}
}

func serviceRotateCmd(env *Env, g *globals) *cobra.Command {
	var grace string
	cmd := &cobra.Command{
		Use:   "rotate-secret NAME [--grace 1h]",
		Short: "Issue a new client secret; the old one works for a grace period",
		Long: `Issue a new client secret, printed once. The previous secret keeps working
for --grace so running machines can switch over; --grace 0 ends it at once.`,
		Example: `  keyward service rotate-secret ci --grace 1h
  keyward service rotate-secret ci --grace 0   # the old secret leaked`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			if err := checkDuration("grace", grace); err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			sc, err := c.RotateServiceSecret(cmd.Context(), args[0], grace)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, sc)
			}
			fmt.Fprintf(env.Stdout, "rotated the secret of service %s\n", args[0])
			printServiceCredentials(env, sc)
			if sc.PreviousValidUntil != nil {
				fmt.Fprintf(env.Stdout, "The previous secret works until %s.\n", timeOrDash(*sc.PreviousValidUntil))
			} else {
				fmt.Fprintln(env.Stdout, "The previous secret no longer works.")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&grace, "grace", "", "how long the previous secret keeps working (default: the server's)")
	return cmd
}

// issuerDocument turns an issuer file (JSON, or YAML with the same field
// names) into the JSON the API takes. A name in the document must match
// name.
func issuerDocument(data []byte, name string) (_ json.RawMessage, err error) {
	defer func() {
		// The YAML library panics on a few malformed inputs.
		if r := recover(); r != nil {
			err = errors.New("reading the issuer document: malformed YAML")
		}
	}()
	if len(data) > maxIssuerFile {
		return nil, fmt.Errorf("the issuer document is larger than %d bytes", maxIssuerFile)
	}
	var doc any
	if json.Valid(data) {
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, err
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("the issuer document is empty")
			}
			return nil, fmt.Errorf("reading the issuer document: %w", err)
		}
		var extra any
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			return nil, errors.New("the issuer document holds more than one YAML document")
		}
		if doc, err = jsonCompatible(doc, 0); err != nil {
			return nil, err
		}
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, errors.New("the issuer document must be a mapping of fields (issuer_url, audiences, ...)")
	}
	// The API reads durations as strings; a bare number is seconds.
	for _, k := range []string{"token_ttl", "token_max_ttl"} {
		switch v := m[k].(type) {
		case int, int64, uint64:
			m[k] = fmt.Sprint(v)
		case float64:
			if v == math.Trunc(v) && v >= 0 && v < 1<<53 {
				m[k] = fmt.Sprint(int64(v))
			}
		}
	}
	if n, ok := m["name"]; ok && n != name {
		return nil, fmt.Errorf("the document's name %.64q differs from %q", fmt.Sprint(n), name)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("the issuer document cannot be expressed as JSON: %w", err)
	}
	return b, nil
}

// jsonCompatible converts what the YAML decoder produced into values
// encoding/json accepts: mappings with string keys, finite numbers.
func jsonCompatible(v any, depth int) (any, error) {
	if depth > 64 {
		return nil, errors.New("the issuer document is nested too deeply")
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			c, err := jsonCompatible(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := jsonCompatible(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = c
		}
		return out, nil
	case []any:
		for i, e := range x {
			c, err := jsonCompatible(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, errors.New("the issuer document holds a number JSON cannot express (.inf or .nan)")
		}
		return x, nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	default:
		return v, nil
	}
}

func newIssuerCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "issuer",
		Short: "Manage trusted JWT issuers (workload identity for CI/CD)",
		Long: `A JWT issuer lets workloads (GitHub Actions, GitLab CI, Kubernetes) log in
with the identity token their platform gives them, without a stored secret.
An issuer names the iss claim, the accepted audiences, where its keys are,
the claims a token must carry, and the policies its tokens get.`,
		Example: `  keyward issuer put github -f github.yaml
  keyward login --jwt --issuer github --jwt-file "$ID_TOKEN_FILE"`,
	}
	addGlobals(cmd, g)
	cmd.AddCommand(issuerPutCmd(env, g), issuerListCmd(env, g), issuerGetCmd(env, g),
		simpleNameCmd(env, g, "delete NAME", "Stop trusting a JWT issuer", "  keyward issuer delete github",
			func(c *client.Client, cmd *cobra.Command, n string) error { return c.DeleteIssuer(cmd.Context(), n) }, "deleted issuer %s"))
	return cmd
}

func issuerPutCmd(env *Env, g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "put NAME -f FILE",
		Short: "Create or replace a JWT issuer from a JSON or YAML file",
		Long: `Create or replace a JWT issuer from a JSON or YAML file ("-" reads standard
input). The fields: issuer_url, audiences, jwks_url or an inline jwks,
algorithms, bound_claims, policy_map, policies, token_ttl, token_max_ttl,
subject_claim.`,
		Example: `  cat > github.yaml <<'EOF'
  issuer_url: https://token.actions.githubusercontent.com
  audiences: [keyward]
  jwks_url: https://token.actions.githubusercontent.com/.well-known/jwks
  bound_claims:
    repository: ["acme/*"]
  policy_map:
    - {claim: ref, value: refs/heads/main, policies: [deploy]}
  token_ttl: 10m
  EOF
  keyward issuer put github -f github.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			if file == "" {
				return Usagef("give the issuer document with -f FILE")
			}
			var data []byte
			if file == "-" {
				data, err = io.ReadAll(io.LimitReader(env.Stdin, maxIssuerFile+1))
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return err
			}
			doc, err := issuerDocument(data, args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			is, err := c.PutIssuer(cmd.Context(), args[0], doc)
			if err != nil {
				return err
			}
			printWarnings(env, is.Warnings)
			if asJSON {
				return printJSON(env.Stdout, is)
			}
			fmt.Fprintf(env.Stdout, "saved issuer %s (%s)\n", args[0], is.IssuerURL)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the issuer document (JSON or YAML; - for stdin)")
	return cmd
}

func issuerListCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List JWT issuers",
		Example: "  keyward issuer list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			is, err := c.ListIssuers(cmd.Context())
			if err != nil {
				return err
			}
			return printList(env.Stdout, asJSON, is, "NAME\tISSUER\tAUDIENCES\tPOLICIES", func(i client.Issuer) string {
				return fmt.Sprintf("%s\t%s\t%s\t%s", i.Name, i.IssuerURL, strings.Join(i.Audiences, ","), strings.Join(i.Policies, ","))
			})
		},
	}
}

func issuerGetCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "get NAME",
		Short:   "Describe a JWT issuer",
		Example: "  keyward issuer get github\n  keyward issuer get github -o json > github.json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			i, err := c.GetIssuer(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, i)
			}
			w := env.Stdout
			fmt.Fprintf(w, "Name:           %s\n", i.Name)
			fmt.Fprintf(w, "Issuer:         %s\n", i.IssuerURL)
			fmt.Fprintf(w, "Audiences:      %s\n", listOrNone(i.Audiences))
			if i.JWKSURL != "" {
				fmt.Fprintf(w, "JWKS URL:       %s\n", i.JWKSURL)
			} else if len(i.JWKS) > 0 {
				fmt.Fprintf(w, "JWKS:           inline\n")
			}
			if len(i.Algorithms) > 0 {
				fmt.Fprintf(w, "Algorithms:     %s\n", strings.Join(i.Algorithms, ", "))
			}
			claims := make([]string, 0, len(i.BoundClaims))
			for k := range i.BoundClaims {
				claims = append(claims, k)
			}
			sort.Strings(claims)
			for _, k := range claims {
				fmt.Fprintf(w, "Bound claim:    %s in %s\n", k, strings.Join(i.BoundClaims[k], ", "))
			}
			fmt.Fprintf(w, "Policies:       %s\n", listOrNone(i.Policies))
			for _, p := range i.PolicyMap {
				fmt.Fprintf(w, "Policy map:     %s=%s -> %s\n", p.Claim, p.Value, strings.Join(p.Policies, ", "))
			}
			if i.SubjectClaim != "" {
				fmt.Fprintf(w, "Subject claim:  %s\n", i.SubjectClaim)
			}
			fmt.Fprintf(w, "Token TTL:      %s\n", durOrDefault(i.TokenTTL))
			fmt.Fprintf(w, "Token max TTL:  %s\n", durOrDefault(i.TokenMaxTTL))
			return nil
		},
	}
}
