// Package sockio reads and writes TCP sockets without handing the
// scheduler's P away during the system call.
//
// Go's net package makes every read and write through syscall.Syscall,
// which marks the goroutine as in a system call. When the kernel preempts
// the thread inside one — on a loaded machine, typically as the write wakes
// the peer, which then takes the CPU at the system call's exit — the
// runtime's monitor (sysmon) sees the P stuck in a system call, takes it
// away and starts another thread to run it; the preempted thread, once it
// runs again, finds its P gone and parks. Each such hand-off costs two
// thread wake-ups and keeps sysmon polling every 20 µs instead of backing
// off to 10 ms. A socket of the net package is non-blocking, so its reads
// and writes never wait in the kernel: they can be made with
// syscall.RawSyscall, which keeps the P, and wait for readiness in Go's
// poller as the net package does (through syscall.RawConn).
//
// Wrap returns a net.Conn doing so for a *net.TCPConn on Linux, and the
// connection itself otherwise. Its Defer (Deferrer) lets a client send a
// request with the read of the answer, saving the read that would find
// nothing. Everything but Read and Write (deadlines,
// CloseWrite, SyscallConn, addresses, ReadFrom and WriteTo) is the
// *net.TCPConn's own. Errors are *net.OpError as the net package's, with
// the deadline's (os.ErrDeadlineExceeded) and a closed connection's
// (net.ErrClosed) the same to errors.Is.
//
// Listener wraps the connections a listener accepts.
//
// Imported by internal/server (the connections its listeners accept) and
// internal/gateway (upstream connections). It imports only the standard
// library.
package sockio
