package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// Restored is what Restore did.
type Restored struct {
	// Migration is the backup's schema version (the newest migration
	// applied to it); the server applies any newer ones at its next start.
	Migration int64
	// SetAside are the files that were in the way, renamed with a
	// ".pre-restore-TIME" suffix rather than deleted.
	SetAside []string
}

// Restore replaces the database at dbPath with the backup at backup, for a
// server that is not running. It checks the backup first (an SQLite file
// SQLite finds intact, holding a keyward schema no newer than this
// binary's, initialised) and refuses while dbPath has a -wal or -shm file
// beside it, which a running server has (and a crashed one leaves): those
// would be applied to the restored file. force sets them aside too, for
// the crashed case. An existing database is renamed, never deleted; the
// backup is copied in whole (0600, synced) or not at all.
func Restore(ctx context.Context, backup, dbPath string, force bool) (*Restored, error) {
	res := &Restored{}
	v, err := checkBackup(ctx, backup)
	if err != nil {
		return nil, err
	}
	res.Migration = v
	var companions []string
	for _, p := range []string{dbPath + "-wal", dbPath + "-shm"} {
		if _, err := os.Lstat(p); err == nil {
			companions = append(companions, p)
		}
	}
	if len(companions) > 0 && !force {
		return nil, fmt.Errorf("sqlite: %s is in use or was not closed cleanly (%s exists): stop the server first; "+
			"if none is running, it crashed: start and stop it once, or pass --force to set those files aside", dbPath, filepath.Base(companions[0]))
	}
	if err := prepareDir(filepath.Dir(dbPath)); err != nil {
		return nil, err
	}
	suffix := ".pre-restore-" + time.Now().UTC().Format("20060102T150405Z")
	for _, p := range append([]string{dbPath}, companions...) {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.Rename(p, p+suffix); err != nil {
			return res, fmt.Errorf("sqlite: setting %s aside: %w", p, unwrapPath(err))
		}
		res.SetAside = append(res.SetAside, p+suffix)
	}
	if err := copyPrivate(ctx, backup, dbPath); err != nil {
		return res, err
	}
	return res, nil
}

// checkBackup opens backup read-only and returns its schema version.
func checkBackup(ctx context.Context, backup string) (int64, error) {
	f, err := os.Open(backup)
	if err != nil {
		return 0, fmt.Errorf("sqlite: backup: %w", err)
	}
	var head [len(sqliteHeader)]byte
	_, err = io.ReadFull(f, head[:])
	f.Close()
	if err != nil || string(head[:]) != sqliteHeader {
		return 0, invalid(backup, "it is not an SQLite database", nil)
	}
	abs, err := filepath.Abs(backup)
	if err != nil {
		return 0, fmt.Errorf("sqlite: backup %q: %w", backup, err)
	}
	// immutable: nothing is written next to the backup, not even a lock.
	db, err := sql.Open("sqlite", dsn(abs, url.Values{"mode": {"ro"}, "immutable": {"1"}, "_pragma": {"trusted_schema(0)"}}))
	if err != nil {
		return 0, fmt.Errorf("sqlite: backup %s: %w", abs, err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&ok); err != nil || ok != "ok" {
		return 0, invalid(abs, "SQLite reports it damaged", errors.Join(err, quickCheckError(ok)))
	}
	if err := check(ctx, db, abs); err != nil {
		return 0, err
	}
	var newest sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&newest); err != nil || !newest.Valid {
		return 0, invalid(abs, "it holds no keyward schema", err)
	}
	known, err := newestMigration()
	if err != nil {
		return 0, err
	}
	if newest.Int64 > known {
		return 0, fmt.Errorf("sqlite: backup %s: %w: it is at migration %d, this keyward knows up to %d; restore it with the newer keyward that made it",
			abs, storage.ErrSchemaTooNew, newest.Int64, known)
	}
	var keyring int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sys WHERE key = 'barrier/keyring'`).Scan(&keyring); err != nil || keyring != 1 {
		return 0, invalid(abs, "it holds no keyring (a server that was never initialised)", err)
	}
	return newest.Int64, nil
}

func quickCheckError(s string) error {
	if s == "" || s == "ok" {
		return nil
	}
	return errors.New(strings.SplitN(s, "\n", 2)[0])
}

// newestMigration is the highest version among the embedded migrations.
func newestMigration() (int64, error) {
	entries, err := fs.ReadDir(Migrations(), ".")
	if err != nil {
		return 0, err
	}
	var newest int64
	for _, e := range entries {
		if v, err := strconv.ParseInt(strings.SplitN(e.Name(), "_", 2)[0], 10, 64); err == nil {
			newest = max(newest, v)
		}
	}
	return newest, nil
}

// copyPrivate copies src to dst through a temporary file beside dst (0600,
// synced, renamed), so dst is the whole copy or absent.
func copyPrivate(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	defer in.Close()
	dir := filepath.Dir(dst)
	out, err := os.CreateTemp(dir, ".keyward-restore-*")
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", unwrapPath(err))
	}
	tmp := out.Name()
	_, err = io.Copy(out, ctxReader{ctx, in})
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sqlite: restore: writing %s: %w", dst, unwrapPath(err))
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
