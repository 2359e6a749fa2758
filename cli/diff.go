package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/release"
)

func newDiffCmd() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:     "diff ENV ENV",
		Short:   "Show the commits one environment runs and the other does not, with subjects and authors",
		Example: "  ferry diff dev prod      # what a promotion of dev would bring to prod, and what prod has that dev lacks",
		Args:    cobra.ExactArgs(2),
	}
	newClient := serverFlag(cmd)
	out.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		if args[0] == args[1] {
			return usageErrorf("diff needs two different environments, got %s twice", args[0])
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		d, err := c.Diff(cmd.Context(), args[0], args[1])
		if err != nil {
			return err
		}
		now := time.Now()
		return out.print(cmd.OutOrStdout(), d, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "%s runs %s; %s runs %s\n", d.From.Env, side(d.From), d.To.Env, side(d.To))
			changeTable(w, fmt.Sprintf("In %s, not in %s", d.From.Env, d.To.Env), d.Ahead, now)
			changeTable(w, fmt.Sprintf("In %s, not in %s", d.To.Env, d.From.Env), d.Behind, now)
		})
	}
	return cmd
}

func side(s release.Side) string {
	switch {
	case s.Commit == "":
		return "nothing"
	case s.Release != "":
		return s.Release + " (" + ferry.ShortSHA(s.Commit) + ")"
	}
	return ferry.ShortSHA(s.Commit)
}

func changeTable(w io.Writer, title string, cs []release.Change, now time.Time) {
	if len(cs) == 0 {
		fmt.Fprintf(w, "\n%s: none\n", title)
		return
	}
	fmt.Fprintf(w, "\n%s (%d):\n", title, len(cs))
	fmt.Fprintln(w, "COMMIT\tSUBJECT\tAUTHOR\tWHEN")
	for _, c := range cs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", ferry.ShortSHA(c.Commit), truncate(c.Subject, 72), dash(c.Author), ago(c.Time, now))
	}
}
