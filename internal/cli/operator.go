package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/client"

	"github.com/spf13/cobra"
)

func newOperatorCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Initialise, unseal, seal, rotate and back up a keyward server",
		Long: `Operator commands manage the server's barrier.

A new server is initialised once with 'keyward operator init', which prints the
unseal shares and the initial root token: store each share with a different
person. After every restart the server is sealed; 'keyward operator unseal' is
run once per share until the threshold is reached.

A server started with --seal pkcs11 keeps its root key wrapped by an AES key
in an HSM and unseals itself at every start; its shares are recovery shares
(docs/operations.md, "Auto unseal with an HSM").`,
	}
	addGlobals(cmd, g)
	cmd.AddCommand(newOperatorInitCmd(env, g), newOperatorUnsealCmd(env, g), newOperatorSealCmd(env, g),
		newOperatorRotateCmd(env, g), newOperatorStatusCmd(env, g), newOperatorBackupCmd(env, g))
	return cmd
}

func newOperatorInitCmd(env *Env, g *globals) *cobra.Command {
	var shares, threshold int
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialise the server: print unseal shares and the root token once",
		Long: `Initialise a new server. The root key is split into --shares shares, any
--threshold of which unseal the server. The shares and the initial root token
are printed once and never stored in plaintext: keep them safe.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			if threshold < 1 || shares < 1 || threshold > shares || shares > 255 {
				return Usagef("want 1 <= --threshold <= --shares <= 255 (got %d of %d)", threshold, shares)
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			res, err := c.Init(cmd.Context(), shares, threshold)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, res)
			}
			w := env.Stdout
			for i, s := range res.Shares {
				fmt.Fprintf(w, "Unseal share %d: %s\n", i+1, s)
			}
			fmt.Fprintf(w, "\nInitial root token: %s\n\n", res.RootToken)
			fmt.Fprintf(w, "keyward is initialised with %d shares and a threshold of %d.\n", len(res.Shares), res.Threshold)
			fmt.Fprintf(w, "These values are shown ONCE. Give each share to a different person.\n")
			if res.Sealed || res.Seal == "" || res.Seal == "shamir" {
				fmt.Fprintf(w, "The server is sealed: run 'keyward operator unseal' with %d shares.\n", res.Threshold)
			} else {
				fmt.Fprintf(w, "The server is unsealed by its HSM (seal %s) and unseals itself at every start.\n", res.Seal)
				fmt.Fprintf(w, "The shares are recovery shares: they unseal it when the HSM is unavailable\n(start it with --seal shamir, then 'keyward operator unseal').\n")
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&shares, "shares", 5, "number of unseal shares to create")
	cmd.Flags().IntVar(&threshold, "threshold", 3, "number of shares needed to unseal")
	return cmd
}

func newOperatorUnsealCmd(env *Env, g *globals) *cobra.Command {
	var reset bool
	cmd := &cobra.Command{
		Use:   "unseal [SHARE]",
		Short: "Submit one unseal share (prompted for, or read from stdin)",
		Long: `Submit one unseal share. Without an argument the share is read from a hidden
prompt, or from standard input when it is not a terminal (a share on the
command line stays in shell history). Progress is shown (2/3); the server
unseals when the threshold is reached.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			if reset {
				p, err := c.UnsealReset(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(env.Stdout, p)
				}
				fmt.Fprintf(env.Stdout, "Unseal progress reset (0/%d)\n", p.Threshold)
				return nil
			}
			var share string
			if len(args) == 1 {
				share = args[0]
			} else {
				share, err = readSecretLine(env, "Unseal share: ")
				if err != nil {
					return err
				}
			}
			share = strings.TrimSpace(share)
			if share == "" {
				return Usagef("no share given")
			}
			p, err := c.Unseal(cmd.Context(), share)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, p)
			}
			if p.Sealed {
				fmt.Fprintf(env.Stdout, "Sealed: yes (progress %d/%d)\n", p.Progress, p.Threshold)
			} else {
				fmt.Fprintln(env.Stdout, "Sealed: no (keyward is unsealed)")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&reset, "reset", false, "discard the shares submitted so far")
	return cmd
}

func newOperatorSealCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "seal",
		Short: "Seal the server: wipe its keys from memory (needs admin on sys/seal)",
		Long: `Seal the server: its keys are wiped from memory at once and nothing but
health and unseal is served until enough unseal shares are submitted again.
Needs a token allowed admin on sys/seal (the root token is). In dev mode,
keyward operator unseal < DATA/dev-unseal.key, or a restart, unseals it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			if err := c.Seal(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, "keyward is sealed")
			return nil
		},
	}
}

func newOperatorRotateCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Add a keyring version; new writes use it, old data still opens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			v, err := c.Rotate(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, map[string]uint32{"key_version": v})
			}
			fmt.Fprintf(env.Stdout, "Keyring rotated: new writes use key version %d\n", v)
			return nil
		},
	}
}

func newOperatorStatusCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show whether the server is initialised and sealed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			h, err := c.Health(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, h)
			}
			yes := func(b bool) string {
				if b {
					return "yes"
				}
				return "no"
			}
			fmt.Fprintf(env.Stdout, "Address:      %s\nInitialized:  %s\nSealed:       %s\nVersion:      %s\nStorage:      %s\n",
				c.Address(), yes(h.Initialized), yes(h.Sealed), h.Version, h.Storage)
			if h.Seal != "" {
				fmt.Fprintf(env.Stdout, "Seal:         %s\n", h.Seal)
			}
			if h.Error != "" {
				fmt.Fprintf(env.Stdout, "Error:        %s\n", h.Error)
			}
			if h.Sealed || !h.Initialized || h.Error != "" {
				return &ExitError{Code: 2}
			}
			return nil
		},
	}
}

func newOperatorBackupCmd(env *Env, g *globals) *cobra.Command {
	var force, quiet bool
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Download a consistent copy of the server's database (needs admin on sys/backup)",
		Long: `Download a consistent copy of the server's SQLite database, made while it
keeps serving, to FILE: mode 0600, written whole or not at all, and checked
against the SHA-256 the server sent (also in the audit entry of the
download). -o json prints the file, its size and its SHA-256.

The copy holds what the database holds: secrets encrypted under the keyring,
the keyring sealed under the root key, hashes of tokens and API keys, and the
audit log. It opens only with the unseal keys: keep them apart from backups.
To restore, stop the server, run 'keyward server restore --data DIR FILE'
on its machine, start it and unseal (docs/operations.md, "Backup and
restore").

A server on PostgreSQL refuses: back it up with PostgreSQL's own tools.`,
		Example: `  keyward operator backup /backups/keyward-$(date +%F).db`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			output := args[0]
			if _, err := os.Lstat(output); err == nil && !force {
				return fmt.Errorf("%s exists; choose another name or pass --force to replace it", output)
			}
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			var got atomic.Int64
			prog := startProgress(env, quiet || asJSON, func(elapsed time.Duration) string {
				if n := got.Load(); n > 0 {
					return fmt.Sprintf("downloading the backup… %.1f MB, %s", float64(n)/1e6, elapsed.Round(time.Second))
				}
				return fmt.Sprintf("the server is copying its database… %s", elapsed.Round(time.Second))
			})
			var info *client.BackupInfo
			err = writePrivateFileFrom(output, func(w io.Writer) error {
				var err error
				info, err = c.Backup(cmd.Context(), &countWriter{w: w, n: &got})
				return err
			})
			prog.stop()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, map[string]any{"file": output, "bytes": info.Bytes, "sha256": info.SHA256})
			}
			fmt.Fprintf(env.Stdout, "Backup written to %s (%d bytes, SHA-256 %s)\n", output, info.Bytes, info.SHA256)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&force, "force", false, "replace FILE when it exists")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress on standard error")
	return cmd
}

// countWriter counts what goes through it into n (read by a progress line).
type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
