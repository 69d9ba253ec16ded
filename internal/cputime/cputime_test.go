package cputime

import (
	"runtime"
	"testing"
	"time"
)

// Spinning for a while shows as CPU time, and the count never goes back.
func TestProcessCountsWork(t *testing.T) {
	start := Process()
	if start < 0 {
		if runtime.GOOS == "linux" || runtime.GOOS == "darwin" {
			t.Fatalf("Process = %v on %s", start, runtime.GOOS)
		}
		t.Skip("the platform does not tell the process's CPU time")
	}
	x := 0
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
		for i := range 1000 {
			x += i
		}
	}
	_ = x
	if d := Process() - start; d < 20*time.Millisecond {
		t.Errorf("50 ms of spinning counted %v of CPU time", d)
	}
}
