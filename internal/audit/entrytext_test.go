package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// textRow is a row with every entry-text value set, including values that
// need escaping.
func textRow() row {
	return row{
		time: 1700000000123456789, principal: `app:"web"`, requestID: "req-1", authMethod: "token", accessor: "ab12", action: "read",
		resource: `secret/"app"\db`, environment: "prod", sourceAddr: "192.0.2.1",
		userAgent: "cli/1\t\x01\x7f\u2028é", outcome: OutcomeAllowed, status: 200, latencyUS: -150,
		detail: `{"version":"3"}`,
	}
}

// The known answer pins the spelling: the one migrations 0018 and 0025
// produce with SQLite's json_array and json_quote and PostgreSQL's to_json
// (migrate_test.go checks that against both databases).
func TestEntryTextKnownAnswer(t *testing.T) {
	r := textRow()
	const want = `[1700000000123456789,"app:\"web\"","req-1","token","ab12","read","secret/\"app\"\\db","prod","192.0.2.1",` +
		`"cli/1\t\u0001` + "\x7f\u2028é" + `","allowed",200,-150,"{\"version\":\"3\"}"]`
	got := string(r.appendEntryText(nil))
	if got != want {
		t.Fatalf("entry text =\n%s\nwant\n%s", got, want)
	}
	if size := r.entryTextSize(); size < len(got)-6 { // six bytes of escapes
		t.Errorf("entryTextSize = %d for %d bytes", size, len(got))
	}
	var back row
	if err := back.decodeEntryText(got); err != nil || !reflect.DeepEqual(back, entryTextOnly(r)) {
		t.Fatalf("decoded to %+v, %v", back, err)
	}
}

// entryTextOnly keeps the values the entry text holds, for comparisons.
func entryTextOnly(r row) row {
	return row{time: r.time, principal: r.principal, requestID: r.requestID, authMethod: r.authMethod, accessor: r.accessor, action: r.action,
		resource: r.resource, environment: r.environment, sourceAddr: r.sourceAddr, userAgent: r.userAgent,
		outcome: r.outcome, status: r.status, latencyUS: r.latencyUS, detail: r.detail}
}

