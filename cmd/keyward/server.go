package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/keyward/keyward/internal/cli"
	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/redact"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/storage/sqlite"
	"github.com/keyward/keyward/internal/version"
	"github.com/spf13/cobra"
)

func newServerCmd(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a keyward server",
		Long: `Run a keyward server.

Settings come from, in rising precedence: built-in defaults, a TOML file
(--config or $KEYWARD_CONFIG), KEYWARD_* environment variables, and flags.

A new server must be initialised once ('keyward operator init') and unsealed
after every start ('keyward operator unseal'). With --dev it initialises and
unseals itself from a key file in the data directory: for development only.

With --gateway-listen a second address serves the data plane alone: the
gateway, token exchange, revocation and introspection, key verification and
health. Expose that one to apps and devices and keep --listen, the whole
management API, on a private network.

The garbage collector runs with GOGC=400 unless GOGC is set (see
docs/operations.md); GOMEMLIMIT caps memory as usual.

SIGINT or SIGTERM stops the server gracefully: requests in flight finish,
keys are wiped from memory and storage is closed.`,
		Example: `  keyward server --dev
  keyward server --listen 0.0.0.0:8270 --tls-cert cert.pem --tls-key key.pem
  keyward server --storage postgres://keyward@db.internal/keyward
  keyward server --listen 10.0.0.5:8270 --gateway-listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(cmd.Flags(), env.Getenv)
			if err != nil {
				return cli.Usagef("%v", err)
			}
			level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[cfg.LogLevel]
			hopts := &slog.HandlerOptions{Level: level}
			var h slog.Handler = slog.NewTextHandler(env.Stderr, hopts)
			if cfg.LogJSON {
				h = slog.NewJSONHandler(env.Stderr, hopts)
			}
			log := slog.New(redact.NewHandler(h))
			gc := server.TuneRuntime(env.Getenv)
			log.Debug("runtime", "gc_percent", gc, "gomaxprocs", runtime.GOMAXPROCS(0))

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			node, err := server.New(ctx, cfg, server.Options{Log: log, Banner: env.Stdout})
			if err != nil {
				return err
			}
			ln, err := node.Listen()
			if err != nil {
				node.Close()
				return err
			}
			return node.Serve(ctx, ln)
		},
	}
	config.RegisterFlags(cmd.Flags())
	cmd.AddCommand(newRestoreCmd(env))
	return cmd
}

func newRestoreCmd(env *cli.Env) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace a stopped server's database with a backup (keyward operator backup)",
		Long: `Replace the SQLite database of a stopped server with a backup made by
'keyward operator backup'. The data directory comes from --data, $KEYWARD_DATA
or the config file, as for 'keyward server'.

The backup is checked first: SQLite must find it intact, and it must hold a
keyward schema no newer than this keyward's, of a server that was
initialised. The database in the way is renamed keyward.db.pre-restore-TIME,
never deleted, and the backup is copied in whole or not at all (mode 0600).

A server that is running (or crashed) has keyward.db-wal and keyward.db-shm
beside its database; restore refuses then, since SQLite would apply that WAL
to the restored file. Stop the server first. If it crashed, start and stop it
once, or pass --force to set those files aside too.

Then start the server and unseal it with the unseal keys of the backup (in
dev mode, the dev-unseal.key it was made with). See docs/operations.md,
"Backup and restore".`,
		Example: `  keyward server restore --data /var/lib/keyward /backups/keyward-2026-12-06.db`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(cmd.Flags(), env.Getenv)
			if err != nil {
				return cli.Usagef("%v", err)
			}
			if cfg.IsPostgres() {
				return errors.New("this server stores its data in PostgreSQL: restore it with PostgreSQL's own tools (see docs/operations.md)")
			}
			db := filepath.Join(cfg.DataDir, server.DatabaseFile)
			res, err := sqlite.Restore(cmd.Context(), args[0], db, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "Restored %s from %s (schema migration %d).\n", db, args[0], res.Migration)
			for _, p := range res.SetAside {
				fmt.Fprintf(env.Stdout, "Set aside: %s\n", p)
			}
			fmt.Fprintln(env.Stdout, "Start the server and unseal it with the unseal keys of the backup.")
			return nil
		},
	}
	f := cmd.Flags()
	f.String("data", config.Defaults().DataDir, "data directory of the server to restore")
	f.String("config", "", "config file (TOML) naming the data directory")
	f.BoolVar(&force, "force", false, "also set aside a keyward.db-wal and keyward.db-shm left by a crashed server")
	return cmd
}

func newVersionCmd(env *cli.Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print keyward's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintf(env.Stdout, "keyward %s\n", version.String())
		},
	}
}
