package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/keyward/keyward/client"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// policyDocument is one YAML document of a policy file.
type policyDocument struct {
	// Line is the 1-based line of the file where the document starts.
	Line int
	// Text is the document's text, from its first line (a "---" marker, when
	// it has one) to the line before the next document.
	Text string
}

// isDocMarker reports whether line is a YAML document marker: "---" or
// "..." at column 0, alone or followed by a space or tab.
func isDocMarker(line, marker string) bool {
	rest, ok := strings.CutPrefix(line, marker)
	return ok && (rest == "" || rest == "\n" || rest == "\r\n" || rest[0] == ' ' || rest[0] == '\t')
}

// isPreamble reports whether a line may precede a document's "---" marker
// without being content: blank, a comment or a directive.
func isPreamble(line string) bool {
	t := strings.TrimSpace(line)
	return t == "" || t[0] == '#' || line[0] == '%'
}

// splitPolicyDocuments splits a YAML stream into its documents without
// parsing it, so each can be sent alone and keep its line numbers. A "---"
// at column 0 starts a document (YAML forbids it inside content); blank,
// comment and directive lines before it belong to it. A "..." ends one.
// Joining the Texts gives back data.
func splitPolicyDocuments(data []byte) []policyDocument {
	var docs []policyDocument
	var cur strings.Builder
	start, line, onlyPreamble := 1, 1, true
	flush := func(next int) {
		if cur.Len() > 0 {
			docs = append(docs, policyDocument{Line: start, Text: cur.String()})
		}
		cur.Reset()
		start, onlyPreamble = next, true
	}
	s := string(data)
	for s != "" {
		l := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			l = s[:i+1]
		}
		s = s[len(l):]
		if isDocMarker(l, "---") && !onlyPreamble {
			flush(line)
		}
		cur.WriteString(l)
		if !isPreamble(l) {
			onlyPreamble = false
		}
		line++
		if isDocMarker(l, "...") {
			flush(line)
		}
	}
	flush(line)
	return docs
}

// padded returns the document preceded by blank lines, so that line numbers
// the server reports for it are the file's line numbers.
func (d policyDocument) padded() []byte {
	return []byte(strings.Repeat("\n", d.Line-1) + d.Text)
}

// policyName reads the name of a policy document; empty is true for a
// document with no content (only comments, or nothing).
func policyName(doc []byte) (name string, empty bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			name, empty, err = "", false, errors.New("malformed YAML")
		}
	}()
	var n yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(doc)).Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return "", true, nil
		}
		return "", false, err
	}
	root := &n
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == 0 || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
		return "", true, nil
	}
	if root.Kind != yaml.MappingNode {
		return "", false, fmt.Errorf("line %d: a policy document is a mapping with a name and rules", root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k, v := root.Content[i], root.Content[i+1]; k.Value == "name" {
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return "", false, fmt.Errorf("line %d: name must be a non-empty string", v.Line)
			}
			return v.Value, false, nil
		}
	}
	return "", false, fmt.Errorf("line %d: the policy document has no name", root.Line)
}

// policyFiles expands the -f arguments: files as given, directories to
// their .yaml, .yml and .json files (sorted; with recursive, at any depth).
func policyFiles(args []string, recursive bool) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		var found []string
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != a && !recursive {
					return filepath.SkipDir
				}
				return nil
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json":
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no .yaml, .yml or .json files", a)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// applyResult is one line of policy apply's report.
type applyResult struct {
	Name   string `json:"name,omitempty"`
	File   string `json:"file"`
	Line   int    `json:"line"`
	Result string `json:"result"` // created, updated, unchanged or error
	Error  string `json:"error,omitempty"`
}

func newPolicyCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Apply, read and explain access policies (policy as code)",
		Long: `A policy is a named YAML document of rules: resource patterns and the
actions they allow or deny. "*" matches one path segment, "**" any number;
an explicit deny beats any allow; no matching allow means deny.

  name: payments-ci
  rules:
    - resources: ["projects/payments/envs/staging/secrets/**"]
      allow: [read, list]
    - resources: ["projects/payments/envs/prod/**"]
      deny: ["*"]

Keep policies in version control and apply them with keyward policy apply.`,
		Example: `  keyward policy apply -f policies/
  keyward policy explain --token 3f2a9c0d1b --action read --resource projects/payments/envs/prod/secrets/db`,
	}
	addGlobals(cmd, g)
	cmd.AddCommand(policyApplyCmd(env, g), policyListCmd(env, g), policyGetCmd(env, g),
		simpleNameCmd(env, g, "delete NAME", "Delete a policy: tokens naming it lose what it allowed at once", "  keyward policy delete payments-ci",
			func(c *client.Client, cmd *cobra.Command, n string) error { return c.DeletePolicy(cmd.Context(), n) }, "deleted policy %s"),
		policyExplainCmd(env, g), policyWhoCanCmd(env, g))
	return cmd
}

func policyWhoCanCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "who-can ACTION RESOURCE",
		Short: "Access review: who may do an action on a resource, and through which policy",
		Long: `List who may do ACTION (read, list, write, delete, rotate, proxy, issue,
admin) on RESOURCE: the policies that allow it, then every user, service
account, device, JWT issuer mapping and group of live tokens whose policies
allow it, with the rule that decides. An explicit deny in a holder's
policies, or a token bound to other environments, keeps it off the list;
disabled users, service accounts and devices are listed and marked. API keys are governed by their
scopes instead (keyward key list). Needs read on sys/access.`,
		Example: `  keyward policy who-can read projects/payments/envs/prod/secrets/db/password
  keyward policy who-can admin sys/seal -o json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			rev, err := c.WhoCan(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, rev)
			}
			fmt.Fprintf(env.Stdout, "Policies allowing %s on %s: %s\n\n", rev.Action, rev.Resource, listOrNone(rev.Policies))
			err = printList(env.Stdout, false, rev.Holders, "KIND\tHOLDER\tPOLICIES\tDECIDED BY", func(h client.Holder) string {
				name := h.Name
				switch {
				case h.Claim != "":
					name += " (" + h.Claim + "=" + h.Value + ")"
				case h.Kind == "issuer":
					name += " (every token)"
				case h.Kind == "tokens":
					name += fmt.Sprintf(" (%d live)", h.Count)
				case h.Disabled:
					name += " (disabled)"
				}
				return fmt.Sprintf("%s\t%s\t%s\t%s", h.Kind, name, strings.Join(h.Policies, ","), h.AllowedBy)
			})
			if rev.Truncated {
				fmt.Fprintln(env.Stderr, "warning: the review read only the first 10,000 users, service accounts and token groups of each kind")
			}
			return err
		},
	}
}

func policyApplyCmd(env *Env, g *globals) *cobra.Command {
	var files []string
	var recursive bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR [-f ...]",
		Short: "Create or update policies from YAML or JSON files",
		Long: `Store every policy document of the files given (a directory stands for its
.yaml, .yml and .json files; -R descends into subdirectories). A YAML file
may hold several documents separated by "---"; each document's name is the
policy's name. Each policy is reported as created, updated or unchanged:
applying the same files again changes nothing. A document the server refuses
is reported with the server's message and its line in the file; the others
are still applied, and the command exits 1.`,
		Example: `  keyward policy apply -f policies/
  keyward policy apply -f ci.yaml -f ops.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return Usagef("give the policy files with -f FILE or -f DIR")
			}
			paths, err := policyFiles(files, recursive)
			if err != nil {
				return err
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			results := []applyResult{}
			failed := 0
			report := func(r applyResult) {
				if n, msg, ok := errorLine(r.Error); ok && r.Result == "error" {
					r.Line, r.Error = n, msg // the line of the file the error is on
				}
				results = append(results, r)
				if r.Result == "error" {
					failed++
					fmt.Fprintf(env.Stderr, "error: %s:%d: %s\n", r.File, r.Line, r.Error)
				} else if !asJSON {
					fmt.Fprintf(env.Stdout, "%s %s\n", r.Result, r.Name)
				}
			}
			for _, p := range paths {
				data, err := os.ReadFile(p)
				if err != nil {
					report(applyResult{File: p, Result: "error", Error: err.Error()})
					continue
				}
				for _, d := range splitPolicyDocuments(data) {
					res := applyResult{File: p, Line: d.Line}
					name, empty, err := policyName(d.padded())
					if empty {
						continue
					}
					if err != nil {
						res.Result, res.Error = "error", strings.TrimPrefix(err.Error(), "yaml: ")
						report(res)
						continue
					}
					res.Name = name
					res.Result, err = applyPolicy(cmd, c, name, d.padded())
					if err != nil {
						res.Result, res.Error = "error", apiMessage(err)
					}
					report(res)
				}
			}
			if asJSON {
				if err := printJSON(env.Stdout, results); err != nil {
					return err
				}
			}
			if failed > 0 {
				return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%d of %d policy documents failed", failed, len(results))}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "a policy file or a directory of them (repeatable)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "descend into subdirectories")
	return cmd
}

// applyPolicy stores one document and says whether it was created, updated
// or unchanged; a read first tells created from updated.
func applyPolicy(cmd *cobra.Command, c *client.Client, name string, doc []byte) (string, error) {
	existed := true
	if _, err := c.GetPolicy(cmd.Context(), name); client.IsCode(err, "not_found") {
		existed = false
	} else if err != nil {
		return "", err
	}
	changed, err := c.PutPolicy(cmd.Context(), name, doc)
	switch {
	case err != nil:
		return "", err
	case !changed:
		return "unchanged", nil
	case existed:
		return "updated", nil
	}
	return "created", nil
}

