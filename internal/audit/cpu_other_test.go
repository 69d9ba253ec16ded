//go:build !unix

package audit

import "time"

// processCPU is -1 where the process's CPU time is not read: benchmarks
// then report no cpu-µs.
func processCPU() time.Duration { return -1 }
