package secret

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// gcmSealer is a test Sealer: AES-256-GCM under a per-environment key with
// the row identity as additional data, like the barrier.
type gcmSealer struct{ key [32]byte }

func newBarrier(t *testing.T) *gcmSealer {
	t.Helper()
	s := &gcmSealer{}
	rand.Read(s.key[:])
	return s
}

func (s *gcmSealer) aead(envID string) cipher.AEAD {
	k, err := hkdf.Key(sha256.New, s.key[:], nil, "env/"+envID, 32)
	if err != nil {
		panic(err)
	}
	b, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCMWithRandomNonce(b)
	return g
}

func (s *gcmSealer) SealEnv(envID string, aad, pt []byte) ([]byte, error) {
	return s.aead(envID).Seal(nil, nil, pt, aad), nil
}

func (s *gcmSealer) OpenEnv(envID string, aad, ct []byte) ([]byte, error) {
	return s.aead(envID).Open(nil, nil, ct, aad)
}

func each(t *testing.T, fn func(t *testing.T, s *Service, st storage.Store)) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s := New(st, newBarrier(t), Options{MaxVersions: 3})
		if _, err := s.CreateProject(t.Context(), "pay", "user:alice", nil); err != nil {
			t.Fatal(err)
		}
		fn(t, s, st)
	})
}

func intp(i int) *int { return &i }

func TestProjectsAndEnvs(t *testing.T) {
	each(t, func(t *testing.T, s *Service, _ storage.Store) {
		ctx := t.Context()
		envs, err := s.ListEnvs(ctx, "pay")
		if err != nil || len(envs) != 3 || envs[0].Name != "dev" || envs[1].Name != "prod" || envs[2].Name != "staging" {
			t.Fatalf("default envs = %+v, %v", envs, err)
		}
		if _, err := s.CreateProject(ctx, "pay", "x", nil); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate project: %v", err)
		}
		if _, err := s.CreateEnv(ctx, "pay", "qa", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateEnv(ctx, "pay", "qa", nil); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate env: %v", err)
		}
		if _, err := s.CreateEnv(ctx, "nope", "qa", nil); !errors.Is(err, ErrProjectNotFound) {
			t.Fatalf("env in missing project: %v", err)
		}
		ps, err := s.ListProjects(ctx)
		if err != nil || len(ps) != 1 || len(ps[0].Envs) != 4 {
			t.Fatalf("projects = %+v %v", ps, err)
		}
		for _, bad := range []string{"", "Pay", "-x", "a b", "a/b", "é", strings.Repeat("a", 64), "a\x00"} {
			if _, err := s.CreateProject(ctx, bad, "x", nil); !errors.Is(err, ErrInvalid) {
				t.Errorf("CreateProject(%q) = %v", bad, err)
			}
		}
	})
}

func TestPutGetVersionsRollback(t *testing.T) {
	each(t, func(t *testing.T, s *Service, _ storage.Store) {
		ctx := t.Context()
		for i := 1; i <= 4; i++ {
			info, err := s.Put(ctx, "pay", "staging", "db/password", []byte(fmt.Sprintf("v%d", i)), PutOptions{By: "user:alice"})
			if err != nil || info.Version != i {
				t.Fatalf("put %d: %+v %v", i, info, err)
			}
		}
		got, err := s.Get(ctx, "pay", "staging", "db/password", 0)
		if err != nil || string(got.Value) != "v4" || got.Version != 4 {
			t.Fatalf("get = %+v %v", got, err)
		}
		// Only the last 3 versions are kept.
		if _, err := s.Get(ctx, "pay", "staging", "db/password", 1); !errors.Is(err, ErrVersionNotFound) {
			t.Fatalf("pruned version: %v", err)
		}
		old, err := s.Get(ctx, "pay", "staging", "db/password", 2)
		if err != nil || string(old.Value) != "v2" {
			t.Fatalf("old version: %v", err)
		}
		info, err := s.Rollback(ctx, "pay", "staging", "db/password", 2, PutOptions{By: "user:bob"})
		if err != nil || info.Version != 5 {
			t.Fatalf("rollback: %+v %v", info, err)
		}
		got, _ = s.Get(ctx, "pay", "staging", "db/password", 0)
		if string(got.Value) != "v2" || got.UpdatedBy != "user:bob" {
			t.Fatalf("after rollback: %q by %s", got.Value, got.UpdatedBy)
		}
		h, err := s.History(ctx, "pay", "staging", "db/password")
		if err != nil || len(h) != 3 || h[0].Version != 5 || !h[0].Current {
			t.Fatalf("history = %+v %v", h, err)
		}
		// Environments are separate.
		if _, err := s.Get(ctx, "pay", "prod", "db/password", 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("prod read: %v", err)
		}
	})
}

