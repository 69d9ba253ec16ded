//go:build linux && race

package sockio

import "syscall"

// Under the race detector, reads and writes go through syscall.Read and
// syscall.Write: raw system calls would skip their annotations (a write
// releases, a read acquires), which is how the race detector learns that
// what a goroutine did before writing to a socket happens before what
// another does after reading it, possibly through a peer's net package
// connection. Everything else is the same code.

func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return n, errno(err)
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return n, errno(err)
}

func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return err.(syscall.Errno)
}
