// Command keyward is the keyward server, its CLI client and its secret
// scanner in one binary. main hands the arguments to the cli package (and
// the server command below) and exits with the code they return.
package main

import (
	"os"

	"github.com/keyward/keyward/internal/cli"
)

func main() {
	env := cli.OSEnv()
	os.Exit(cli.Run(env, os.Args[1:], newServerCmd(env), newVersionCmd(env)))
}