// Any JSON spelling of the same values decodes to them: the hash covers
// values, so spelling is not tampering.
func TestEntryTextOtherSpellings(t *testing.T) {
	want := row{time: -5, principal: "p", requestID: "r/é😀", authMethod: "a", accessor: "\x00", action: "\b\f\n\r\t",
		resource: `"\`, environment: "", sourceAddr: "", userAgent: "", outcome: "allowed",
		status: 0, latencyUS: math.MinInt64, detail: "{}"}
	for _, s := range []string{
		`[-5,"p","r/é😀","a","\u0000","\b\f\n\r\t","\"\\","","","","allowed",0,-9223372036854775808,"{}"]`,
		" \t\n\r[ -5 ,\"\\u0070\", \"r\\/\\u00e9\\ud83d\\ude00\" , \"\\u0061\",\"\\u0000\",\"\\u0008\\u000C\\u000a\\u000D\\u0009\",\"\\u0022\\u005C\",\"\",\"\",\"\",\"allowed\",-0,-9223372036854775808,\"{}\"\n] \n",
		`[-5 , "p",  "r/\u00E9\uD83D\uDE00","a","\u0000","\b\f\n\r\t","\"\\","","","","\u0061llowed",0,-9223372036854775808,"{}"]`,
	} {
		var r row
		if err := r.decodeEntryText(s); err != nil || !reflect.DeepEqual(r, want) {
			t.Errorf("decode(%q) = %+v, %v\nwant %+v", s, r, err, want)
		}
	}
}

func TestEntryTextRejects(t *testing.T) {
	r0 := textRow()
	valid := string(r0.appendEntryText(nil))
	for _, c := range []struct{ text, err string }{
		{``, "byte 0: want '['"},
		{`   `, "byte 3: want '['"},
		{`{}`, "byte 0: want '['"},
		{`[]`, "byte 1 (time): want an integer"},
		{`["a"]`, "byte 1 (time): want an integer"},
		{`[1]`, "byte 2 (principal): the array ends after 1 values, want 14"},
		{`[1,"p","a"]`, "byte 10 (auth_method): the array ends after 3 values, want 14"},
		{`[1,"p","a",`, "byte 11 (auth_method): want a string"},
		{`[1,"p","a" "b"]`, "byte 11 (auth_method): want ','"},
		{`[1,"p","a",,"b"]`, "byte 11 (auth_method): want a string"},
		{strings.Replace(valid, `1700000000123456789`, `"1700000000123456789"`, 1), "byte 1 (time): want an integer"},
		{strings.Replace(valid, `"app:\"web\""`, `null`, 1), "(principal): null stands for the entry before's value; this entry has none"},
		{strings.Replace(valid, `"app:\"web\""`, `nul`, 1), "(principal): want a string"},
		{strings.Replace(valid, `"read"`, `7`, 1), "(action): want a string"},
		{strings.Replace(valid, `"read"`, `null`, 1), "(action): null stands for the entry before's value; this entry has none"},
		{strings.Replace(valid, `,200,`, `,"200",`, 1), "(status): want an integer"},
		{strings.Replace(valid, `,200,`, `,200.0,`, 1), "(status): want an integer (no fraction, exponent or leading zero)"},
		{strings.Replace(valid, `,200,`, `,2e2,`, 1), "(status): want an integer (no fraction, exponent or leading zero)"},
		{strings.Replace(valid, `,200,`, `,0200,`, 1), "(status): want an integer (no fraction, exponent or leading zero)"},
		{strings.Replace(valid, `,200,`, `,+200,`, 1), "(status): want an integer"},
		{strings.Replace(valid, `,200,`, `,-,`, 1), "(status): want an integer"},
		{strings.Replace(valid, `,200,`, `,true,`, 1), "(status): want an integer"},
		{strings.Replace(valid, `,-150,`, `,9223372036854775808,`, 1), "(latency_us): integer out of range"},
		{strings.Replace(valid, `,-150,`, `,-9223372036854775809,`, 1), "(latency_us): integer out of range"},
		{strings.Replace(valid, `"{\"version\":\"3\"}"`, `{"version":"3"}`, 1), "(detail): want a string"},
		{strings.Replace(valid, `"{\"version\":\"3\"}"]`, `"x","y"]`, 1), "the array has more than 14 values"},
		{valid + "x", "data after the array"},
		{valid + "[]", "data after the array"},
		{strings.TrimSuffix(valid, "]"), "want ']'"},
		{strings.Replace(valid, `"prod"`, "\"pr\nod\"", 1), "(environment): control character in a string"},
		{strings.Replace(valid, `"prod"`, "\"pr\xffod\"", 1), "(environment): invalid UTF-8"},
		{strings.Replace(valid, `"prod"`, "\"pr\xed\xa0\x80od\"", 1), "(environment): invalid UTF-8"}, // CESU surrogate
		{strings.Replace(valid, `"prod"`, `"pr\od"`, 1), "(environment): invalid escape"},
		{strings.Replace(valid, `"prod"`, `"pr\u00g0"`, 1), `(environment): want four hex digits after \u`},
		{strings.Replace(valid, `"prod"`, `"pr\ud800"`, 1), "(environment): lone UTF-16 surrogate"},
		{strings.Replace(valid, `"prod"`, `"pr\ud800\u0041"`, 1), "(environment): lone UTF-16 surrogate"},
		{strings.Replace(valid, `"prod"`, `"pr\udc00\udc00"`, 1), "(environment): lone UTF-16 surrogate"},
		{strings.Replace(valid, `"prod"`, `"pr\udc00"`, 1), "(environment): lone UTF-16 surrogate"},
		{`[1,"a`, "(principal): unterminated string"},
		{`[1,"a\`, "(principal): unterminated escape"},
		{`[1,"a\u12`, `(principal): want four hex digits after \u`},
	} {
		var r row
		err := r.decodeEntryText(c.text)
		if err == nil || !strings.Contains(err.Error(), c.err) || !strings.HasPrefix(err.Error(), "malformed entry text: byte ") {
			t.Errorf("decode(%q) = %v, want an error with %q", c.text, err, c.err)
		}
	}
}

// Decoding allocates nothing for strings without escapes.
func TestEntryTextDecodeAllocs(t *testing.T) {
	r := textRow()
	r.userAgent, r.resource, r.principal = "cli/1", "secret/app/db", "app:web"
	text := string(r.appendEntryText(nil))
	allocs := testing.AllocsPerRun(100, func() {
		var back row
		if err := back.decodeEntryText(text); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 1 { // the detail, which has escaped quotes
		t.Errorf("decoding allocates %v times, want 1", allocs)
	}
}

// Whatever values a row holds (as clean leaves them: valid UTF-8), its
// entry text is valid JSON that decodes back to them.
func FuzzEntryTextRoundTrip(f *testing.F) {
	f.Add(int64(1700000000123456789), "app:web", "req", "token", "ab", "read", "secret/a", "prod", "192.0.2.1", "UA/1.0", "allowed", int64(200), int64(150), `{"k":"v"}`)
	f.Add(int64(0), "", "", "", "", "", "", "", "", "", "", int64(0), int64(0), "")
	f.Add(int64(-1), "p\x00", "\x00\x01\x1f\x7f", "\"\\/", "\b\f\n\r\t", "\u2028\u2029", "😀é\uFFFD", "\xff\xfe", "a\x00b", "", "denied",
		int64(math.MinInt64), int64(math.MaxInt64), "{\"a\\u0000\":\"\\\"\"}")
	f.Fuzz(func(t *testing.T, tm int64, principal, reqID, authMethod, accessor, action, resource, env, source, ua, outcome string,
		status, latency int64, detail string) {
		v := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
		r := row{
			time: tm, principal: v(principal), requestID: v(reqID), authMethod: v(authMethod), accessor: v(accessor), action: v(action),
			resource: v(resource), environment: v(env), sourceAddr: v(source), userAgent: v(ua),
			outcome: v(outcome), status: status, latencyUS: latency, detail: v(detail),
		}
		text := r.appendEntryText(nil)
		var back row
		if err := back.decodeEntryText(string(text)); err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("%s decodes to %+v, %v\nwant %+v", text, back, err, r)
		}
		if !json.Valid(text) {
			t.Fatalf("%s is not valid JSON", text)
		}
		if n := r.entryTextSize(); len(text) > n && !bytes.ContainsAny(text, "\\") {
			t.Fatalf("entryTextSize %d < %d without escapes", n, len(text))
		}
	})
}

// The entry text comes from the database, which an attacker may have
// edited: whatever it holds, decoding never panics, and what it accepts
// encoding/json reads as the same 14 values, and it re-encodes to a text
// that decodes the same.
func FuzzDecodeEntryText(f *testing.F) {
	r0 := textRow()
	f.Add(string(r0.appendEntryText(nil)))
	f.Add(`[0,"p","r/é😀","a","\u0000","\b\f\n\r\t","\"\\","","","","allowed",0,-9223372036854775808,"{}"]`)
	f.Add(` [ -0, "" , "\ud83d\ude00" , "\u00E9", "\/","","","","","","",-0,1,""] `)
	f.Add(`[1,"p","a","b","c","d","e","f","g","h","i",1.5,2,"j"]`)
	f.Add(`[1,"\ud800","b","c","d","e","f","g","h","i","k",1,2,"j"]`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, s string) {
		var r row
		if err := r.decodeEntryText(s); err != nil {
			return
		}
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var vals []any
		if err := dec.Decode(&vals); err != nil || dec.More() {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", s, err)
		}
		want := []any{json.Number(strconv.FormatInt(r.time, 10)), r.principal, r.requestID, r.authMethod, r.accessor, r.action, r.resource, r.environment,
			r.sourceAddr, r.userAgent, r.outcome, json.Number(strconv.FormatInt(r.status, 10)),
			json.Number(strconv.FormatInt(r.latencyUS, 10)), r.detail}
		if len(vals) != len(want) {
			t.Fatalf("accepted %q: encoding/json reads %d values", s, len(vals))
		}
		for i := range want {
			got := vals[i]
			if n, ok := got.(json.Number); ok && n == "-0" {
				got = json.Number("0")
			}
			if got != want[i] {
				t.Fatalf("accepted %q: value %d is %#v, encoding/json reads %#v", s, i, want[i], vals[i])
			}
		}
		var again row
		if err := again.decodeEntryText(string(r.appendEntryText(nil))); err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoded %q decodes to %+v, %v", s, again, err)
		}
	})
}

// A block's text is the array of its entries' texts; it decodes back to
// them, whatever its spelling, and refuses a count other than the
// block's.
func TestBlockText(t *testing.T) {
	rows := []*row{new(row), new(row), new(row)}
	*rows[0], *rows[1], *rows[2] = textRow(), textRow(), textRow()
	rows[1].principal, rows[1].time, rows[2].detail = "svc:ci", 5, ""
	text := string(appendBlockText(nil, rows))
	if !json.Valid([]byte(text)) || !strings.HasPrefix(text, "[[1700000000123456789,") || !strings.HasSuffix(text, `""]]`) {
		t.Fatalf("block text %s", text)
	}
	// The second entry repeats the first's fields but its principal and
	// time: they are stored as null.
	if got := strings.Count(text, "null"); got != 10+9 {
		t.Errorf("%d nulls in %s, want 19 (10 for the second entry, 9 for the third)", got, text)
	}
	back := make([]row, 3)
	if err := decodeBlockText(text, back); err != nil {
		t.Fatal(err)
	}
	for i := range back {
		if !reflect.DeepEqual(back[i], entryTextOnly(*rows[i])) {
			t.Errorf("entry %d decoded to %+v", i, back[i])
		}
	}
	if err := decodeBlockText(" [ "+strings.ReplaceAll(text[1:len(text)-1], "],[", "] ,\n[")+" ] ", back); err != nil {
		t.Errorf("respelled block: %v", err)
	}
	for _, c := range []struct {
		text string
		n    int
		err  string
	}{
		{text, 2, "the block has more than 2 entries"},
		{text, 4, "the block ends after 3 entries, want 4"},
		{"[]", 1, "byte 1: want '['"},
		{"", 1, "byte 0: want '[' (a block)"},
		{text[1 : len(text)-1], 3, "byte 1: want '['"},
		{strings.Replace(text, "],[", "][", 1), 3, "want ',' between entries"},
		{text + "x", 3, "data after the array"},
		{strings.TrimSuffix(text, "]"), 3, "want ']' (the block's end)"},
		{strings.Replace(text, `[1700000000123456789,"app:\"web\""`, `[1700000000123456789,null`, 1), 3, "(principal): null stands for the entry before's value"},
	} {
		err := decodeBlockText(c.text, make([]row, c.n))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("decodeBlockText(%.40q…, %d) = %v, want an error with %q", c.text, c.n, err, c.err)
		}
	}
}

