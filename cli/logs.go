package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/client"
)

func newLogsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ENV | logs build ID",
		Short: "Show an environment's replica logs, or a build's log; -f follows live",
		Example: `  ferry logs dev -f
  ferry logs build 42
  ferry logs build 42 -f`,
		Args: cobra.RangeArgs(1, 2),
	}
	newClient := serverFlag(cmd)
	var tail int
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming (until the build ends, or Ctrl-C)")
	cmd.Flags().IntVar(&tail, "tail", 100, "lines of each replica's recent output to show first")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if args[0] != "build" {
			if len(args) != 1 {
				return usageErrorf("ferry logs ENV takes no other argument (or: ferry logs build ID)")
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			return c.EnvLogs(cmd.Context(), args[0], tail, follow, cmd.OutOrStdout())
		}
		if len(args) != 2 {
			return usageErrorf("ferry logs build needs a build id")
		}
		id, err := parseID(args[1])
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		return printLog(cmd, c, id, follow)
	}
	return cmd
}

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErrorf("build id %q is not a positive number", s)
	}
	return id, nil
}

// printLog prints build id's log and step changes; with follow it streams
// them until the build ends, and fails when the build did not succeed.
func printLog(cmd *cobra.Command, c *client.Client, id int64, follow bool) error {
	w := cmd.OutOrStdout()
	states := map[string]ferry.StepState{}
	var final api.LogRecord
	err := c.BuildLogs(cmd.Context(), id, follow, func(rec api.LogRecord) error {
		switch {
		case rec.Line != nil:
			fmt.Fprintf(w, "%-8s | %s\n", rec.Line.Step, rec.Line.Text)
		case rec.Steps != nil:
			for _, s := range rec.Steps {
				if states[s.Name] == s.State || s.State == ferry.StepPending {
					continue
				}
				states[s.Name] = s.State
				msg := fmt.Sprintf("%s %s %s", stateMark(s.State), s.Name, s.State)
				if s.Attempts > 1 {
					msg += fmt.Sprintf(" (attempt %d)", s.Attempts)
				}
				if !s.FinishedAt.IsZero() && !s.StartedAt.IsZero() {
					msg += " in " + duration(s.StartedAt, s.FinishedAt)
				}
				if s.Error != "" && s.State != ferry.StepSucceeded {
					msg += ": " + s.Error
				}
				fmt.Fprintln(w, msg)
			}
		case rec.State != "":
			final = rec
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch final.State {
	case "":
		if follow {
			return fmt.Errorf("build %d: the log stream ended before the build did (server stopped?); see ferry builds", id)
		}
		return nil
	case ferry.BuildSucceeded:
		fmt.Fprintf(w, "build %d succeeded: %s\n", id, final.Digest)
		return nil
	case ferry.BuildRunning, ferry.BuildQueued:
		fmt.Fprintf(w, "build %d is %s (use -f to follow)\n", id, final.State)
		return nil
	}
	return fmt.Errorf("build %d %s: %s", id, final.State, final.Reason)
}
