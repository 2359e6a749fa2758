package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newHistoryCmd() *cobra.Command {
	var (
		out   output
		kind  string
		build int64
		limit int
	)
	cmd := &cobra.Command{
		Use:     "history",
		Aliases: []string{"events"},
		Short:   "Show the audit trail: what happened, when, who did it and why",
		Args:    cobra.NoArgs,
	}
	newClient := serverFlag(cmd)
	out.register(cmd)
	cmd.Flags().StringVar(&kind, "kind", "", "only events whose kind starts with this (e.g. build.failed, build)")
	cmd.Flags().Int64Var(&build, "build", 0, "only events of this build")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many events")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		events, err := c.Events(cmd.Context(), kind, build, limit)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), map[string]any{"events": events}, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "TIME\tKIND\tACTOR\tCOMMIT\tMESSAGE\tREASON")
			for _, e := range events {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.DateTime), e.Kind, e.Actor,
					dash(shortSHA(e.Commit)), e.Message, truncate(dash(e.Reason), 80))
			}
		})
	}
	return cmd
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