func TestCheckAndSet(t *testing.T) {
	each(t, func(t *testing.T, s *Service, _ storage.Store) {
		ctx := t.Context()
		if _, err := s.Put(ctx, "pay", "dev", "k", []byte("a"), PutOptions{CAS: intp(0)}); err != nil {
			t.Fatal(err)
		}
		_, err := s.Put(ctx, "pay", "dev", "k", []byte("b"), PutOptions{CAS: intp(0)})
		var ce *CASError
		if !errors.As(err, &ce) || ce.Current != 1 {
			t.Fatalf("cas 0 on existing: %v", err)
		}
		if _, err := s.Put(ctx, "pay", "dev", "k", []byte("b"), PutOptions{CAS: intp(1)}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Get(ctx, "pay", "dev", "k", 0)
		if string(got.Value) != "b" {
			t.Fatal("cas write lost")
		}
	})
}

// Two writers racing: every acknowledged write is a version.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s := New(st, newBarrier(t), Options{MaxVersions: 1000})
		ctx := t.Context()
		if _, err := s.CreateProject(ctx, "pay", "x", nil); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		versions := map[int]string{}
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					val := fmt.Sprintf("w%d-%d", w, i)
					info, err := s.Put(ctx, "pay", "dev", "race", []byte(val), PutOptions{})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if prev, dup := versions[info.Version]; dup {
						t.Errorf("version %d acknowledged twice (%s, %s)", info.Version, prev, val)
					}
					versions[info.Version] = val
					mu.Unlock()
				}
			}(w)
		}
		wg.Wait()
		if len(versions) != 80 {
			t.Fatalf("%d acknowledged versions, want 80", len(versions))
		}
		for v, val := range versions {
			got, err := s.Get(ctx, "pay", "dev", "race", v)
			if err != nil || string(got.Value) != val {
				t.Fatalf("version %d = %v %v, want %s", v, got, err, val)
			}
		}
	})
}

func TestDeleteUndeleteDestroy(t *testing.T) {
	each(t, func(t *testing.T, s *Service, _ storage.Store) {
		ctx := t.Context()
		s.Put(ctx, "pay", "dev", "a/b", []byte("1"), PutOptions{})
		s.Put(ctx, "pay", "dev", "a/b", []byte("2"), PutOptions{})
		if err := s.Delete(ctx, "pay", "dev", "a/b", "x", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "pay", "dev", "a/b", 0); !errors.Is(err, ErrDeleted) {
			t.Fatalf("get deleted: %v", err)
		}
		if l, _ := s.List(ctx, "pay", "dev", "", true); len(l) != 0 {
			t.Fatalf("deleted secret listed: %+v", l)
		}
		if err := s.Undelete(ctx, "pay", "dev", "a/b", "x", nil); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "pay", "dev", "a/b", 0); err != nil || string(got.Value) != "2" {
			t.Fatalf("after undelete: %v", err)
		}
		if err := s.Destroy(ctx, "pay", "dev", "a/b", []int{1}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "pay", "dev", "a/b", 1); !errors.Is(err, ErrDestroyed) {
			t.Fatalf("read destroyed version: %v", err)
		}
		if _, err := s.Rollback(ctx, "pay", "dev", "a/b", 1, PutOptions{}); !errors.Is(err, ErrDestroyed) {
			t.Fatalf("rollback to destroyed: %v", err)
		}
		if err := s.Destroy(ctx, "pay", "dev", "a/b", []int{9}, nil); !errors.Is(err, ErrVersionNotFound) {
			t.Fatalf("destroy missing version: %v", err)
		}
		if err := s.Delete(ctx, "pay", "dev", "nope", "x", nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete missing: %v", err)
		}
	})
}

