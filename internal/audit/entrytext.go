package audit

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The entry text: how audit_blocks stores every field of an entry but its
// seq and hash (the block's seq and hashes give those). It is a JSON array
// of 14 values, always in this order:
//
//	[time, principal, request_id, auth_method, accessor_hmac, action,
//	 resource, environment, source_addr, user_agent, outcome, status,
//	 latency_us, detail]
//
// time (unix nanoseconds), status and latency_us are JSON integers
// (int64); the others are JSON strings; detail is the entry's detail JSON
// text carried as a string ("" when there is none). A block's text is the
// JSON array of its entries' texts, in seq order, where a string field
// may be null: the same value as the entry before's in the block.
//
// appendBlockText writes it compact, escaping only '"', '\' and the control
// characters (\b \t \n \f \r, the others as \u00xx): byte for byte what
// SQLite's json_array and json_quote and PostgreSQL's to_json produce, so
// the rows that migrations 0018 and 0025 converted read exactly like the
// ones the log writes.
//
// The text is not what is hashed: the hash covers the values it decodes to
// (encoding.go). decodeBlockText therefore accepts any JSON spelling of the
// values (whitespace, other escapes) and refuses anything else — another
// shape, other types, invalid UTF-8, a lone surrogate, an integer out of
// range, trailing data — with an error that Verify reports as tampering.

// entryTextFields is how many values the entry text holds.
const entryTextFields = 14

// entryTextNames names the values, for errors.
var entryTextNames = [entryTextFields]string{"time", "principal", "request_id", "auth_method", "accessor_hmac",
	"action", "resource", "environment", "source_addr", "user_agent", "outcome", "status", "latency_us", "detail"}

// appendEntryTextAfter appends r's entry text to b, writing null for each
// string equal to the same field of prev, the entry before it in its
// block (nil: none).
func (r *row) appendEntryTextAfter(b []byte, prev *row) []byte {
	b = append(b, '[')
	b = strconv.AppendInt(b, r.time, 10)
	b = append(b, ',')
	for i, s := range r.strs() {
		if prev != nil && *prev.strs()[i] == *s {
			b = append(b, "null"...)
		} else {
			b = appendTextString(b, *s)
		}
		if i < len(r.strs())-1 {
			b = append(b, ',')
		}
		if i == 9 { // after outcome: the integers, then detail
			b = strconv.AppendInt(b, r.status, 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, r.latencyUS, 10)
			b = append(b, ',')
		}
	}
	return append(b, ']')
}

// strs are r's string fields in entry text order (detail last).
func (r *row) strs() [11]*string {
	return [11]*string{&r.principal, &r.requestID, &r.authMethod, &r.accessor, &r.action, &r.resource,
		&r.environment, &r.sourceAddr, &r.userAgent, &r.outcome, &r.detail}
}

// entryTextSize is an upper bound of the length of r's entry text when no
// character needs escaping, for sizing buffers.
func (r *row) entryTextSize() int {
	return len(r.principal) + len(r.requestID) + len(r.authMethod) + len(r.accessor) + len(r.action) +
		len(r.resource) + len(r.environment) + len(r.sourceAddr) + len(r.userAgent) +
		len(r.outcome) + len(r.detail) + 3*20 + 2*11 + 13 + 2
}

// appendBlockText appends the text of a block of rows to b. A string
// field equal to the entry before's is written null: a block's entries
// often share their principal, accessor, action, resource, address and
// client, and the log then stores them once.
func appendBlockText(b []byte, rows []*row) []byte {
	b = append(b, '[')
	var prev *row
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = r.appendEntryTextAfter(b, prev)
		prev = r
	}
	return append(b, ']')
}

// appendTextString appends s as a JSON string, escaped as SQLite and
// PostgreSQL escape (see above): the short escapes for \b \t \n \f \r.
func appendTextString(b []byte, s string) []byte { return appendQuoted(b, s, true) }

// entryTextError is a stored entry text that does not decode.
type entryTextError struct {
	at   int    // byte offset
	elem int    // value index, -1 outside the values
	what string // what was wrong
}

func (e *entryTextError) Error() string {
	if e.elem >= 0 {
		return fmt.Sprintf("malformed entry text: byte %d (%s): %s", e.at, entryTextNames[e.elem], e.what)
	}
	return fmt.Sprintf("malformed entry text: byte %d: %s", e.at, e.what)
}

// decodeBlockText sets the fields of rows from the text of a block of
// len(rows) entries. Strings without escapes share s's memory. On error
// rows may be partly set.
func decodeBlockText(s string, rows []row) error {
	d := textDecoder{s: s, elem: -1}
	d.ws()
	if !d.consume('[') {
		return d.err("want '[' (a block)")
	}
	for i := range rows {
		d.ws()
		if i > 0 && !d.consume(',') {
			if d.peek() == ']' {
				return d.err(fmt.Sprintf("the block ends after %d entries, want %d", i, len(rows)))
			}
			return d.err("want ',' between entries")
		}
		var prev *row
		if i > 0 {
			prev = &rows[i-1]
		}
		if err := d.entry(&rows[i], prev); err != nil {
			return err
		}
	}
	d.ws()
	if !d.consume(']') {
		if d.peek() == ',' {
			return d.err(fmt.Sprintf("the block has more than %d entries", len(rows)))
		}
		return d.err("want ']' (the block's end)")
	}
	return d.end()
}

