package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The sys table (created by every backend's first migration) holds small
// named values of the node itself: seal configuration, the sealed keyring,
// the root token hash. Keys are not secret and appear in errors; values are
// opaque bytes (sealed by the caller when they must be secret) and never do.

// GetSys returns the value stored under key, or an error wrapping ErrNotFound.
func GetSys(ctx context.Context, tx Tx, key string) ([]byte, error) {
	var v []byte
	err := tx.QueryRow(ctx, `SELECT value FROM sys WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sys %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get sys %q: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// PutSys stores value under key, replacing any value already there.
func PutSys(ctx context.Context, tx Tx, key string, value []byte) error {
	_, err := tx.Exec(ctx, `INSERT INTO sys (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		key, nonNil(value), time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("storage: put sys %q: %w", key, err)
	}
	return nil
}

// InsertSys stores value under key only if key is absent; otherwise it
// returns an error wrapping ErrConflict and changes nothing. Two transactions
// racing to insert the same key: exactly one succeeds, which makes it the
// primitive for one-time initialisation. A conflict does not abort the
// transaction (the statement is INSERT ... ON CONFLICT DO NOTHING), so the
// caller may go on using tx.
func InsertSys(ctx context.Context, tx Tx, key string, value []byte) error {
	r, err := tx.Exec(ctx, `INSERT INTO sys (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO NOTHING`,
		key, nonNil(value), time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("storage: insert sys %q: %w", key, err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return fmt.Errorf("storage: insert sys %q: %w", key, err)
	}
	if n == 0 {
		return fmt.Errorf("sys %q already set: %w", key, ErrConflict)
	}
	return nil
}

// DeleteSys removes key. It returns an error wrapping ErrNotFound when key
// was absent (callers that do not care use errors.Is to ignore it).
func DeleteSys(ctx context.Context, tx Tx, key string) error {
	r, err := tx.Exec(ctx, `DELETE FROM sys WHERE key = $1`, key)
	if err != nil {
		return fmt.Errorf("storage: delete sys %q: %w", key, err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return fmt.Errorf("storage: delete sys %q: %w", key, err)
	}
	if n == 0 {
		return fmt.Errorf("sys %q: %w", key, ErrNotFound)
	}
	return nil
}

// nonNil turns a nil slice into an empty one: drivers bind nil []byte as
// NULL, which the NOT NULL column refuses.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
