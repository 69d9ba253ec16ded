// Command profserver runs a dev-mode keyward node, as `keyward server --dev`
// does, with net/http/pprof on a second loopback port, so a load run can be
// profiled (bench/apikeys/run.sh with PROFILE=1). It is a measuring tool: the
// keyward binary itself serves no profiling endpoint.
//
//	go run ./bench/apikeys/profserver -data /tmp/kw -listen 127.0.0.1:18381 -pprof 127.0.0.1:18382
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strings"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/server"
)

func main() {
	data := flag.String("data", "", "data directory")
	listen := flag.String("listen", "127.0.0.1:18381", "API address")
	gatewayListen := flag.String("gateway-listen", "", "data-plane address (optional)")
	pprofAddr := flag.String("pprof", "127.0.0.1:18382", "pprof address (loopback)")
	flag.Parse()
	if *data == "" || !strings.HasPrefix(*pprofAddr, "127.") {
		fmt.Fprintln(os.Stderr, "profserver: -data is required and -pprof must be a loopback address")
		os.Exit(2)
	}
	server.TuneRuntime(os.Getenv) // as keyward server does
	cfg := config.Defaults()
	cfg.Dev, cfg.DataDir, cfg.Listen, cfg.GatewayListen = true, *data, *listen, *gatewayListen
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, os.Kill)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	node, err := server.New(ctx, cfg, server.Options{Log: log, Banner: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() { fmt.Fprintln(os.Stderr, http.ListenAndServe(*pprofAddr, nil)) }()
	ln, err := node.Listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := node.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
