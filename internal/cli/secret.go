package cli

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/spf13/cobra"
)

// addr is a secret's address: project, environment and path.
type addr struct{ project, env, path string }

// addrFlags holds -p/--project and -e/--env.
type addrFlags struct{ project, env string }

func (a *addrFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&a.project, "project", "p", "", "project (default $KEYWARD_PROJECT)")
	cmd.Flags().StringVarP(&a.env, "env", "e", "", "environment (default $KEYWARD_ENV)")
}

// resolve parses "project/env/path", or "path" with -p and -e (or
// $KEYWARD_PROJECT and $KEYWARD_ENV). needPath says whether a path is required.
func (a *addrFlags) resolve(env *Env, arg string, needPath bool) (addr, error) {
	p, e := a.project, a.env
	if p == "" {
		p = env.Getenv("KEYWARD_PROJECT")
	}
	if e == "" {
		e = env.Getenv("KEYWARD_ENV")
	}
	if a.project == "" && a.env == "" {
		// project/env/path form.
		parts := strings.SplitN(arg, "/", 3)
		if len(parts) >= 2 && parts[0] != "" && parts[1] != "" {
			out := addr{project: parts[0], env: parts[1]}
			if len(parts) == 3 {
				out.path = parts[2]
			}
			if needPath && out.path == "" {
				return addr{}, Usagef("%q: want PROJECT/ENV/PATH", arg)
			}
			return out, nil
		}
	}
	if p == "" || e == "" {
		if arg == "" && !needPath { // a whole environment: run, export
			return addr{}, Usagef("name the environment with -p PROJECT -e ENV (or $KEYWARD_PROJECT and $KEYWARD_ENV)")
		}
		return addr{}, Usagef("name the secret as PROJECT/ENV/PATH, or give -p PROJECT -e ENV")
	}
	if needPath && arg == "" {
		return addr{}, Usagef("a secret path is required")
	}
	return addr{project: p, env: e, path: arg}, nil
}

func newProjectCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{Use: "project", Short: "Create and list projects"}
	addGlobals(cmd, g)
	cmd.AddCommand(&cobra.Command{
		Use:   "create NAME",
		Short: "Create a project with dev, staging and prod environments",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			p, err := c.CreateProject(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, p)
			}
			fmt.Fprintf(env.Stdout, "Created project %s with environments %s\n", p.Name, strings.Join(p.Environments, ", "))
			return nil
		},
	}, &cobra.Command{
		Use:   "list",
		Short: "List projects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			ps, err := c.ListProjects(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, ps)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PROJECT\tENVIRONMENTS\tCREATED")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, strings.Join(p.Environments, ","), p.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	})
	return cmd
}

func newEnvCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{Use: "env", Short: "Create, list and compare environments"}
	addGlobals(cmd, g)
	var project string
	cmd.PersistentFlags().StringVarP(&project, "project", "p", "", "project (default $KEYWARD_PROJECT)")
	proj := func() (string, error) {
		if project == "" {
			project = env.Getenv("KEYWARD_PROJECT")
		}
		if project == "" {
			return "", Usagef("give the project with -p PROJECT")
		}
		return project, nil
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "create NAME",
		Short: "Add an environment to a project",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := proj()
			if err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			e, err := c.CreateEnv(cmd.Context(), p, args[0])
			if err != nil {
				return err
			}
			if ok, _ := g.json(); ok {
				return printJSON(env.Stdout, e)
			}
			fmt.Fprintf(env.Stdout, "Created environment %s in project %s\n", e.Name, p)
			return nil
		},
	}, &cobra.Command{
		Use:   "list",
		Short: "List a project's environments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := proj()
			if err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			es, err := c.ListEnvs(cmd.Context(), p)
			if err != nil {
				return err
			}
			if ok, _ := g.json(); ok {
				return printJSON(env.Stdout, es)
			}
			for _, e := range es {
				fmt.Fprintln(env.Stdout, e.Name)
			}
			return nil
		},
	}, envDiffCmd(env, g, proj))
	return cmd
}

