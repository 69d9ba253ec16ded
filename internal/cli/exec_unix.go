//go:build unix

package cli

import "syscall"

// execProcess replaces keyward with the command: its exit code and signals
// are the command's own, and keyward adds no process to the tree.
func execProcess(path string, argv, environ []string) error {
	return syscall.Exec(path, argv, environ)
}
