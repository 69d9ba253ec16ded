// Package cputime reads the CPU time the process has used, for benchmarks
// that report it per operation: on a shared machine other load inflates
// it far less than wall time. Only tests import it.
package cputime

import "time"

// Process is the user and system CPU time of the process so far (all its
// threads, the garbage collector's included), or -1 where the platform
// does not tell it.
func Process() time.Duration { return process() }
