package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Dev-mode files in the data directory.
const (
	devKeyFile   = "dev-unseal.key" // the single unseal share: NOT for production
	devTokenFile = "root-token"     // the root token, for convenience
)

// startDev initialises the node on first start and unseals it from the key
// file in the data directory.
func (n *Node) startDev(ctx context.Context, banner io.Writer) error {
	keyPath := filepath.Join(n.cfg.DataDir, devKeyFile)
	tokenPath := filepath.Join(n.cfg.DataDir, devTokenFile)
	if !n.sys.initialized {
		// The key file and token file are written before the init commits,
		// so a crash in between leaves an uninitialised store that the next
		// start initialises again (overwriting both files).
		_, err := n.sys.initialize(ctx, 1, 1, func(res *initResult) error {
			if err := writeFileAtomic(keyPath, []byte(res.shares[0]+"\n"), 0o600); err != nil {
				return fmt.Errorf("dev mode: writing %s: %w", keyPath, err)
			}
			return writeFileAtomic(tokenPath, []byte(res.rootToken+"\n"), 0o600)
		})
		if err != nil {
			return fmt.Errorf("dev mode: initialising: %w", err)
		}
	}
	share, err := os.ReadFile(keyPath)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dev mode: %s is missing but the store is initialised; this data directory was not created by --dev (unseal it with 'keyward operator unseal' instead)", keyPath)
	}
	if err != nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	if err := n.sys.unsealWithShare(ctx, strings.TrimSpace(string(share))); err != nil {
		return fmt.Errorf("dev mode: unsealing from %s: %w", keyPath, err)
	}
	tok, err := os.ReadFile(tokenPath)
	if err != nil {
		return fmt.Errorf("dev mode: reading root token: %w", err)
	}
	n.devRootToken = strings.TrimSpace(string(tok))
	if banner != nil {
		n.printDevBanner(banner, tokenPath)
	}
	return nil
}

func (n *Node) printDevBanner(w io.Writer, tokenPath string) {
	scheme := "http"
	if n.cfg.TLSCert != "" {
		scheme = "https"
	}
	addr := scheme + "://" + n.cfg.Listen
	dataPlane := ""
	if n.cfg.GatewayListen != "" {
		dataPlane = "\n    Data plane:  " + scheme + "://" + n.cfg.GatewayListen + " (gateway, token exchange, key verification, health)"
	}
	fmt.Fprintf(w, `
WARNING: keyward is running in DEVELOPMENT mode. It unseals itself with a key
stored next to the data (%s): anyone who can read that directory can read
every secret. Do NOT use dev mode in production.

    Address:     %s%s
    Dashboard:   %s/ui/ (paste the root token)
    Root token:  %s
    (also in %s)

Try:
    export KEYWARD_ADDR=%s KEYWARD_TOKEN=$(cat %s)
    keyward operator status
    keyward operator rotate
    curl -s %s/v1/sys/health

`, filepath.Join(n.cfg.DataDir, devKeyFile), addr, dataPlane, addr, n.devRootToken, tokenPath, addr, tokenPath, addr)
}

// writeFileAtomic writes data to path through a synced temp file and a rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
