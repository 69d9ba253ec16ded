package server

import (
	"runtime/debug"
	"testing"
)

func TestTuneRuntime(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if got := TuneRuntime(getenv); got != DefaultGCPercent {
		t.Fatalf("TuneRuntime without GOGC = %d, want %d", got, DefaultGCPercent)
	}
	if cur := debug.SetGCPercent(100); cur != DefaultGCPercent {
		t.Fatalf("GC percent in force = %d, want %d", cur, DefaultGCPercent)
	}
	// GOGC set (the runtime read it at start; here it was 100): left alone.
	env["GOGC"] = "100"
	if got := TuneRuntime(getenv); got != 100 {
		t.Fatalf("TuneRuntime with GOGC set = %d, want the value in force (100)", got)
	}
	if cur := debug.SetGCPercent(100); cur != 100 {
		t.Fatalf("GC percent changed to %d although GOGC was set", cur)
	}
}
