package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

func newEventsCmd() *cobra.Command {
	var (
		out   output
		kind  string
		build int64
		limit int
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the audit trail: what happened, when, who did it and why",
		Args:  cobra.NoArgs,
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
		return out.print(cmd.OutOrStdout(), api.EventList{Events: events}, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "TIME\tKIND\tACTOR\tCOMMIT\tMESSAGE\tREASON")
			for _, e := range events {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.DateTime), e.Kind, e.Actor,
					dash(ferry.ShortSHA(e.Commit)), e.Message, truncate(dash(e.Reason), 80))
			}
		})
	}
	return cmd
}

func newHistoryCmd() *cobra.Command {
	var (
		out   output
		limit int
	)
	cmd := &cobra.Command{
		Use:   "history [ENV]",
		Short: "Show deployments, newest first: what ran where, since when, who put it there and why",
		Args:  cobra.MaximumNArgs(1),
	}
	newClient := serverFlag(cmd)
	out.register(cmd)
	cmd.Flags().IntVar(&limit, "limit", 30, "at most this many deployments")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		env := ""
		if len(args) == 1 {
			env = args[0]
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		ds, err := c.Deployments(cmd.Context(), env, limit)
		if err != nil {
			return err
		}
		now := time.Now()
		return out.print(cmd.OutOrStdout(), api.DeploymentList{Deployments: ds}, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "ID\tENV\tKIND\tSTATE\tCOMMIT\tRELEASE\tREPLICAS\tWHEN\tTOOK\tBY\tREASON")
			for _, d := range ds {
				reason := d.Reason
				if d.Error != "" {
					reason = d.Error
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", d.ID, d.Env, d.Kind, d.State,
					ferry.ShortSHA(d.Commit), dash(d.Release), d.Replicas, ago(d.CreatedAt, now), duration(d.StartedAt, d.FinishedAt),
					d.Actor, truncate(dash(reason), 70))
			}
		})
	}
	return cmd
}
