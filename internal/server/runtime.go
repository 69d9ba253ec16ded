package server

import "runtime/debug"

// DefaultGCPercent is the garbage collector target a keyward server runs
// with unless GOGC is set: the heap may grow to five times what is live
// between collections, instead of Go's default of twice. A server's live
// heap is small (caches of tokens, keys, policies and integrations: tens of
// megabytes) while it allocates per request, so collections were a large
// share of its CPU: on the 2-core benchmark machine POST /v1/keys/verify
// took 65 µs of CPU per request at GOGC=100 and 48 µs at GOGC=300
// (bench/README.md). GOGC and GOMEMLIMIT, when set, are honoured as usual.
const DefaultGCPercent = 400

// TuneRuntime applies DefaultGCPercent unless getenv("GOGC") is set, and
// returns the GC percent in force.
func TuneRuntime(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		cur := debug.SetGCPercent(100)
		debug.SetGCPercent(cur)
		return cur
	}
	debug.SetGCPercent(DefaultGCPercent)
	return DefaultGCPercent
}
