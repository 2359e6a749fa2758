// Command ferry is the release controller's single binary: server, CLI and
// git hook. main only wires: it creates the signal context and hands the
// arguments to the cli package.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferryhq/ferry/cli"
	"github.com/ferryhq/ferry/runtime/local"
)

func main() {
	// A sandboxed replica of the local runtime starts as ferry itself and
	// becomes the app here; for every other run this returns at once.
	local.MaybeSandboxInit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry:", err)
		os.Exit(cli.ExitCode(err))
	}
}
