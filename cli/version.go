package cli

import (
	"fmt"
	goruntime "runtime"

	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ferry's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := commit
			if c == "" {
				c = "unknown"
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "ferry %s (commit %s, %s)\n", version, c, goruntime.Version())
			return err
		},
	}
}
