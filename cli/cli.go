// Package cli implements ferry's command line: one file per subcommand, each
// a thin client of the server's HTTP API except `serve`, `config check`,
// `version` and the git hook. Flags and environment variables are read here
// and nowhere else; the libraries take plain fields.
package cli

import (
	"context"
	"errors"
	"io"

	"github.com/spf13/cobra"
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
// exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	return explainUnauthorized(root.ExecuteContext(ctx))
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
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
		newDemoCmd(),
		newServeCmd(),
		newNodeCmd(),
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
		newKeyCmd(),
		newDiffCmd(),
		newDoraCmd(),
		newHookCmd(),
		newVersionCmd(),
	)
	return root
}
