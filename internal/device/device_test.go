package device

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

type testMAC struct{ sealed bool }

func (m testMAC) MAC(purpose string, data []byte) []byte {
	if m.sealed {
		return nil
	}
	h := hmac.New(sha256.New, []byte("test-key/"+purpose))
	h.Write(data)
	return h.Sum(nil)
}

func TestEnrollment(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		ctx := t.Context()
		now := time.Unix(1_800_000_000, 0)
		s := New(st, testMAC{}, func() time.Time { return now })
		code, e, err := s.CreateEnrollment(ctx, "batch-42", []string{"thermostat", "thermostat"}, 2, time.Hour, "user:ops", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(code, "kwe_") || e.Remaining != 2 || len(e.Policies) != 1 || !ValidID(e.ID) {
			t.Fatalf("enrollment %q %+v", code, e)
		}
		if storagetest.RawContains(t, st, []byte(code)) {
			t.Fatal("the enrollment code is stored in the clear")
		}
		if err := s.CheckCode(ctx, code); err != nil {
			t.Fatalf("CheckCode of a live code: %v", err)
		}
		d1, err := s.Enroll(ctx, code, "jkt-one", "kitchen", nil)
		if err != nil || d1.EnrollmentID != e.ID || d1.Policies[0] != "thermostat" || d1.Principal() != "device:"+d1.ID {
			t.Fatalf("enroll 1: %+v, %v", d1, err)
		}
		if _, err := s.Enroll(ctx, code, "jkt-one", "", nil); !errors.Is(err, ErrKeyEnrolled) {
			t.Fatalf("the same key again: %v", err)
		}
		if _, err := s.Enroll(ctx, code, "jkt-two", "", nil); err != nil {
			t.Fatalf("enroll 2: %v", err)
		}
		if err := s.CheckCode(ctx, code); !errors.Is(err, ErrCode) {
			t.Fatalf("CheckCode of a used-up code: %v", err)
		}
		if _, err := s.Enroll(ctx, code, "jkt-three", "", nil); !errors.Is(err, ErrCode) {
			t.Fatalf("a third device on a code for two: %v", err)
		}
		if d, err := s.Get(ctx, d1.ID); err != nil || !d.Enabled() || !d.HoldsKey("jkt-one") || d.HoldsKey("jkt-two") || d.HoldsKey("") {
			t.Fatalf("Get = %+v, %v: want it enabled, holding jkt-one only", d, err)
		}
		if _, err := s.SetDisabled(ctx, d1.ID, true, nil); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.Get(ctx, d1.ID); d.Enabled() {
			t.Fatal("disabled device is enabled")
		}
		if d, _ := s.SetDisabled(ctx, d1.ID, false, nil); !d.DisabledAt.IsZero() {
			t.Fatalf("enabled again: %+v", d)
		}
		if err := s.Delete(ctx, d1.ID, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, d1.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get deleted: %v", err)
		}
		if err := s.Delete(ctx, d1.ID, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Delete again: %v", err)
		}
		if list, err := s.List(ctx, 10, ""); err != nil || len(list) != 1 {
			t.Fatalf("List = %v, %v", list, err)
		}

		// Expired, revoked, mistyped and unknown codes are one error.
		expiring, _, _ := s.CreateEnrollment(ctx, "", []string{"thermostat"}, 5, time.Minute, "user:ops", nil, nil)
		revoked, re, _ := s.CreateEnrollment(ctx, "", []string{"thermostat"}, 5, time.Hour, "user:ops", nil, nil)
		if err := s.RevokeEnrollment(ctx, re.ID, nil); err != nil {
			t.Fatal(err)
		}
		now = now.Add(2 * time.Minute)
		for name, c := range map[string]string{"expired": expiring, "revoked": revoked, "mistyped": code[:len(code)-1] + "x", "not a code": "hello"} {
			if _, err := s.Enroll(ctx, c, "jkt-new-"+name, "", nil); !errors.Is(err, ErrCode) {
				t.Errorf("%s: %v, want ErrCode", name, err)
			}
		}
		if err := s.RevokeEnrollment(ctx, "enr_"+strings.Repeat("x", 24), nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}
		if es, err := s.Enrollments(ctx); err != nil || len(es) != 3 {
			t.Fatalf("Enrollments = %v, %v", es, err)
		}
	})
}

func TestEnrollmentRefusals(t *testing.T) {
	s := New(nil, testMAC{}, nil)
	for name, tc := range map[string]struct {
		label    string
		policies []string
		uses     int
		ttl      time.Duration
		want     string
	}{
		"no policy": {"", nil, 1, time.Hour, "policies"},
		"root":      {"", []string{"root"}, 1, time.Hour, "never get root"},
		"uses":      {"", []string{"p"}, -1, time.Hour, "uses"},
		"ttl":       {"", []string{"p"}, 1, 60 * 24 * time.Hour, "ttl"},
		"bad label": {"a b", []string{"p"}, 1, time.Hour, "label"},
		"unknown":   {"", []string{"nope"}, 1, time.Hour, `"nope" does not exist`},
	} {
		known := func(p string) bool { return p == "p" }
		if _, _, err := s.CreateEnrollment(t.Context(), tc.label, tc.policies, tc.uses, tc.ttl, "x", known, nil); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalid about %q", name, err, tc.want)
		}
	}
	sealed := New(nil, testMAC{sealed: true}, nil)
	if _, _, err := sealed.CreateEnrollment(t.Context(), "", []string{"p"}, 1, time.Hour, "x", nil, nil); !errors.Is(err, ErrSealed) {
		t.Errorf("sealed: %v", err)
	}
}

// 64 devices race for a code of 10 uses: exactly 10 enroll.
func TestConcurrentEnrollment(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		s := New(st, testMAC{}, nil)
		code, _, err := s.CreateEnrollment(t.Context(), "", []string{"p"}, 10, time.Hour, "x", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ok atomic.Int32
		var wg sync.WaitGroup
		for i := range 64 {
			wg.Go(func() {
				_, err := s.Enroll(t.Context(), code, "jkt-"+string(rune('A'+i)), "", nil)
				switch {
				case err == nil:
					ok.Add(1)
				case !errors.Is(err, ErrCode):
					t.Errorf("device %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 10 {
			t.Fatalf("%d devices enrolled, want exactly 10", ok.Load())
		}
	})
}

// NoteToken records a device's last token in the caller's transaction, at
// most once a minute.
func TestNoteToken(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, st storage.Store) {
		ctx := t.Context()
		now := time.Unix(1_800_000_000, 0).UTC()
		s := New(st, testMAC{}, func() time.Time { return now })
		code, _, err := s.CreateEnrollment(ctx, "b", []string{"p"}, 1, time.Hour, "user:ops", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := s.Enroll(ctx, code, "jkt", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		note := func(at time.Time) time.Time {
			t.Helper()
			cur, err := s.Get(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Write(ctx, func(tx storage.Tx) error { return NoteToken(ctx, tx, cur, at) }); err != nil {
				t.Fatal(err)
			}
			got, _ := s.Get(ctx, d.ID)
			return got.LastTokenAt
		}
		if got := note(now); !got.Equal(now) {
			t.Fatalf("last token %v, want %v", got, now)
		}
		if got := note(now.Add(30 * time.Second)); !got.Equal(now) {
			t.Errorf("a token 30 s later wrote %v", got)
		}
		if later := now.Add(2 * time.Minute); !note(later).Equal(later) {
			t.Errorf("a token 2 min later was not recorded")
		}
	})
}
