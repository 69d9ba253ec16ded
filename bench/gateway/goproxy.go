package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// goproxy is a reference target: a plain Go reverse proxy that injects the
// key and does nothing else (no token, no policy, no audit). Its server has
// keyward's server timeouts and limits (internal/server), its transport is
// tuned the way a Go gateway usually is: keep-alive with up to 256 idle
// connections to the upstream, no proxy from the environment, no
// compression, no HTTP/2.
func goproxy(args []string) {
	addr, up, key := proxyFlags("goproxy", "127.0.0.1:19483", args, nil)
	auth := "Bearer " + key
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(up)
			r.Out.Header.Set("Authorization", auth)
		},
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		// Without a pool every response body is copied through a fresh 32 KiB
		// buffer; Go gateways in production keep one.
		BufferPool: &bufferPool{p: sync.Pool{New: func() any { return make([]byte, 32<<10) }}},
	}
	srv := &http.Server{
		Addr:              addr,
		Handler:           rp,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "goproxy:", err)
		os.Exit(1)
	}
}

// bufferPool is an httputil.BufferPool (boxing the slice in Put costs a
// 24-byte allocation, against 32 KiB without a pool).
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return b.p.Get().([]byte) }
func (b *bufferPool) Put(v []byte) { b.p.Put(v) }

// proxyFlags parses a reference proxy's flags: its listen address, the
// upstream's URL and the key to inject (both addresses on loopback).
// more, when not nil, defines further flags on the set before parsing.
func proxyFlags(cmd, defaultAddr string, args []string, more func(*flag.FlagSet)) (addr string, up *url.URL, key string) {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	a := fs.String("addr", defaultAddr, "listen address (loopback)")
	upstreamURL := fs.String("upstream", "http://127.0.0.1:18380", "the upstream's base URL (loopback)")
	k := fs.String("key", "", "the credential to inject")
	if more != nil {
		more(fs)
	}
	fs.Parse(args)
	return *a, loopbackUpstream(cmd, *a, *upstreamURL), *k
}

// loopbackUpstream checks that a reference proxy listens on and forwards to
// loopback only, and returns the upstream's URL; it exits on a bad argument.
func loopbackUpstream(cmd, addr, upstream string) *url.URL {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme != "http" || u.Port() == "" || !strings.HasPrefix(addr, "127.") || !strings.HasPrefix(u.Hostname(), "127.") {
		fmt.Fprintf(os.Stderr, "%s: -addr and -upstream must be loopback, -upstream http://127.x.x.x:PORT\n", cmd)
		os.Exit(2)
	}
	return u
}