// envDiff is what `env diff` prints with -o json.
type envDiff struct {
	client.EnvDiff
	// Differ, with --values, names the secrets both hold with other values;
	// Unread those whose value could not be read in both (no read right).
	Differ []string `json:"differ,omitempty"`
	Unread []string `json:"unread,omitempty"`
}

func envDiffCmd(env *Env, g *globals, proj func() (string, error)) *cobra.Command {
	var values, exitCode bool
	cmd := &cobra.Command{
		Use:   "diff ENV_A ENV_B",
		Short: "Compare the secret names of two environments (--values: and which values differ, never shown)",
		Long: `Compare the secret names of two environments of a project: the ones only in
one of them. With --values, the secrets both hold are also compared by value,
here, and the ones that differ are named; values are never printed (reading
them is audited, and needs read on each secret). With --exit-code the command
exits 1 when the environments differ, as git diff --exit-code does (a CI gate).`,
		Example: `  keyward env diff -p shop staging prod
  keyward env diff -p shop staging prod --values --exit-code`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := proj()
			if err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			names, err := c.DiffEnvs(cmd.Context(), p, args[0], args[1])
			if err != nil {
				return err
			}
			d := &envDiff{EnvDiff: *names}
			if values {
				var vals [2]map[string]string
				for i, e := range args {
					if vals[i], err = c.ReadFolder(cmd.Context(), p, e, "", true); err != nil {
						return fmt.Errorf("reading %s's values: %w", e, err)
					}
				}
				d.Differ, d.Unread = diffValues(d.Both, vals)
			}
			if ok, _ := g.json(); ok {
				if err := printJSON(env.Stdout, d); err != nil {
					return err
				}
			} else {
				printEnvDiff(env, d, args[0], args[1], values)
			}
			if exitCode && len(d.OnlyA)+len(d.OnlyB)+len(d.Differ) > 0 {
				return &ExitError{Code: ExitFailure}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&values, "values", false, "also name the secrets both hold whose values differ (never printed)")
	cmd.Flags().BoolVar(&exitCode, "exit-code", false, "exit 1 when the environments differ")
	return cmd
}

// diffValues names the secrets of both whose values differ, and those
// whose value could not be read in both. Values are compared in constant
// time and go nowhere else.
func diffValues(both []string, vals [2]map[string]string) (differ, unread []string) {
	for _, n := range both {
		a, okA := vals[0][n]
		b, okB := vals[1][n]
		switch {
		case !okA || !okB:
			unread = append(unread, n)
		case subtle.ConstantTimeCompare([]byte(a), []byte(b)) != 1:
			differ = append(differ, n)
		}
	}
	return differ, unread
}

func printEnvDiff(env *Env, d *envDiff, a, b string, values bool) {
	w := env.Stdout
	for _, n := range d.OnlyA {
		fmt.Fprintf(w, "- %s (only in %s)\n", n, a)
	}
	for _, n := range d.OnlyB {
		fmt.Fprintf(w, "+ %s (only in %s)\n", n, b)
	}
	for _, n := range d.Differ {
		fmt.Fprintf(w, "~ %s (values differ)\n", n)
	}
	for _, n := range d.Unread {
		fmt.Fprintf(w, "? %s (not compared: its value could not be read in both)\n", n)
	}
	both := fmt.Sprintf("%d in both", len(d.Both))
	if values {
		both += fmt.Sprintf(" (%d with other values)", len(d.Differ))
	}
	fmt.Fprintf(w, "%s, %d only in %s, %d only in %s\n", both, len(d.OnlyA), a, len(d.OnlyB), b)
}

func newSecretCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Set, read and manage versioned secrets",
		Long: `Secrets live at PROJECT/ENV/PATH. Every write makes a new version; older
versions can be read (--version), rolled back to, or destroyed.`,
	}
	addGlobals(cmd, g)
	cmd.AddCommand(secretSetCmd(env, g), secretGetCmd(env, g), secretListCmd(env, g), secretHistoryCmd(env, g),
		secretRollbackCmd(env, g), secretSimpleCmd(env, g, "delete", "Soft-delete a secret (undelete restores it)"),
		secretSimpleCmd(env, g, "undelete", "Restore a soft-deleted secret"), secretDestroyCmd(env, g))
	return cmd
}

