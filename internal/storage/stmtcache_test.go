package storage

import (
	"database/sql"
	"testing"
)

func TestCacheable(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1":                                           true,
		"\n\t  select v FROM t WHERE k = $1":                 true,
		"INSERT INTO t VALUES ($1)":                          true,
		"update t SET v = 1":                                 true,
		"DELETE FROM t":                                      true,
		"WITH x AS (SELECT 1) SELECT * FROM x":               true,
		"CREATE TABLE t (k TEXT)":                            false,
		"PRAGMA optimize":                                    false,
		"SELECT 1; DROP TABLE t":                             false,
		"INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)": false,
		"SELECT": false,
		"":       false,
	} {
		if got := cacheable(q); got != want {
			t.Errorf("cacheable(%q) = %v, want %v", q, got, want)
		}
	}
}

// One handle for reads and writes: one cache, counted once.
func TestCachedStatementsOneHandle(t *testing.T) {
	c := &stmtCache{m: map[string]*sql.Stmt{"SELECT 1": new(sql.Stmt), "SELECT 2": nil}}
	d := &DB{writer: c, reader: c}
	if n := d.CachedStatements(); n != 1 {
		t.Fatalf("CachedStatements = %d, want 1 (one prepared text; a failed one does not count)", n)
	}
	if n := (&DB{}).CachedStatements(); n != 0 {
		t.Fatalf("CachedStatements without a cache = %d", n)
	}
}
