//go:build !unix

package cli

import (
	"errors"
	"os"
	"os/exec"
)

// execProcess runs the command as a child and passes its exit code through.
func execProcess(path string, argv, environ []string) error {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = environ, os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Code: ee.ExitCode()}
	}
	if err == nil {
		return &ExitError{Code: 0}
	}
	return err
}