// entry reads one entry text into r; prev is the entry before it in its
// block, whose string fields a null stands for (nil: null is refused).
func (d *textDecoder) entry(r *row, prev *row) error {
	d.elem = -1
	d.ws()
	if !d.consume('[') {
		return d.err("want '['")
	}
	strs := r.strs()
	var prevStrs [11]*string
	if prev != nil {
		prevStrs = prev.strs()
	}
	str := func(j int) error {
		if strings.HasPrefix(d.s[d.i:], "null") {
			if prev == nil {
				return d.err("null stands for the entry before's value; this entry has none")
			}
			d.i += 4
			*strs[j] = *prevStrs[j]
			return nil
		}
		v, err := d.str()
		*strs[j] = v
		return err
	}
	for i := range entryTextFields {
		d.elem = i
		d.ws()
		if i > 0 {
			if !d.consume(',') {
				if d.peek() == ']' {
					return d.err(fmt.Sprintf("the array ends after %d values, want %d", i, entryTextFields))
				}
				return d.err("want ','")
			}
			d.ws()
		}
		var err error
		switch {
		case i == 0:
			r.time, err = d.int()
		case i <= 10:
			err = str(i - 1)
		case i == 11:
			r.status, err = d.int()
		case i == 12:
			r.latencyUS, err = d.int()
		default:
			err = str(10) // detail
		}
		if err != nil {
			return err
		}
	}
	d.elem = -1
	d.ws()
	if !d.consume(']') {
		if d.peek() == ',' {
			return d.err(fmt.Sprintf("the array has more than %d values", entryTextFields))
		}
		return d.err("want ']'")
	}
	return nil
}

// end checks that only whitespace is left.
func (d *textDecoder) end() error {
	d.ws()
	if d.i != len(d.s) {
		return d.err("data after the array")
	}
	return nil
}

// textDecoder reads one entry text; elem is the value being read.
type textDecoder struct {
	s    string
	i    int
	elem int
}

func (d *textDecoder) err(what string) error {
	return &entryTextError{at: d.i, elem: d.elem, what: what}
}

// ws skips JSON whitespace.
func (d *textDecoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte, 0 at the end.
func (d *textDecoder) peek() byte {
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

func (d *textDecoder) consume(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// int reads a JSON integer (no fraction, no exponent) that fits int64.
func (d *textDecoder) int() (int64, error) {
	start := d.i
	d.consume('-')
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
			d.i++
		}
	default:
		d.i = start
		return 0, d.err("want an integer")
	}
	if c := d.peek(); c == '.' || c == 'e' || c == 'E' || (c >= '0' && c <= '9') {
		d.i = start
		return 0, d.err("want an integer (no fraction, exponent or leading zero)")
	}
	n, err := strconv.ParseInt(d.s[start:d.i], 10, 64)
	if err != nil {
		d.i = start
		return 0, d.err("integer out of range")
	}
	return n, nil
}

// str reads a JSON string. Without escapes the result is a substring of
// d.s; with them it is built in one allocation.
func (d *textDecoder) str() (string, error) {
	if !d.consume('"') {
		return "", d.err("want a string")
	}
	start := d.i
	var b strings.Builder
	escaped := false
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			v := d.s[start:d.i]
			if escaped {
				b.WriteString(v)
				v = b.String()
			}
			d.i++
			return v, nil
		case c == '\\':
			if !escaped {
				// Decoding never lengthens: size the builder for the
				// rest of the string as written.
				escaped = true
				b.Grow(d.i - start + quotedLen(d.s[d.i:]))
			}
			b.WriteString(d.s[start:d.i])
			if err := d.escape(&b); err != nil {
				return "", err
			}
			start = d.i
		case c < 0x20:
			return "", d.err("control character in a string")
		case c < utf8.RuneSelf:
			d.i++
		default:
			r, n := utf8.DecodeRuneInString(d.s[d.i:])
			if r == utf8.RuneError && n == 1 {
				return "", d.err("invalid UTF-8")
			}
			d.i += n
		}
	}
	return "", d.err("unterminated string")
}

// quotedLen is the length of the JSON string body at the start of s, up to
// its closing quote (all of s when there is none).
func quotedLen(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(s)
}

// escape decodes the escape at d.i (a backslash) onto b.
func (d *textDecoder) escape(b *strings.Builder) error {
	if d.i+1 >= len(d.s) {
		return d.err("unterminated escape")
	}
	c := d.s[d.i+1]
	switch c {
	case '"', '\\', '/':
		b.WriteByte(c)
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'u':
		r1, ok := d.hex4(d.i + 2)
		if !ok {
			return d.err(`want four hex digits after \u`)
		}
		if !utf16.IsSurrogate(r1) {
			d.i += 6
			b.WriteRune(r1)
			return nil
		}
		r2, ok := d.hex4(d.i + 8)
		if !ok || d.s[d.i+6] != '\\' || d.s[d.i+7] != 'u' {
			return d.err("lone UTF-16 surrogate")
		}
		r := utf16.DecodeRune(r1, r2)
		if r == utf8.RuneError {
			return d.err("lone UTF-16 surrogate")
		}
		d.i += 12
		b.WriteRune(r)
		return nil
	default:
		return d.err("invalid escape")
	}
	d.i += 2
	return nil
}

// hex4 reads four hex digits at i.
func (d *textDecoder) hex4(i int) (rune, bool) {
	if i < 0 || i+4 > len(d.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(d.s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
