package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/api"
)

// ferry rollout watches and steers an environment's canary release
// (strategy.canary in ferry.yaml): status, and the commands pause, resume,
// abort and promote.

func newRolloutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Watch and steer a canary release: status, pause, resume, abort, promote",
		Long: `An environment with strategy.canary in ferry.yaml releases through its canary
steps: a share of the requests goes to the new version (and as much to a fresh
baseline of the running one), judged every interval against the baseline.
ferry rollout status shows where it is and how each version does; the other
commands steer it. A failed judgement aborts it by itself; too little traffic
pauses it until someone resumes or promotes it.`,
		Example: `  ferry rollout status prod
  ferry rollout pause prod --reason "checking the logs"
  ferry rollout resume prod
  ferry rollout promote prod --reason "verified by hand"
  ferry rollout abort prod --reason "wrong build"`,
	}
	group(cmd, newRolloutStatusCmd())
	for _, c := range []struct{ name, short, needs string }{
		{"pause", "Hold the canary at its step: no judgement moves it on", ""},
		{"resume", "Let a paused canary go on through its steps", ""},
		{"abort", "Stop the canary: every request back to the running version, the release failed", ""},
		{"promote", "Skip the remaining steps: the canary takes every replica now", "a reason is required"},
	} {
		cmd.AddCommand(newRolloutCommandCmd(c.name, c.short, c.needs))
	}
	return cmd
}

func newRolloutStatusCmd() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "status ENV",
		Short: "Show an environment's canary: step, weight, each version's figures, the last verdict",
		Args:  cobra.ExactArgs(1),
	}
	newClient := serverFlag(cmd)
	out.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		b, err := c.Rollout(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), b, func(w *tabwriter.Writer) { canaryTable(w, b, time.Now()) })
	}
	return cmd
}

func newRolloutCommandCmd(name, short, needs string) *cobra.Command {
	var (
		reason string
		out    output
	)
	use := name + " ENV [--reason …]"
	if needs != "" {
		use = name + " ENV --reason …"
	}
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1)}
	newClient := serverFlag(cmd)
	help := "why (recorded)"
	if needs != "" {
		help += "; " + needs
	}
	cmd.Flags().StringVar(&reason, "reason", "", help)
	out.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		if needs != "" && strings.TrimSpace(reason) == "" {
			return usageErrorf("rollout %s: --reason is required (it is recorded with the release)", name)
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		b, err := c.RolloutCommand(cmd.Context(), args[0], name, reason)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), b, func(w *tabwriter.Writer) {
			done := map[string]string{"pause": "paused", "resume": "resumed", "abort": "aborted", "promote": "promoted"}[name]
			fmt.Fprintf(w, "canary on %s: %s\n", b.Env, done)
			canaryTable(w, b, time.Now())
		})
	}
	return cmd
}

// canaryTable prints a canary's status for people.
func canaryTable(w *tabwriter.Writer, b *api.CanaryBody, now time.Time) {
	r := b.Canary
	if r == nil {
		fmt.Fprintf(w, "%s has had no canary release\n", b.Env)
		return
	}
	what := "last canary"
	if b.Active {
		what = "canary"
	}
	fmt.Fprintf(w, "%s of deployment %d on %s: %s, step %d of %d at %d%%\n", what, r.DeploymentID, r.Env, r.State, r.Step+1, r.Steps, r.Weight)
	if r.Reason != "" {
		fmt.Fprintf(w, "reason:\t%s\n", r.Reason)
	}
	if b.Active && !r.StepStarted.IsZero() {
		in := now.Sub(r.StepStarted).Round(time.Second)
		left := time.Duration(b.StepFor*float64(time.Second)) - in
		fmt.Fprintf(w, "step:\trunning %s, at least %s more\n", in, max(left, 0).Round(time.Second))
	}
	if len(b.Tracks) > 0 {
		fmt.Fprintln(w, "VERSION\tREQUESTS\tREQ/S\tERRORS\tERROR RATE\tP50\tP99")
		for _, t := range b.Tracks {
			fmt.Fprintf(w, "%s\t%d\t%.1f\t%d\t%.2f%%\t%.1f ms\t%.1f ms\n", t.Track, t.Requests, t.Rate, t.Errors, 100*t.ErrorRate, t.P50, t.P99)
		}
	}
	if v := b.Verdict; v != nil {
		fmt.Fprintf(w, "verdict:\t%s\n", v.Outcome)
		for _, reason := range v.Reasons {
			fmt.Fprintf(w, "\t%s\n", reason)
		}
	}
}
