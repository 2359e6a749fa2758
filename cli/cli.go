// Package cli implements ferry's command line: one file per subcommand, each
// a thin client of the server's HTTP API except `serve`, `node`, `demo`,
// `key`, `config`, `version`, the git hook and `token` on the server's
// machine. Flags and environment variables are read here and nowhere else;
// the libraries take plain fields.
//
// The commands that run ferry's server parts (serve, node, demo, key) get
// them from the caller (package parts): cmd/ferryd links them in, cmd/ferry
// does not and hands those commands to ferryd (handoff.go), so that the
// client's commands start without initialising them.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/parts"
)

// Build information, set with -ldflags "-X github.com/ferryhq/ferry/cli.version=…".
var (
	version = "dev"
	commit  = ""
)

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode maps an error returned by Run to a process exit code.
func ExitCode(err error) int {
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return 1
}

// Run executes the command line args and returns the error that decides the
// exit code. p are the server parts this binary links, or nil: then the
// commands that need them run the whole command line in ferryd instead.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, p parts.Parts) error {
	root := newRoot(stdin, stdout, stderr, serverParts{p: p, off: newHandOff(args)})
	root.SetArgs(args)
	return explainUnauthorized(root.ExecuteContext(ctx))
}

// Main runs the process's command line with the parts its binary links
// (nil for none) until SIGINT or SIGTERM, and exits with the code the
// error decides, printing it after the program's name.
func Main(name string, p parts.Parts) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, p)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(ExitCode(err))
	}
}

// groupAnnotation marks a command made by group.
const groupAnnotation = "ferry.group"

// group makes cmd one that only gathers others: alone it shows its help;
// with an argument that names none of them it fails, where cobra would
// print the help and exit 0 (ferry token crate … did nothing, and said
// nothing was wrong).
func group(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.Annotations = map[string]string{groupAnnotation: "true"}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q; run '%s --help' for its commands", args[0], cmd.CommandPath(), cmd.CommandPath())
		}
		return cmd.Help()
	}
	cmd.AddCommand(subs...)
	return cmd
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer, sp serverParts) *cobra.Command {
	root := &cobra.Command{
		Use:   "ferry",
		Short: "ferry delivers a service from git to its environments",
		Long: `ferry is a release controller: every commit on a watched branch is tested and
built once into an OCI image, rolled out to dev, and promoted to prod by a
controlled release of the very same digest.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newDemoCmd(sp),
		newServeCmd(sp),
		newNodeCmd(sp),
		newConfigCmd(),
		newBuildsCmd(),
		newBuildCmd(),
		newCancelCmd(),
		newLogsCmd(),
		newHistoryCmd(),
		newEventsCmd(),
		newStatusCmd(),
		newScaleCmd(),
		newActionCmd(),
		newPromoteCmd(),
		newApproveCmd(),
		newRequestsCmd(),
		newNotificationsCmd(),
		newRollbackCmd(),
		newRolloutCmd(),
		newLockCmd(),
		newUnlockCmd(),
		newQuarantineCmd(),
		newTokenCmd(),
		newKeyCmd(sp),
		newDiffCmd(),
		newDoraCmd(),
		newHookCmd(),
		newVersionCmd(),
	)
	return root
}