func TestListFolderDiff(t *testing.T) {
	each(t, func(t *testing.T, s *Service, _ storage.Store) {
		ctx := t.Context()
		for _, p := range []string{"app/db/user", "app/db/pass", "app/api_key", "app0", "other/x"} {
			if _, err := s.Put(ctx, "pay", "staging", p, []byte("val-"+p), PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		s.Put(ctx, "pay", "prod", "app/api_key", []byte("p"), PutOptions{})
		s.Put(ctx, "pay", "prod", "prod-only", []byte("p"), PutOptions{})
		l, err := s.List(ctx, "pay", "staging", "app/", false)
		if err != nil {
			t.Fatal(err)
		}
		names := []string{}
		for _, e := range l {
			names = append(names, e.Name)
		}
		if strings.Join(names, ",") != "api_key,db/" {
			t.Fatalf("list app/ = %v", names)
		}
		l, _ = s.List(ctx, "pay", "staging", "app", true)
		if len(l) != 3 {
			t.Fatalf("recursive list = %+v", l)
		}
		m, err := s.ReadFolder(ctx, "pay", "staging", "app/db", false)
		if err != nil || len(m) != 2 || string(m["user"]) != "val-app/db/user" {
			t.Fatalf("folder = %v %v", m, err)
		}
		d, err := s.DiffEnvs(ctx, "pay", "staging", "prod")
		if err != nil || strings.Join(d.Both, ",") != "app/api_key" || strings.Join(d.OnlyB, ",") != "prod-only" || len(d.OnlyA) != 4 {
			t.Fatalf("diff = %+v %v", d, err)
		}
	})
}

func TestBadInput(t *testing.T) {
	each(t, func(t *testing.T, s *Service, _ storage.Store) {
		ctx := t.Context()
		for _, p := range []string{"", "..", ".", "a/../b", "a/./b", "a//b", "/a", "a/", "a\nb", "a\x00b", "a\xffb", "a b", "a%2e%2e", strings.Repeat("a/", 20) + "a"} {
			if _, err := s.Put(ctx, "pay", "dev", p, []byte("x"), PutOptions{}); !errors.Is(err, ErrInvalid) {
				t.Errorf("Put(%q) = %v, want ErrInvalid", p, err)
			}
			if _, err := s.Get(ctx, "pay", "dev", p, 0); !errors.Is(err, ErrInvalid) {
				t.Errorf("Get(%q) = %v, want ErrInvalid", p, err)
			}
		}
		if _, err := s.Put(ctx, "pay", "dev", "big", bytes.Repeat([]byte("x"), MaxValueBytes+1), PutOptions{}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("oversized value: %v", err)
		}
		if _, err := s.Put(ctx, "pay", "nope", "k", []byte("x"), PutOptions{}); !errors.Is(err, ErrEnvNotFound) {
			t.Errorf("missing env: %v", err)
		}
		if _, err := s.Put(ctx, "nope", "dev", "k", []byte("x"), PutOptions{}); !errors.Is(err, ErrProjectNotFound) {
			t.Errorf("missing project: %v", err)
		}
		if _, err := s.Put(ctx, "pay", "dev", "k", []byte("x"), PutOptions{Metadata: &Metadata{RotationInterval: "soon"}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad metadata: %v", err)
		}
		// Nothing was stored by the refused writes.
		if l, _ := s.List(ctx, "pay", "dev", "", true); len(l) != 0 {
			t.Fatalf("refused writes stored something: %+v", l)
		}
	})
}

// A ciphertext copied to another row does not open, and no value is in the
// raw database bytes.
func TestCiphertextBoundToRow(t *testing.T) {
	each(t, func(t *testing.T, s *Service, st storage.Store) {
		ctx := t.Context()
		const known = "plaintext-secret-value-4c1d9e"
		s.Put(ctx, "pay", "staging", "a", []byte(known), PutOptions{})
		s.Put(ctx, "pay", "prod", "b", []byte("other"), PutOptions{})
		if storagetest.RawContains(t, st, []byte(known)) {
			t.Fatal("secret value found in plaintext in the database")
		}
		err := st.Write(ctx, func(tx storage.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE secret_versions SET ciphertext = (SELECT ciphertext FROM secret_versions WHERE path = 'a') WHERE path = 'b'`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "pay", "prod", "b", 0); err == nil {
			t.Fatalf("moved ciphertext opened: %q", got.Value)
		}
	})
}

// A refused character is named as the character it is, not as one byte of
// its UTF-8 form.
func TestValidatePathNamesTheCharacter(t *testing.T) {
	for path, want := range map[string]string{
		"ü":      `character 'ü' is not allowed`,
		"a/b c":  `character ' ' is not allowed`,
		"db/密码":  `character '密' is not allowed`,
		"x\x7fy": `character '\x7f' is not allowed`,
	} {
		err := ValidatePath(path)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidatePath(%q) = %v, want %s", path, err, want)
		}
	}
	if err := ValidatePath("a/\xc3"); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("invalid UTF-8: %v", err)
	}
}

func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"a/b", "..", "a//b", "x.y_z-1", "a/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidatePath(p) != nil {
			return
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted %q", p)
			}
		}
	})
}

// Every change of what the current value reads as appends EventChange in its
// transaction and, once committed, calls Options.Changed; failed changes do
// neither.
func TestChangesAreAnnounced(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		ctx := t.Context()
		var got []string
		s := New(st, newBarrier(t), Options{Changed: func(p, e, path string) { got = append(got, p+"/"+e+"/"+path) }})
		if _, err := s.CreateProject(ctx, "pay", "user:alice", nil); err != nil {
			t.Fatal(err)
		}
		countEvents := func() int {
			var n int
			if err := st.Read(ctx, func(tx storage.Tx) error {
				return tx.QueryRow(ctx, `SELECT COUNT(*) FROM events WHERE kind = $1 AND key = $2`, EventChange, "pay/dev/k").Scan(&n)
			}); err != nil {
				t.Fatal(err)
			}
			return n
		}
		steps := []func() error{
			func() error { _, err := s.Put(ctx, "pay", "dev", "k", []byte("v1"), PutOptions{}); return err },
			func() error { _, err := s.Put(ctx, "pay", "dev", "k", []byte("v2"), PutOptions{}); return err },
			func() error { _, err := s.Rollback(ctx, "pay", "dev", "k", 1, PutOptions{}); return err },
			func() error { return s.Delete(ctx, "pay", "dev", "k", "x", nil) },
			func() error { return s.Undelete(ctx, "pay", "dev", "k", "x", nil) },
			func() error { return s.Destroy(ctx, "pay", "dev", "k", []int{1}, nil) },
		}
		for i, step := range steps {
			if err := step(); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if len(got) != i+1 || got[i] != "pay/dev/k" || countEvents() != i+1 {
				t.Fatalf("after step %d: changed %v, %d events", i, got, countEvents())
			}
		}
		// A refused change announces nothing.
		if _, err := s.Put(ctx, "pay", "dev", "k", []byte("v"), PutOptions{CAS: intp(1)}); err == nil {
			t.Fatal("stale CAS accepted")
		}
		if len(got) != len(steps) || countEvents() != len(steps) {
			t.Fatalf("a failed write was announced: %v, %d events", got, countEvents())
		}
	})
}