// A block's text comes from the database too: whatever it holds, decoding
// never panics, and a text it accepts for n entries is a JSON array of n
// entries (each an array of 14 values), whose values re-encode to a block
// text that decodes to the same.
func FuzzDecodeBlockText(f *testing.F) {
	r0, r1 := textRow(), textRow()
	r1.principal = "svc:ci"
	f.Add(string(appendBlockText(nil, []*row{&r0, &r1})), 2)
	f.Add(string(appendBlockText(nil, []*row{&r0})), 1)
	f.Add(`[[0,"p","r","a","","","","","","","allowed",0,1,""]]`, 1)
	f.Add(`[[0,"p","r","a","","","","","","","allowed",0,1,""],[1,null,"s",null,null,null,null,null,null,null,null,2,3,null]]`, 2)
	f.Add(`[[],[]]`, 2)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 1 || n > blockMax {
			return
		}
		rows := make([]row, n)
		if err := decodeBlockText(s, rows); err != nil {
			return
		}
		var entries [][]any
		if err := json.Unmarshal([]byte(s), &entries); err != nil || len(entries) != n {
			t.Fatalf("accepted %q for %d entries; encoding/json reads %d: %v", s, n, len(entries), err)
		}
		for i, e := range entries {
			if len(e) != entryTextFields {
				t.Fatalf("accepted %q: entry %d has %d values", s, i, len(e))
			}
		}
		ptrs := make([]*row, n)
		for i := range rows {
			ptrs[i] = &rows[i]
		}
		again := make([]row, n)
		if err := decodeBlockText(string(appendBlockText(nil, ptrs)), again); err != nil || !reflect.DeepEqual(again, rows) {
			t.Fatalf("accepted %q: re-encoded, it decodes to %+v, %v", s, again, err)
		}
	})
}
