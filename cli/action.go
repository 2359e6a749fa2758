package cli

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/client"
)

// The changes of an environment (promote, rollback, scale, lock, unlock)
// are actions: the server answers with the action queued; follow prints
// "action N queued", waits for its turn (saying what it waits behind),
// follows the deployment it starts as waitDeployment does, and ends with
// the action's final state: an error, so exit 1, unless it succeeded.

// actionFlags are the flags every action command has.
type actionFlags struct {
	wait bool
	out  output
}

func (f *actionFlags) register(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar(&f.wait, "wait", true, "wait until the action has ended ("+what+")")
	f.out.register(cmd)
}

// follow reports the queued action a and, with --wait, follows it to its
// end. Progress goes to stdout for tables, to stderr for -o json|yaml,
// whose stdout is the final action with its deployment.
func (f *actionFlags) follow(cmd *cobra.Command, c *client.Client, a *ferry.Action, doing string) error {
	progress := cmd.OutOrStdout()
	if f.out.format != "table" {
		progress = cmd.ErrOrStderr()
	}
	fmt.Fprintf(progress, "action %d queued: %s\n", a.ID, doing)
	if !f.wait {
		if f.out.format != "table" {
			return f.out.print(cmd.OutOrStdout(), api.ActionBody{Action: a}, nil)
		}
		return nil
	}
	b, err := followAction(cmd, progress, c, a.ID)
	if err != nil {
		return err
	}
	if f.out.format != "table" {
		if err := f.out.print(cmd.OutOrStdout(), b, nil); err != nil {
			return err
		}
	}
	return actionEnd(progress, b.Action)
}

// followAction polls action id until it has ended, printing what it
// waits behind, its start and its deployment's progress.
func followAction(cmd *cobra.Command, w io.Writer, c *client.Client, id int64) (*api.ActionBody, error) {
	ctx := cmd.Context()
	behind, started, followed := int64(0), false, false
	for {
		b, err := c.Action(ctx, id)
		if err != nil {
			return nil, err
		}
		a := b.Action
		switch {
		case a.State == ferry.ActionQueued:
			if run, err := c.Actions(ctx, a.Env, []ferry.ActionState{ferry.ActionRunning}, 1); err == nil && len(run) == 1 && run[0].ID != behind {
				behind = run[0].ID
				fmt.Fprintf(w, "action %d: waiting behind action %d (%s by %s)\n", id, behind, run[0].Kind, run[0].Actor)
			}
		case !started:
			started = true
			fmt.Fprintf(w, "action %d: running\n", id)
		}
		if a.DeploymentID != 0 && !followed {
			followed = true
			if d := b.Deployment; d != nil {
				fmt.Fprintf(w, "deployment %d: %s of %s to %s%s\n", d.ID, d.Kind, ferry.ShortSHA(d.Commit), d.Env, releaseOf(d))
			}
			// The action's end says whether it succeeded.
			_ = waitDeploymentTo(cmd, w, c, a.DeploymentID)
			continue
		}
		if a.State.Final() {
			return b, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func releaseOf(d *ferry.Deployment) string {
	if d.Release == "" {
		return ""
	}
	return " as " + d.Release
}

// actionEnd prints how a ended and is the command's error unless it
// succeeded.
func actionEnd(w io.Writer, a *ferry.Action) error {
	if a.State == ferry.ActionSucceeded {
		fmt.Fprintf(w, "action %d succeeded: %s\n", a.ID, a.Result)
		return nil
	}
	return fmt.Errorf("action %d %s: %s", a.ID, a.State, a.Result)
}

func newActionCmd() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "action ID",
		Short: "Show one action (promote, rollback, scale, lock, unlock) with its result and deployment",
		Args:  cobra.ExactArgs(1),
	}
	newClient := serverFlag(cmd)
	out.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		id, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || id <= 0 {
			return usageErrorf("action id %q is not a positive number", args[0])
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		b, err := c.Action(cmd.Context(), id)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), b, func(w *tabwriter.Writer) {
			a := b.Action
			fmt.Fprintln(w, "ID\tENV\tKIND\tSTATE\tBY\tASKED\tDEPLOYMENT\tRESULT")
			dep := "-"
			if a.DeploymentID != 0 {
				dep = strconv.FormatInt(a.DeploymentID, 10)
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Env, a.Kind, a.State, a.Actor, ago(a.CreatedAt, time.Now()), dep, dash(a.Result))
		})
	}
	return cmd
}
