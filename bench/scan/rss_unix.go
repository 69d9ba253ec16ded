//go:build unix

package main

import (
	"os"
	"syscall"
)

// maxRSSKiB is the peak resident set of a finished process, in KiB (what
// Linux reports; 0 where it is not known).
func maxRSSKiB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}
