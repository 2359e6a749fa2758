// Command ferryd is ferry with its server parts: every command of ferry's
// client, and those that run the parts in this process (serve, node, demo,
// key). The client, cmd/ferry, hands those commands to it. main only wires:
// it creates the signal context and hands the arguments and the parts to
// the cli package.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferryhq/ferry/cli"
	"github.com/ferryhq/ferry/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, server.Parts{})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferryd:", err)
		os.Exit(cli.ExitCode(err))
	}
}
