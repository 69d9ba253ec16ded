package server

import (
	"testing"
)

// GET /v1/audit?newest=true returns the newest entries, oldest first, and
// "older", the before of the page of older ones; bad values are 400s.
func TestAuditListNewest(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	for _, name := range []string{"a", "b", "c", "d"} {
		if c, out := raw(t, "POST", u+"/v1/projects", root, "application/json", `{"name":"`+name+`"}`); c != 201 {
			t.Fatalf("create project = %d %v", c, out)
		}
	}
	var all struct {
		Entries []struct{ Seq int64 }
	}
	if c := call(t, "GET", u+"/v1/audit?limit=1000", root, nil, &all); c != 200 || len(all.Entries) < 4 {
		t.Fatalf("list = %d, %d entries", c, len(all.Entries))
	}
	n := len(all.Entries)
	var page struct {
		Entries []struct{ Seq int64 }
		Next    int64
		Older   int64
	}
	if c := call(t, "GET", u+"/v1/audit?newest=true&limit=2", root, nil, &page); c != 200 {
		t.Fatalf("newest = %d", c)
	}
	// The listing itself was audited after the first read: the newest two
	// include at least the last two seen then.
	if len(page.Entries) != 2 || page.Entries[0].Seq+1 != page.Entries[1].Seq || page.Entries[1].Seq < all.Entries[n-1].Seq ||
		page.Older != page.Entries[0].Seq || page.Next != 0 {
		t.Fatalf("newest page = %+v (the log held %d entries)", page, n)
	}
	var back struct {
		Entries []struct{ Seq int64 }
		Older   int64
	}
	if c := call(t, "GET", u+"/v1/audit?newest=true&limit=2&before=2", root, nil, &back); c != 200 || len(back.Entries) != 1 || back.Entries[0].Seq != 1 || back.Older != 0 {
		t.Fatalf("before=2: %d %+v", c, back)
	}
	for _, q := range []string{"newest=yes", "before=0", "before=x"} {
		if c, out := raw(t, "GET", u+"/v1/audit?"+q, root, "", ""); c != 400 {
			t.Errorf("%s = %d %v, want 400", q, c, out)
		}
	}
}
