package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

func newStatusCmd() *cobra.Command {
	var (
		out   output
		check bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Which code version runs in which environment",
		Args:  cobra.NoArgs,
	}
	newClient := serverFlag(cmd)
	out.register(cmd)
	cmd.Flags().BoolVar(&check, "check", false, "also compare the ledger, the runtimes, the registry tags and git; exit 1 on any drift")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		get := c.Status
		if check {
			get = c.StatusCheck
		}
		st, err := get(cmd.Context())
		if err != nil {
			return err
		}
		if err := printStatus(cmd, &out, st); err != nil {
			return err
		}
		if check && len(st.Drift) > 0 {
			return &exitError{code: 1, err: fmt.Errorf("%d drift(s) between the ledger, the runtimes, the registry and git", len(st.Drift))}
		}
		return nil
	}
	return cmd
}

func printStatus(cmd *cobra.Command, out *output, st *api.StatusBody) error {
	return out.print(cmd.OutOrStdout(), st, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "ENV\tCOMMIT\tRELEASE\tDIGEST\tREPLICAS\tSTATE\tDEPLOYED\tBY\tURL")
		now := time.Now()
		for _, e := range st.Environments {
			deployed := "-"
			if !e.DeployedAt.IsZero() {
				deployed = ago(e.DeployedAt, now)
			}
			state := e.State
			if e.Progress != "" {
				state += " (" + truncate(e.Progress, 40) + ")"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", e.Name, dash(e.ShortCommit), dash(e.Release),
				shortDigest(e.Digest), e.Replicas.Ready, e.Replicas.Desired, state, deployed, dash(e.DeployedBy), dash(e.URL))
		}
		for _, e := range st.Environments {
			if e.Lock != nil {
				fmt.Fprintf(w, "\n%s is locked by %s: %s\n", e.Name, e.Lock.Actor, e.Lock.Reason)
			}
			for _, a := range alertsOf(e) {
				fmt.Fprintf(w, "\nALERT %s %s: %s\n", e.Name, a.Kind, a.Message)
			}
		}
		if l := st.Leader; l != nil {
			api := ""
			if l.Address != "" {
				api = ", api on " + l.Address
			}
			fmt.Fprintf(w, "\nleader: %s (term %d%s)\n", l.Holder, l.Term, api)
		}
		if st.Checked {
			if len(st.Drift) == 0 {
				fmt.Fprintln(w, "\ncheck: the ledger, the runtimes, the registry tags and git agree")
			}
			for _, d := range st.Drift {
				fmt.Fprintf(w, "\nDRIFT %s %s: want %s, got %s\n  fix: %s\n", d.Env, d.What, d.Want, d.Got, d.Fix)
			}
		}
	})
}

func newScaleCmd() *cobra.Command {
	var (
		reason string
		flags  actionFlags
	)
	cmd := &cobra.Command{
		Use:     "scale ENV N",
		Short:   "Change an environment's replica count without downtime",
		Example: "  ferry scale dev 4",
		Args:    cobra.ExactArgs(2),
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	flags.register(cmd, "the scale has finished")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := flags.out.validate(); err != nil {
			return err
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 1 {
			return usageErrorf("replicas %q is not a positive number", args[1])
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		a, err := c.Scale(cmd.Context(), args[0], n, reason)
		if err != nil {
			return err
		}
		return flags.follow(cmd, c, a, fmt.Sprintf("scale %s to %d replicas", args[0], n))
	}
	return cmd
}

// waitDeployment polls a deployment until it ends, printing its state
// changes; it fails unless the deployment succeeded.
func waitDeployment(cmd *cobra.Command, c interface {
	Deployment(ctx context.Context, id int64) (*ferry.Deployment, error)
}, id int64) error {
	return waitDeploymentTo(cmd, cmd.OutOrStdout(), c, id)
}

// waitDeploymentTo is waitDeployment printing to w.
func waitDeploymentTo(cmd *cobra.Command, w io.Writer, c interface {
	Deployment(ctx context.Context, id int64) (*ferry.Deployment, error)
}, id int64) error {
	last := ferry.DeploymentState("")
	for {
		d, err := c.Deployment(cmd.Context(), id)
		if err != nil {
			return err
		}
		if d.State != last {
			fmt.Fprintf(w, "deployment %d: %s\n", id, d.State)
			last = d.State
		}
		if d.State.Final() {
			if d.State != ferry.DeploymentSucceeded {
				return fmt.Errorf("deployment %d %s: %s", id, d.State, d.Error)
			}
			return nil
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// alertsOf is what `ferry status` warns about for e: its alerts, or the
// single release alert of a server older than the alerts list.
func alertsOf(e api.EnvStatus) []ferry.Alert {
	if len(e.Alerts) == 0 && e.Alert != "" {
		return []ferry.Alert{{Kind: ferry.AlertRelease, Message: e.Alert}}
	}
	return e.Alerts
}
