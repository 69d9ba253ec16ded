// Package source turns what keyward scan is pointed at (directories, git
// history, the git index, standard input) into Fragments for the scan engine.
package source

import "time"

// Fragment is a run of bytes to scan, with where it came from.
// Sources keep fragments bounded in size (a huge file or line arrives as
// several fragments that overlap by Overlap bytes, so a secret that straddles a
// boundary is still seen whole in one of them).
type Fragment struct {
	// Path is the file's path, slash-separated, relative to the scan root
	// ("-" for standard input).
	Path string
	// Data is the text. For git sources it holds only added lines, joined by '\n'.
	Data []byte
	// StartLine is the 1-based line number of Data's first byte.
	StartLine int
	// StartColumn is the 1-based column of Data's first byte (1 unless the
	// fragment starts inside a long line that was split).
	StartColumn int
	// LineMap, when not nil, gives the line number of each line of Data
	// (git hunks: added lines that are not consecutive in the new file).
	LineMap []int
	// Git metadata; empty for non-git sources.
	Commit  string
	Author  string
	Email   string
	Date    time.Time
	Message string
}

// Overlap is how many bytes consecutive fragments of one split input share.
const Overlap = 4096
