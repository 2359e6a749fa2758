// Command ferry is the release controller's command line: a client of the
// server's API, the git hook, and the local commands that need no server
// part. The commands that run ferry's server parts (serve, node, demo, key)
// go to ferryd (cmd/ferryd), the binary that links them, which this one
// does not, so that each command here starts at once. main only wires: it
// creates the signal context and hands the arguments to the cli package.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferryhq/ferry/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, nil)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry:", err)
		os.Exit(cli.ExitCode(err))
	}
}