func secretSetCmd(env *Env, g *globals) *cobra.Command {
	var af addrFlags
	var value, fromFile, description, owner, rotation string
	var tags []string
	var cas int
	var allowEmpty bool
	cmd := &cobra.Command{
		Use:   "set PROJECT/ENV/PATH",
		Short: "Write a secret (value from stdin, --from-file, or a hidden prompt)",
		Long: `Write a new version of a secret. The value is read from standard input when
it is not a terminal, from --from-file, or from a hidden prompt. A value on the
command line (--value) ends up in shell history and process listings: it needs
the explicit flag and prints a warning.

An empty value read from standard input, a file or the prompt is refused
(an unset variable piped in would otherwise replace a good secret with
nothing): write one on purpose with --allow-empty, or --value "".`,
		Example: `  printf %s "$DB_PASSWORD" | keyward secret set payments/staging/db/password
  keyward secret set payments/prod/tls/key --from-file key.pem
  keyward secret set -p payments -e dev api_key --cas 0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := af.resolve(env, args[0], true)
			if err != nil {
				return err
			}
			var v string
			switch {
			case cmd.Flags().Changed("value"):
				fmt.Fprintln(env.Stderr, "Warning: a value given with --value is visible in shell history and process listings.")
				v = value
			case fromFile != "":
				b, err := os.ReadFile(fromFile)
				if err != nil {
					return err
				}
				v = string(b)
			default:
				if f, ok := env.Stdin.(*os.File); ok && isTerminal(f) {
					v, err = readSecretLine(env, "Value: ")
				} else {
					var b []byte
					b, err = io.ReadAll(io.LimitReader(env.Stdin, 1<<20))
					v = string(b)
					if line, ok := strings.CutSuffix(v, "\n"); ok && line != "" && !strings.ContainsAny(line, "\r\n") {
						// One line and its end: echo's, most likely, which
						// keyward run would hand over as part of the value.
						io.WriteString(env.Stderr, "Warning: the value ends with a newline (echo adds one); it is stored as given. printf %s leaves it out.\n")
					}
				}
				if err != nil {
					return err
				}
			}
			if v == "" && !allowEmpty && !cmd.Flags().Changed("value") {
				return Usagef("the value is empty (nothing on standard input, in the file or at the prompt); nothing was written. To store an empty value on purpose, add --allow-empty")
			}
			opts := client.PutSecretOptions{}
			if cmd.Flags().Changed("cas") {
				opts.CAS = &cas
			}
			if description != "" || owner != "" || rotation != "" || len(tags) > 0 {
				m := &client.Metadata{Description: description, Owner: owner, RotationInterval: rotation}
				for _, t := range tags {
					k, val, ok := strings.Cut(t, "=")
					if !ok {
						return Usagef("--tag %q: want KEY=VALUE", t)
					}
					if m.Tags == nil {
						m.Tags = map[string]string{}
					}
					m.Tags[k] = val
				}
				opts.Metadata = m
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			info, err := c.PutSecret(cmd.Context(), a.project, a.env, a.path, v, opts)
			if err != nil {
				return err
			}
			if ok, _ := g.json(); ok {
				return printJSON(env.Stdout, info)
			}
			fmt.Fprintf(env.Stdout, "Wrote %s/%s/%s version %d\n", a.project, a.env, a.path, info.Version)
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&value, "value", "", "the value itself (visible in shell history: avoid)")
	cmd.Flags().StringVar(&fromFile, "from-file", "", "read the value from a file")
	cmd.Flags().BoolVar(&allowEmpty, "allow-empty", false, "store an empty value read from standard input, a file or the prompt (refused otherwise)")
	cmd.Flags().IntVar(&cas, "cas", 0, "check-and-set: the version you expect to be current (0: must not exist)")
	cmd.Flags().StringVar(&description, "description", "", "metadata: description")
	cmd.Flags().StringVar(&owner, "owner", "", "metadata: owner")
	cmd.Flags().StringVar(&rotation, "rotation-interval", "", "metadata: rotation interval, e.g. 720h")
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "metadata: tag KEY=VALUE (repeatable)")
	return cmd
}

func secretGetCmd(env *Env, g *globals) *cobra.Command {
	var af addrFlags
	var version int
	cmd := &cobra.Command{
		Use:   "get PROJECT/ENV/PATH",
		Short: "Print a secret's value (alone; -o json for metadata)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := af.resolve(env, args[0], true)
			if err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			s, err := c.GetSecret(cmd.Context(), a.project, a.env, a.path, version)
			if client.IsCode(err, "not_found") && version == 0 {
				// A folder is not a secret: say so rather than "not found".
				if es, lerr := c.ListSecrets(cmd.Context(), a.project, a.env, a.path+"/", false); lerr == nil && len(es) > 0 {
					return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%s/%s/%s is a folder, not a secret: keyward secret list %s/%s/%s",
						a.project, a.env, a.path, a.project, a.env, a.path)}
				}
			}
			if err != nil {
				return err
			}
			if ok, _ := g.json(); ok {
				return printJSON(env.Stdout, s)
			}
			io.WriteString(env.Stdout, s.Value)
			if isTerminal(env.Stdout) {
				io.WriteString(env.Stdout, "\n")
			}
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().IntVar(&version, "version", 0, "read this version instead of the current one")
	return cmd
}

func secretListCmd(env *Env, g *globals) *cobra.Command {
	var af addrFlags
	var recursive bool
	var unchanged string
	cmd := &cobra.Command{
		Use:   "list PROJECT/ENV[/PREFIX]",
		Short: "List secret names (never values)",
		Long: `List secret names, their current version and when it was written (never
values). With --unchanged-for 90d only the secrets not written for that long
are listed, with a count on stderr: the ones that were never rotated.`,
		Example: `  keyward secret list payments/prod -r
  keyward secret list payments/prod -r --unchanged-for 90d     # due for rotation`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			a, err := af.resolve(env, arg, false)
			if err != nil {
				return err
			}
			cutoff, err := parseTimeFlag("unchanged-for", unchanged, time.Now())
			if err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			es, err := c.ListSecrets(cmd.Context(), a.project, a.env, a.path, recursive)
			if err != nil {
				return err
			}
			if unchanged != "" {
				es = slices.DeleteFunc(es, func(e client.SecretEntry) bool { return e.Folder || !e.UpdatedAt.Before(cutoff) })
				fmt.Fprintf(env.Stderr, "%d secret(s) unchanged for %s%s\n", len(es), unchanged, map[bool]string{true: " (add -r for sub-folders)", false: ""}[!recursive])
			}
			if ok, _ := g.json(); ok {
				return printJSON(env.Stdout, es)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			for _, e := range es {
				if e.Folder {
					fmt.Fprintf(tw, "%s\t\t\n", e.Name)
				} else {
					fmt.Fprintf(tw, "%s\tv%d\t%s\n", e.Name, e.Version, e.UpdatedAt.Format(time.RFC3339))
				}
			}
			return tw.Flush()
		},
	}
	af.register(cmd)
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "list every depth")
	cmd.Flags().StringVar(&unchanged, "unchanged-for", "", "only secrets not written for this long (90d, 2160h) or since a time")
	return cmd
}

