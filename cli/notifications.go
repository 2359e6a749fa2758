package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

func newNotificationsCmd() *cobra.Command {
	var (
		receiver, state string
		limit           int
		out             output
	)
	cmd := &cobra.Command{
		Use:   "notifications",
		Short: "List outgoing notifications (ferry.yaml's notifications:) and how their delivery went",
		Example: `  ferry notifications
  ferry notifications --state failed -o json`,
		Args: cobra.NoArgs,
	}
	newClient := serverFlag(cmd)
	cmd.Flags().StringVar(&receiver, "receiver", "", "only notifications to this receiver")
	cmd.Flags().StringVar(&state, "state", "", "only notifications in this state: pending, delivered or failed")
	cmd.Flags().IntVar(&limit, "limit", 20, "how many")
	out.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		var states []ferry.NotificationState
		if state != "" {
			states = []ferry.NotificationState{ferry.NotificationState(state)}
		}
		ns, err := c.Notifications(cmd.Context(), receiver, states, limit)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), api.NotificationList{Notifications: ns}, func(w *tabwriter.Writer) {
			now := time.Now()
			fmt.Fprintln(w, "ID\tRECEIVER\tTOPIC\tENV\tSTATE\tATTEMPTS\tCREATED\tLAST ERROR")
			for _, n := range ns {
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.ID, n.Receiver, n.Topic, dash(n.Env), n.State, n.Attempts, ago(n.CreatedAt, now), dash(truncate(n.LastError, 60)))
			}
		})
	}
	return cmd
}
