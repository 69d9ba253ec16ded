package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/keyward/keyward/internal/cli"
	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/redact"
	"github.com/keyward/keyward/internal/server"
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
