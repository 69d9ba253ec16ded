package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// globals are the flags every client command shares.
type globals struct {
	output string // "text" or "json"
	addr   string
}

func addGlobals(cmd *cobra.Command, g *globals) {
	cmd.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	cmd.PersistentFlags().StringVar(&g.addr, "addr", "", "server address (default $KEYWARD_ADDR or "+client.DefaultAddress+")")
}

func (g *globals) json() (bool, error) {
	switch g.output {
	case "text", "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, Usagef("--output %q: want text or json", g.output)
}

// setup is the start of every command that calls the API: the output
// format asked for, then the client.
func (g *globals) setup(env *Env) (asJSON bool, c *client.Client, err error) {
	if asJSON, err = g.json(); err != nil {
		return false, nil, err
	}
	c, err = g.newClient(env)
	return asJSON, c, err
}

// setupSince is setup for a command with a --since flag: the output
// format, the time since names, then the client.
func (g *globals) setupSince(env *Env, since string) (asJSON bool, from time.Time, c *client.Client, err error) {
	if asJSON, err = g.json(); err != nil {
		return false, from, nil, err
	}
	if from, err = parseTimeFlag("since", since, time.Now()); err != nil {
		return false, from, nil, err
	}
	c, err = g.newClient(env)
	return asJSON, from, c, err
}

// newClient builds an API client from flags and the environment. The token
// comes from $KEYWARD_TOKEN, else from the file keyward login writes.
func (g *globals) newClient(env *Env) (*client.Client, error) {
	addr := g.addr
	if addr == "" {
		addr = env.Getenv("KEYWARD_ADDR")
	}
	token := env.Getenv("KEYWARD_TOKEN")
	if token == "" {
		token = savedToken(env)
	}
	return client.New(client.Config{Address: addr, Token: token, UserAgent: "keyward-cli"})
}

// newProverClient is newClient without a token, signing DPoP proofs with
// prove: a device's own requests.
func (g *globals) newProverClient(env *Env, prove client.Prover) (*client.Client, error) {
	addr := g.addr
	if addr == "" {
		addr = env.Getenv("KEYWARD_ADDR")
	}
	return client.New(client.Config{Address: addr, UserAgent: "keyward-cli", DPoP: prove})
}

// tokenPath is where keyward login saves the token.
func tokenPath(env *Env) string {
	dir := env.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := env.Getenv("HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "keyward", "token")
}

// allPages fetches every page of a list: page(cursor) returns one page and
// the next cursor, "" after the last page. A page may be empty and still
// have a next one (the server drops what the caller may not see after
// reading a page), so only the cursor ends the walk.
func allPages[T any](page func(cursor string) ([]T, string, error)) ([]T, error) {
	all := []T{}
	for cursor := ""; ; {
		items, next, err := page(cursor)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		if next == cursor {
			return nil, fmt.Errorf("the server repeated the list cursor %q", next)
		}
		cursor = next
	}
}

// printList writes items as a JSON array ([] when there are none) or as a
// table: header, then one tab-separated row per item.
func printList[T any](w io.Writer, asJSON bool, items []T, header string, row func(T) string) error {
	if asJSON {
		if items == nil {
			items = []T{}
		}
		return printJSON(w, items)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		fmt.Fprintln(tw, row(it))
	}
	return tw.Flush()
}

// printWarnings prints the server's warnings on stderr, in text and JSON
// output alike.
func printWarnings(env *Env, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(env.Stderr, "Warning: %s\n", w)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// readSecretLine reads one line from r, without echo when r is a terminal.
func readSecretLine(env *Env, prompt string) (string, error) {
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(env.Stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		return strings.TrimSpace(string(b)), err
	}
	b, err := io.ReadAll(io.LimitReader(env.Stdin, 1<<20))
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line), nil
}
