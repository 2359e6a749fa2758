package cli

import (
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/dora"
)

func newDoraCmd() *cobra.Command {
	var (
		out    output
		env    string
		window string
	)
	cmd := &cobra.Command{
		Use:   "dora",
		Short: "Show the four DORA figures of the production environments: deployment frequency, lead time, change failure rate, time to restore",
		Long: `dora computes the four DORA figures over a window ending now, from ferry's ledger
and the commit times in git (docs/dora.md defines each):

  deployment frequency   successful promotions/deploys per day
  lead time for changes  median time from commit to running, over every newly deployed commit
  change failure rate    failed changes (reverted, or undone by a rollback) ÷ changes attempted
  time to restore        median time from a failed change to the deployment that restored service

Without --env it reports every production environment: those promoted from another
that no environment is promoted from.`,
		Example: "  ferry dora\n  ferry dora --env dev --window 2w -o json",
		Args:    cobra.NoArgs,
	}
	newClient := serverFlag(cmd)
	out.register(cmd)
	cmd.Flags().StringVar(&env, "env", "", "the environment (default: every production environment)")
	cmd.Flags().StringVar(&window, "window", "30d", "how far back from now: days (30d), weeks (2w) or a duration (36h)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		if _, err := dora.ParseWindow(window); err != nil {
			return usageErrorf("--window: %s", ferry.ErrorMessage(err))
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		reps, err := c.Dora(cmd.Context(), env, window)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), api.DoraBody{Reports: reps}, func(w *tabwriter.Writer) {
			printDora(w, reps)
		})
	}
	return cmd
}

func printDora(w *tabwriter.Writer, reps []dora.Report) {
	if len(reps) == 0 {
		fmt.Fprintln(w, "no production environment (one promoted from another that none is promoted from): choose one with --env")
		return
	}
	r0 := reps[0]
	fmt.Fprintf(w, "DORA figures over %s: %s to %s UTC\n\n", dora.FormatWindow(r0.To.Sub(r0.From)),
		r0.From.UTC().Format("2006-01-02 15:04"), r0.To.UTC().Format("2006-01-02 15:04"))
	fmt.Fprintln(w, "ENV\tDEPLOYMENTS\tPER DAY\tLEAD TIME\tCHANGE FAILURE RATE\tTIME TO RESTORE")
	for _, r := range reps {
		lead, restore, cfr := "-", "-", "-"
		if r.LeadTimeSamples > 0 {
			lead = fmt.Sprintf("%s (%s)", humanSeconds(r.LeadTimeSeconds), plural(r.LeadTimeSamples, "commit"))
		}
		if r.Restores > 0 {
			restore = fmt.Sprintf("%s (%s)", humanSeconds(r.TimeToRestoreSeconds), plural(r.Restores, "restore"))
		}
		if r.Changes > 0 {
			cfr = fmt.Sprintf("%s (%d of %s)", percent(r.ChangeFailureRate), r.Failures, plural(r.Changes, "change"))
		}
		fmt.Fprintf(w, "%s\t%d\t%.2f\t%s\t%s\t%s\n", r.Env, r.Deployments, r.DeploymentsPerDay, lead, cfr, restore)
	}
}

// humanSeconds writes a duration in its two largest units: 3d4h, 5h12m,
// 12m30s, 45s.
func humanSeconds(sec float64) string {
	d := time.Duration(sec * float64(time.Second)).Round(time.Second)
	units := []struct {
		name string
		size time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}}
	for i, u := range units {
		if d < u.size && u.name != "s" {
			continue
		}
		s := strconv.FormatInt(int64(d/u.size), 10) + u.name
		if i+1 < len(units) {
			next := units[i+1]
			if rest := (d % u.size) / next.size; rest > 0 {
				s += strconv.FormatInt(int64(rest), 10) + next.name
			}
		}
		return s
	}
	return "0s"
}

func percent(f float64) string {
	s := strconv.FormatFloat(f*100, 'f', 1, 64)
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s + "%"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