// apiMessage is the server's message for an API refusal (which, for a bad
// policy, names the line), else the error's text.
func apiMessage(err error) string {
	var e *client.Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return err.Error()
}

func policyListCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List policies",
		Example: "  keyward policy list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			ps, err := c.ListPolicies(cmd.Context())
			if err != nil {
				return err
			}
			return printList(env.Stdout, asJSON, ps, "NAME\tRULES\tDESCRIPTION", func(p client.Policy) string {
				return fmt.Sprintf("%s\t%d\t%s", p.Name, len(p.Rules), p.Description)
			})
		},
	}
}

func policyGetCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "get NAME",
		Short:   "Print a policy's YAML document",
		Example: "  keyward policy get payments-ci > payments-ci.yaml\n  keyward policy get payments-ci -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			p, err := c.GetPolicy(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, p)
			}
			doc := p.Document
			if doc == "" {
				b, err := yaml.Marshal(struct {
					Name        string              `yaml:"name"`
					Description string              `yaml:"description,omitempty"`
					Rules       []client.PolicyRule `yaml:"rules"`
				}{p.Name, p.Description, p.Rules})
				if err != nil {
					return err
				}
				doc = string(b)
			}
			io.WriteString(env.Stdout, doc)
			if !strings.HasSuffix(doc, "\n") {
				io.WriteString(env.Stdout, "\n")
			}
			return nil
		},
	}
}

// verdictLine is "allowed: …" or "denied: …" with the server's reason,
// which may already begin with the verdict.
func verdictLine(e *client.Explanation) string {
	verdict := "denied"
	if e.Allowed {
		verdict = "allowed"
	}
	switch {
	case e.Reason == "" || e.Reason == verdict:
		return verdict
	case strings.HasPrefix(e.Reason, verdict):
		return e.Reason
	}
	return verdict + ": " + e.Reason
}

func policyExplainCmd(env *Env, g *globals) *cobra.Command {
	var accessor, action, resource string
	var policies []string
	cmd := &cobra.Command{
		Use:   "explain (--token ACCESSOR | --policy NAME...) --action ACTION --resource RESOURCE",
		Short: "Say whether a token (or a set of policies) may do an action on a resource, and which rule decides",
		Long: `Explain the decision keyward makes for the token with an accessor (see keyward
token lookup), or for a caller holding the policies named with --policy
(before any token has them), an action (read, list, write, delete, rotate,
proxy, issue, admin) and a resource path: allowed or denied, and the policy
and rule that decide it. Exits 0 either way; -o json for scripts.`,
		Example: `  keyward policy explain --token 3f2a9c0d1b --action read --resource projects/payments/envs/prod/secrets/db/password
  keyward policy explain --policy payments-ci --action write --resource projects/payments/envs/prod/secrets/x`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			if (accessor == "") == (len(policies) == 0) || action == "" || resource == "" {
				return Usagef("give --token ACCESSOR or --policy NAME (not both), --action ACTION and --resource RESOURCE")
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			var e *client.Explanation
			if accessor != "" {
				e, err = c.ExplainPolicy(cmd.Context(), accessor, action, resource)
			} else {
				e, err = c.ExplainPolicies(cmd.Context(), policies, action, resource)
			}
			if err != nil {
				return err
			}
			printWarnings(env, e.Warnings)
			if asJSON {
				return printJSON(env.Stdout, e)
			}
			fmt.Fprintln(env.Stdout, verdictLine(e))
			if e.Policy != "" {
				fmt.Fprintf(env.Stdout, "decided by: policy %q rule %d (%s)\n", e.Policy, e.Rule, e.Effect)
			}
			holder := "token policies"
			if accessor == "" {
				holder = "policies"
			}
			fmt.Fprintf(env.Stdout, "%s: %s\n", holder, listOrNone(e.Policies))
			return nil
		},
	}
	cmd.Flags().StringVar(&accessor, "token", "", "the accessor of the token (not the token itself)")
	cmd.Flags().StringArrayVar(&policies, "policy", nil, "instead of --token: a policy the caller holds (repeatable)")
	cmd.Flags().StringVar(&action, "action", "", "the action: read, list, write, delete, rotate, proxy, issue or admin")
	cmd.Flags().StringVar(&resource, "resource", "", "the resource path, e.g. projects/p/envs/prod/secrets/db/password")
	return cmd
}

// errorLine splits a "line N: what" error (the server's and policyName's,
// N a line of the file) into N and what.
func errorLine(msg string) (int, string, bool) {
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, "", false
	}
	num, what, ok := strings.Cut(rest, ": ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 1 {
		return 0, "", false
	}
	return n, what, true
}
