package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

func newBuildsCmd() *cobra.Command {
	var (
		out    output
		branch string
		states []string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "builds",
		Short: "List builds, newest first",
		Args:  cobra.NoArgs,
	}
	newClient := serverFlag(cmd)
	out.register(cmd)
	cmd.Flags().StringVar(&branch, "branch", "", "only builds of this branch")
	cmd.Flags().StringSliceVar(&states, "state", nil, "only builds in these states (queued, running, succeeded, failed, superseded, canceled)")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many builds")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		builds, err := c.Builds(cmd.Context(), branch, states, limit)
		if err != nil {
			return err
		}
		now := time.Now()
		return out.print(cmd.OutOrStdout(), api.BuildList{Builds: builds}, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "ID\tCOMMIT\tBRANCH\tSTATE\tDIGEST\tCREATED\tDURATION\tSUBJECT")
			for _, b := range builds {
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.ShortCommit(), b.Branch, b.State,
					shortDigest(b.Digest), ago(b.CreatedAt, now), duration(b.StartedAt, b.FinishedAt), truncate(b.Subject, 50))
			}
		})
	}
	return cmd
}

func shortDigest(d string) string { return dash(ferry.ShortDigest(d)) }

func newBuildCmd() *cobra.Command {
	var (
		commit string
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "build BRANCH",
		Short: "Build a branch's head now (or --commit) instead of waiting for the next poll",
		Args:  cobra.ExactArgs(1),
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&commit, "commit", "", "build this full commit id of the branch instead of its head")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the build's log until it ends")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		res, err := c.Trigger(cmd.Context(), args[0], commit)
		if err != nil {
			return err
		}
		b := res.Build
		if res.Queued {
			fmt.Fprintf(cmd.OutOrStdout(), "queued build %d of %s (%s)\n", b.ID, b.ShortCommit(), b.Branch)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "%s already has build %d (%s); nothing to build\n", b.ShortCommit(), b.ID, b.State)
		}
		if !follow {
			return nil
		}
		return printLog(cmd, c, b.ID, true)
	}
	return cmd
}

func newCancelCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel BUILD_ID",
		Short: "Stop a queued or running build",
		Args:  cobra.ExactArgs(1),
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseID(args[0])
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		b, err := c.Cancel(cmd.Context(), id, reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "build %d: %s\n", b.ID, b.State)
		return nil
	}
	return cmd
}

func stateMark(s ferry.StepState) string {
	switch s {
	case ferry.StepSucceeded:
		return "✓"
	case ferry.StepFailed:
		return "✗"
	case ferry.StepRunning:
		return "▶"
	case ferry.StepSkipped:
		return "-"
	case ferry.StepCanceled:
		return "⊘"
	}
	return "·"
}