func secretHistoryCmd(env *Env, g *globals) *cobra.Command {
	var af addrFlags
	cmd := &cobra.Command{
		Use:   "history PROJECT/ENV/PATH",
		Short: "List a secret's versions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := af.resolve(env, args[0], true)
			if err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			vs, err := c.SecretHistory(cmd.Context(), a.project, a.env, a.path)
			if err != nil {
				return err
			}
			if ok, _ := g.json(); ok {
				return printJSON(env.Stdout, vs)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tCREATED\tBY\tSTATE")
			for _, v := range vs {
				state := ""
				if v.Current {
					state = "current"
				}
				if v.DestroyedAt != nil {
					state = "destroyed"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", v.Version, v.CreatedAt.Format(time.RFC3339), v.CreatedBy, state)
			}
			return tw.Flush()
		},
	}
	af.register(cmd)
	return cmd
}

func secretRollbackCmd(env *Env, g *globals) *cobra.Command {
	var af addrFlags
	var version int
	cmd := &cobra.Command{
		Use:   "rollback PROJECT/ENV/PATH --version N",
		Short: "Write a new version that copies version N",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := af.resolve(env, args[0], true)
			if err != nil {
				return err
			}
			if version <= 0 {
				return Usagef("--version N is required")
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			info, err := c.RollbackSecret(cmd.Context(), a.project, a.env, a.path, version)
			if err != nil {
				return err
			}
			if ok, _ := g.json(); ok {
				return printJSON(env.Stdout, info)
			}
			fmt.Fprintf(env.Stdout, "Rolled back %s to version %d as version %d\n", a.path, version, info.Version)
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().IntVar(&version, "version", 0, "the version to copy")
	return cmd
}

func secretSimpleCmd(env *Env, g *globals, verb, short string) *cobra.Command {
	var af addrFlags
	cmd := &cobra.Command{
		Use:   verb + " PROJECT/ENV/PATH",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := af.resolve(env, args[0], true)
			if err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			if verb == "delete" {
				err = c.DeleteSecret(cmd.Context(), a.project, a.env, a.path)
			} else {
				err = c.UndeleteSecret(cmd.Context(), a.project, a.env, a.path)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "%sd %s/%s/%s\n", strings.ToUpper(verb[:1])+verb[1:len(verb)-1], a.project, a.env, a.path)
			return nil
		},
	}
	af.register(cmd)
	return cmd
}

func secretDestroyCmd(env *Env, g *globals) *cobra.Command {
	var af addrFlags
	var versions []int
	var all bool
	cmd := &cobra.Command{
		Use:   "destroy PROJECT/ENV/PATH (--versions N,M | --all)",
		Short: "Wipe versions of a secret for good",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := af.resolve(env, args[0], true)
			if err != nil {
				return err
			}
			if !all && len(versions) == 0 {
				return Usagef("give --versions N,M or --all")
			}
			if all && len(versions) > 0 {
				return Usagef("give --versions N,M or --all, not both")
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			if err := c.DestroySecret(cmd.Context(), a.project, a.env, a.path, versions...); err != nil {
				return err
			}
			if all {
				fmt.Fprintf(env.Stdout, "Destroyed every version of %s/%s/%s\n", a.project, a.env, a.path)
				return nil
			}
			vs := make([]string, len(versions))
			for i, v := range versions {
				vs[i] = strconv.Itoa(v)
			}
			noun := "version"
			if len(vs) > 1 {
				noun = "versions"
			}
			fmt.Fprintf(env.Stdout, "Destroyed %s %s of %s/%s/%s\n", noun, strings.Join(vs, ", "), a.project, a.env, a.path)
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().IntSliceVar(&versions, "versions", nil, "versions to destroy")
	cmd.Flags().BoolVar(&all, "all", false, "destroy every version (and delete the secret)")
	return cmd
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// secretsAsEnv maps secret paths to variable names (the last segment),
// returning the paths skipped (not a valid name) and the paths shadowed:
// when two paths give one name (db/PASSWORD, db/replica/PASSWORD), the
// shallower wins, then the first in byte order, whatever order the server
// listed them in. shadowed[i] is {the path not used, the path used}.
func secretsAsEnv(values map[string]string) (vars map[string]string, skipped []string, shadowed [][2]string) {
	vars = map[string]string{}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if di, dj := strings.Count(keys[i], "/"), strings.Count(keys[j], "/"); di != dj {
			return di < dj
		}
		return keys[i] < keys[j]
	})
	from := map[string]string{} // variable name -> the path it came from
	for _, k := range keys {
		name := k[strings.LastIndexByte(k, '/')+1:]
		if !envNameRE.MatchString(name) {
			skipped = append(skipped, k)
			continue
		}
		if winner, taken := from[name]; taken {
			shadowed = append(shadowed, [2]string{k, winner})
			continue
		}
		from[name] = k
		vars[name] = values[k]
	}
	sort.Strings(skipped)
	return vars, skipped, shadowed
}

// warnEnvNames reports what secretsAsEnv left out, prefixed with the
// command's name.
func warnEnvNames(env *Env, cmd string, skipped []string, shadowed [][2]string) {
	for _, s := range skipped {
		fmt.Fprintf(env.Stderr, "keyward %s: warning: skipping %q: not a valid environment variable name\n", cmd, s)
	}
	for _, s := range shadowed {
		name := s[0][strings.LastIndexByte(s[0], '/')+1:]
		fmt.Fprintf(env.Stderr, "keyward %s: warning: skipping %q: $%s comes from %q\n", cmd, s[0], name, s[1])
	}
}

// warnNoSecrets says so when a folder held no secret at all: a mistyped
// --path or environment would otherwise go unnoticed until the command
// misses its settings.
func warnNoSecrets(env *Env, cmd string, a addr, folder string, n int) {
	if n > 0 {
		return
	}
	where := a.project + "/" + a.env
	if folder != "" {
		where += "/" + strings.Trim(folder, "/")
	}
	fmt.Fprintf(env.Stderr, "keyward %s: warning: no secrets in %s (or none you may read)\n", cmd, where)
}

// mergeEnv is base (the process's environment) with vars set: a variable
// of base that a secret also sets is dropped, so the command sees one
// value, the secret's (with both, C's getenv and Go read the first, shells
// and Python the last).
func mergeEnv(base []string, vars map[string]string) []string {
	out := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, set := vars[k]; !set {
			out = append(out, kv)
		}
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		out = append(out, k+"="+vars[k])
	}
	return out
}

func newRunCmd(env *Env) *cobra.Command {
	g := &globals{}
	var af addrFlags
	var folder string
	var recursive, watch bool
	var interval, grace time.Duration
	cmd := &cobra.Command{
		Use:   "run -p PROJECT -e ENV [--path FOLDER] [--watch] -- COMMAND [ARGS...]",
		Short: "Run a command with secrets as environment variables",
		Long: `Run COMMAND with the secrets of an environment (or of one folder) as
environment variables, each named after the last segment of its path.
Segments that are not valid variable names are skipped with a warning; when
two paths give one name the shallower wins (then byte order), with a
warning; a secret replaces a variable of the same name already set. An
environment or folder without any secret you may read gets a warning too.
keyward prints nothing else: COMMAND's output, exit code and signals pass
through unchanged (keyward replaces itself with COMMAND). A command that does
not exist exits 127.

With --watch keyward stays as COMMAND's parent instead: every
--watch-interval it checks the secrets' versions (a listing: no value is
read), and when they changed it reads them again and restarts COMMAND with
the new values (SIGTERM, then SIGKILL after --restart-grace), so a rotated
secret reaches a service without anyone redeploying it. Signals keyward gets
are passed to COMMAND, except, on a terminal, Ctrl-C and Ctrl-\, which the
terminal already sends to COMMAND (keyward does not send them twice); when
COMMAND ends by itself keyward ends with its exit code. If the server cannot be reached, COMMAND goes on with the values
it has.`,
		Example: `  keyward run -p payments -e staging -- ./server
  keyward run -p payments -e prod --path db -- psql
  keyward run -p payments -e prod --watch -- ./server    # restarted when a secret changes`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return Usagef("name the command to run after --: keyward run -p PROJECT -e ENV -- COMMAND [ARGS...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := af.resolve(env, "", false)
			if err != nil {
				return err
			}
			path, err := exec.LookPath(args[0])
			if err != nil {
				fmt.Fprintf(env.Stderr, "keyward run: %s: command not found\n", args[0])
				return &ExitError{Code: 127}
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			values, err := c.ReadFolder(cmd.Context(), a.project, a.env, folder, recursive || folder == "")
			if err != nil {
				return err
			}
			vars, skipped, shadowed := secretsAsEnv(values)
			warnEnvNames(env, "run", skipped, shadowed)
			warnNoSecrets(env, "run", a, folder, len(values))
			environ := mergeEnv(os.Environ(), vars)
			if watch {
				if interval < time.Second {
					return Usagef("--watch-interval %s: at least 1s", interval)
				}
				w := &watchRun{env: env, c: c, project: a.project, envName: a.env, folder: folder, recurse: recursive || folder == "",
					argv: args, path: path, interval: interval, grace: grace}
				w.stdout, w.stderr = outputs(env)
				return w.run(cmd.Context(), environ)
			}
			if env.Exec == nil {
				return errors.New("keyward run: exec is not available")
			}
			if err := env.Exec(path, args, environ); err != nil {
				var ee *ExitError
				if errors.As(err, &ee) {
					return ee
				}
				fmt.Fprintf(env.Stderr, "keyward run: %s: %v\n", args[0], err)
				return &ExitError{Code: 126}
			}
			return nil
		},
	}
	addGlobals(cmd, g)
	af.register(cmd)
	cmd.Flags().StringVar(&folder, "path", "", "only the secrets below this folder")
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "with --path: include sub-folders")
	cmd.Flags().BoolVar(&watch, "watch", false, "stay as the command's parent and restart it when the secrets change")
	cmd.Flags().DurationVar(&interval, "watch-interval", 10*time.Second, "with --watch: how often to check the secrets' versions")
	cmd.Flags().DurationVar(&grace, "restart-grace", 10*time.Second, "with --watch: how long the command has to stop after SIGTERM before it is killed")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newExportCmd(env *Env) *cobra.Command {
	g := &globals{}
	var af addrFlags
	var folder, format, outFile string
	cmd := &cobra.Command{
		Use:   "export -p PROJECT -e ENV --format dotenv|json|yaml",
		Short: "Print an environment's secrets as a dotenv, JSON or YAML file",
		Long: `Print the secrets of an environment for tools that need a file. The output
holds secret values: never commit it, and prefer 'keyward run' where the tool
can read its environment. --output-file writes the file readable by you
alone (mode 0600, replaced whole, never half-written); a shell redirection
would leave it readable by others under the usual umask.`,
		Example: `  keyward export -p payments -e dev --output-file .env.local
  keyward export -p payments -e dev --format json | jq .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := af.resolve(env, "", false)
			if err != nil {
				return err
			}
			if err := writeExport(io.Discard, format, nil); err != nil {
				return err // an unknown --format, refused before the request
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			values, err := c.ReadFolder(cmd.Context(), a.project, a.env, folder, true)
			if err != nil {
				return err
			}
			vars, skipped, shadowed := secretsAsEnv(values)
			warnEnvNames(env, "export", skipped, shadowed)
			warnNoSecrets(env, "export", a, folder, len(values))
			if outFile == "" {
				return writeExport(env.Stdout, format, vars)
			}
			var buf bytes.Buffer
			if err := writeExport(&buf, format, vars); err != nil {
				return err
			}
			err = writePrivateFile(outFile, buf.Bytes())
			clear(buf.Bytes())
			if err != nil {
				return fmt.Errorf("--output-file: %w", err)
			}
			fmt.Fprintf(env.Stderr, "Wrote %d secrets to %s (mode 0600)\n", len(vars), outFile)
			return nil
		},
	}
	addGlobals(cmd, g)
	af.register(cmd)
	cmd.Flags().StringVar(&folder, "path", "", "only the secrets below this folder")
	cmd.Flags().StringVar(&format, "format", "dotenv", "dotenv, json or yaml")
	cmd.Flags().StringVar(&outFile, "output-file", "", "write to this file, mode 0600, instead of standard output")
	return cmd
}

func writeExport(w io.Writer, format string, vars map[string]string) error {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	switch format {
	case "dotenv":
		for _, k := range keys {
			fmt.Fprintf(w, "%s=%s\n", k, dotenvQuote(vars[k]))
		}
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(vars)
	case "yaml":
		for _, k := range keys {
			b, _ := json.Marshal(vars[k]) // a JSON string is a valid YAML scalar
			fmt.Fprintf(w, "%s: %s\n", k, b)
		}
	default:
		return Usagef("--format %q: want dotenv, json or yaml", format)
	}
	return nil
}

// dotenvQuote quotes a value for dotenv files: double quotes, with
// backslash, quote, dollar and newlines escaped.
func dotenvQuote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "\n", `\n`, "\r", `\r`)
	return `"` + r.Replace(v) + `"`
}
