package cli

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

// Release requests: a promotion to an environment with an approval rule
// waits as a pending release until people other than the requester
// approve it (ferry approve); ferry requests lists them and ferry requests
// cancel withdraws one.

func parseRequestID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErrorf("release request id %q is not a positive number", s)
	}
	return id, nil
}

func newApproveCmd() *cobra.Command {
	var (
		reason string
		flags  actionFlags
	)
	cmd := &cobra.Command{
		Use:   "approve ID [--reason …]",
		Short: "Approve a pending release request; the last approval needed releases it",
		Long: `Approve release request ID, a promotion waiting for the approvals its
environment's rule (approval: in ferry.yaml) asks for. The approver must have
the rule's role and, unless the rule allows self-approval, be neither the one
who asked nor the commit's author. The approval that completes the request
queues its promotion, which passes every gate again in its turn (a commit
quarantined since is refused); with --wait (the default) it is followed to its
end like ferry promote.`,
		Example: `  ferry requests                       # what waits
  ferry approve 3 --reason "reviewed the diff"`,
		Args: cobra.ExactArgs(1),
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	flags.register(cmd, "the release's rollout has finished")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := flags.out.validate(); err != nil {
			return err
		}
		id, err := parseRequestID(args[0])
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		b, err := c.Approve(cmd.Context(), id, reason)
		if err != nil {
			return err
		}
		q := b.Request
		if b.Action == nil {
			return flags.out.print(cmd.OutOrStdout(), b, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "release request %d of %s to %s: approved by %s (%d of %d); it waits for more\n",
					q.ID, ferry.ShortSHA(q.Commit), q.Env, strings.Join(q.Approvers(), ", "), len(q.Approvals), q.Required)
			})
		}
		return flags.follow(cmd, c, b.Action, fmt.Sprintf("release request %d approved: promote %s to %s, requested by %s",
			q.ID, ferry.ShortSHA(q.Commit), q.Env, q.Requester))
	}
	return cmd
}

func newRequestsCmd() *cobra.Command {
	var (
		env, state string
		limit      int
		out        output
	)
	cmd := &cobra.Command{
		Use:   "requests [ID]",
		Short: "List release requests (pending releases) waiting for approval, or show one",
		Example: `  ferry requests
  ferry requests --state approved -o json
  ferry requests 3
  ferry requests cancel 3 --reason "wrong commit"`,
		Args: cobra.MaximumNArgs(1),
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&env, "env", "", "only requests to this environment")
	cmd.Flags().StringVar(&state, "state", "", "only requests in this state: pending, approved, cancelled or expired")
	cmd.Flags().IntVar(&limit, "limit", 20, "how many")
	out.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		if len(args) == 1 {
			id, err := parseRequestID(args[0])
			if err != nil {
				return err
			}
			b, err := c.Request(cmd.Context(), id)
			if err != nil {
				return err
			}
			return out.print(cmd.OutOrStdout(), b, func(w *tabwriter.Writer) { requestTable(w, []*ferry.ReleaseRequest{b.Request}) })
		}
		var states []ferry.RequestState
		if state != "" {
			states = []ferry.RequestState{ferry.RequestState(state)}
		}
		rs, err := c.Requests(cmd.Context(), env, states, limit)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), api.RequestList{Requests: rs}, func(w *tabwriter.Writer) { requestTable(w, rs) })
	}
	cmd.AddCommand(newRequestCancelCmd())
	return cmd
}

func requestTable(w *tabwriter.Writer, rs []*ferry.ReleaseRequest) {
	now := time.Now()
	fmt.Fprintln(w, "ID\tENV\tCOMMIT\tSTATE\tREQUESTED BY\tAPPROVALS\tEXPIRES\tRESULT")
	for _, q := range rs {
		approvals := fmt.Sprintf("%d/%d", len(q.Approvals), q.Required)
		if len(q.Approvals) > 0 {
			approvals += " " + strings.Join(q.Approvers(), ",")
		}
		expires := "-"
		if q.State == ferry.RequestPending {
			expires = "in " + q.ExpiresAt.Sub(now).Round(time.Minute).String()
		}
		result := q.Result
		if q.ActionID != 0 {
			result = fmt.Sprintf("released by action %d", q.ActionID)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", q.ID, q.Env, ferry.ShortSHA(q.Commit), q.State, q.Requester, approvals, expires, dash(truncate(result, 60)))
	}
}

func newRequestCancelCmd() *cobra.Command {
	var (
		reason string
		out    output
	)
	cmd := &cobra.Command{
		Use:   "cancel ID [--reason …]",
		Short: "Withdraw a pending release request (its requester, or someone with the approval rule's role)",
		Args:  cobra.ExactArgs(1),
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	out.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		id, err := parseRequestID(args[0])
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		b, err := c.CancelRequest(cmd.Context(), id, reason)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), b, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "release request %d cancelled: %s\n", b.Request.ID, b.Request.Result)
		})
	}
	return cmd
}
