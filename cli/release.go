package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

func newPromoteCmd() *cobra.Command {
	var (
		to, reason         string
		downgrade          bool
		override, whenOpen bool
		flags              actionFlags
	)
	cmd := &cobra.Command{
		Use:   "promote [COMMIT|RC|ENV]",
		Short: "Release to prod the very digest that ran green upstream (fast-forwards release, tags RC…)",
		Long: `Release to a gated environment (--to, default prod) the digest its upstream
environment runs, or the build of COMMIT, or an earlier release RC…. Every gate
must pass: the commit is on master's history, its digest succeeded upstream and
soaked there, the environment is not locked, the commit is not quarantined, it is
ahead of what the environment runs (a downgrade is ferry rollback, or
--allow-downgrade with --reason), an implicit promotion does not return to a
release a rollback left, and the environment is in a release window and in no
freeze (--when-open waits for the next opening; an admin may --override with
--reason). With an approval rule it becomes a pending release (ferry approve). It waits its turn behind the environment's other actions
(promote, rollback, scale, lock). ferry records it, then fast-forwards the release
branch, tags the digest RCyyyyMMdd_HHmm (no rebuild, no upload), rolls out,
verifies, and moves live, env/prod and the annotated git tag.`,
		Example: `  ferry promote                      # what dev runs
  ferry promote 1a2b3c4d5e6f --reason "fixes #12"`,
		Args: cobra.MaximumNArgs(1),
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&to, "to", "prod", "the environment to release to")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	flags.register(cmd, "the rollout has finished")
	cmd.Flags().BoolVar(&downgrade, "allow-downgrade", false, "allow moving back from what the environment runs (needs --reason; prefer ferry rollback)")
	cmd.Flags().BoolVar(&override, "override", false, "an admin's release outside the environment's windows or in a freeze (needs --reason)")
	cmd.Flags().BoolVar(&whenOpen, "when-open", false, "outside the release windows or in a freeze, wait for the next opening instead of being refused")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := flags.out.validate(); err != nil {
			return err
		}
		ref := ""
		if len(args) == 1 {
			ref = args[0]
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		a, err := c.PromoteWith(cmd.Context(), to, api.PromoteRequest{Ref: ref, Reason: reason, AllowDowngrade: downgrade, Override: override, WhenOpen: whenOpen})
		if err != nil {
			return err
		}
		what := "what " + to + "'s upstream runs"
		if ref != "" {
			what = ref
		}
		return flags.follow(cmd, c, a, fmt.Sprintf("promote %s to %s", what, to))
	}
	return cmd
}

func newRollbackCmd() *cobra.Command {
	var (
		to, reason string
		flags      actionFlags
	)
	cmd := &cobra.Command{
		Use:   "rollback ENV",
		Short: "Return ENV to the previous release (or --to RC…) at once, without a build",
		Example: `  ferry rollback prod
  ferry rollback prod --to RC20261126_2350 --reason "500s on checkout"`,
		Args: cobra.ExactArgs(1),
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&to, "to", "", "the release to return to (default: the previous one)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	flags.register(cmd, "the rollout has finished")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := flags.out.validate(); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		a, err := c.Rollback(cmd.Context(), args[0], to, reason)
		if err != nil {
			return err
		}
		what := "the previous release"
		if to != "" {
			what = to
		}
		return flags.follow(cmd, c, a, fmt.Sprintf("roll %s back to %s", args[0], what))
	}
	return cmd
}

func newLockCmd() *cobra.Command {
	var (
		reason string
		flags  actionFlags
	)
	cmd := &cobra.Command{
		Use:   "lock ENV --reason …",
		Short: "Freeze an environment: promotions are refused until it is unlocked",
		Args:  cobra.ExactArgs(1),
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (required, recorded)")
	flags.register(cmd, "the lock holds")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if reason == "" {
			return usageErrorf("ferry lock needs --reason")
		}
		if err := flags.out.validate(); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		a, err := c.Lock(cmd.Context(), args[0], reason)
		if err != nil {
			return err
		}
		return flags.follow(cmd, c, a, "lock "+args[0])
	}
	return cmd
}

func newUnlockCmd() *cobra.Command {
	var (
		reason string
		flags  actionFlags
	)
	cmd := &cobra.Command{
		Use:   "unlock ENV",
		Short: "Lift an environment's lock",
		Args:  cobra.ExactArgs(1),
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	flags.register(cmd, "the lock is lifted")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := flags.out.validate(); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		a, err := c.Unlock(cmd.Context(), args[0], reason)
		if err != nil {
			return err
		}
		return flags.follow(cmd, c, a, "unlock "+args[0])
	}
	return cmd
}

func newQuarantineCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "quarantine RC|COMMIT --reason …",
		Short: "Bar a release or commit from ever being promoted or rolled back to again",
		Args:  cobra.ExactArgs(1),
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (required, recorded)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if reason == "" {
			return usageErrorf("ferry quarantine needs --reason")
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		q, err := c.Quarantine(cmd.Context(), args[0], reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s quarantined by %s: %s\n", ferry.ShortSHA(q.Commit), q.Actor, q.Reason)
		return nil
	}
	return cmd
}
