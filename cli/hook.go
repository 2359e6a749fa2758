package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/release"
)

func newHookCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hook",
		Short: "Git server hooks that apply ferry's release rules inside the repository",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newPreReceiveCmd())
	return cmd
}

// hookOptions are pre-receive's flags.
type hookOptions struct {
	mainline string
	branches []string
	env      string
}

func newPreReceiveCmd() *cobra.Command {
	var (
		opts   hookOptions
		gitDir string
	)
	cmd := &cobra.Command{
		Use:   "pre-receive",
		Short: "Refuse pushes that move release other than forward along master or back to a release",
		Long: `Run by a git server as the repository's pre-receive hook: it reads the pushed
ref updates ("<old> <new> <ref>" lines) on standard input and refuses the whole push
(non-zero exit, the reason on standard error, which git shows the pusher as
"remote: …") when one of them breaks the release rules:

  release moves only fast-forward along master's history (a promotion) or back to
  the commit of a known release, one with an annotated RC… tag (a rollback);
  it is never deleted. Release tags (RC…) are annotated, on master's history,
  and never moved or deleted. Other refs pass.

Install it as hooks/pre-receive of the bare repository:

  #!/bin/sh
  exec /usr/local/bin/ferry hook pre-receive`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&opts.mainline, "master", "master", "the branch whose history alone may be released")
	cmd.Flags().StringSliceVar(&opts.branches, "branch", []string{"release"}, "the branch(es) that track a gated environment")
	cmd.Flags().StringVar(&opts.env, "env", "prod", "the environment the branch tracks (named in the advice to the pusher)")
	cmd.Flags().StringVar(&gitDir, "git-dir", "", "the repository (default: $GIT_DIR, set by git, else the current directory)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		dir := gitDir
		if dir == "" {
			dir = os.Getenv("GIT_DIR")
		}
		if dir == "" {
			dir = "."
		}
		updates, err := readRefUpdates(cmd.InOrStdin())
		if err != nil {
			return fmt.Errorf("push refused: %w", err)
		}
		refused, err := preReceive(cmd.Context(), release.GitDir{Path: dir}, updates, opts, cmd.ErrOrStderr())
		if err != nil {
			// Fail closed: a push that cannot be checked is not let through.
			return fmt.Errorf("push refused: cannot check it: %w", err)
		}
		if refused > 0 {
			return &exitError{code: 1, err: fmt.Errorf("push refused: %d of %d ref updates break the release rules", refused, len(updates))}
		}
		return nil
	}
	return cmd
}

// refUpdate is one line of a pre-receive hook's input.
type refUpdate struct{ old, new, ref string }

// readRefUpdates parses "<old> <new> <ref>" lines.
func readRefUpdates(r io.Reader) ([]refUpdate, error) {
	var out []refUpdate
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || !ferry.ValidCommit(f[0]) || !ferry.ValidCommit(f[1]) || !strings.HasPrefix(f[2], "refs/") {
			return nil, fmt.Errorf("hook input line %d is %q, want \"<old> <new> <ref>\" with 40-hex ids", n, truncate(line, 120))
		}
		out = append(out, refUpdate{old: f[0], new: f[1], ref: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read hook input: %w", err)
	}
	return out, nil
}

// pushView is the repository as it will be if the push is accepted, as
// far as the rules care: a mainline updated by the same push counts at
// its new head (`git push origin master release` in one go). New release
// tags do not count as known releases until they have landed.
type pushView struct {
	release.GitDir
	heads map[string]string
}

func (p pushView) Head(ctx context.Context, branch string) (string, error) {
	if h, ok := p.heads[branch]; ok {
		if h == release.Zero {
			return "", ferry.Errorf(ferry.ENOTFOUND, "branch %q is deleted by this push", branch)
		}
		return h, nil
	}
	return p.GitDir.Head(ctx, branch)
}

// preReceive checks every update, printing one line per checked ref to w,
// and returns how many were refused. An error means some could not be
// checked.
func preReceive(ctx context.Context, g release.GitDir, updates []refUpdate, opts hookOptions, w io.Writer) (refused int, err error) {
	view := pushView{GitDir: g, heads: map[string]string{}}
	for _, u := range updates {
		if u.ref == "refs/heads/"+opts.mainline {
			view.heads[opts.mainline] = u.new
		}
	}
	for _, u := range updates {
		if b, ok := strings.CutPrefix(u.ref, "refs/heads/"); ok && slices.Contains(opts.branches, b) {
			v, err := release.Check(ctx, view, release.Move{Branch: b, Old: u.old, New: u.new}, opts.mainline)
			if err != nil {
				return refused, fmt.Errorf("%s: %w", b, err)
			}
			if v.Allowed {
				if v.Kind != release.Unchanged {
					fmt.Fprintf(w, "ferry: %s → %s accepted (%s): %s\n", b, ferry.ShortSHA(u.new), v.Kind, v.Reason)
				}
				continue
			}
			refused++
			fmt.Fprintf(w, "ferry: refusing to update %s: %s\n", b, v.Reason)
			fmt.Fprintf(w, "ferry: %s tracks %s and moves only forward along %s (git merge --ff-only <commit of %s>; git push)"+
				" or back to a release (ferry rollback %s [--to RC…], or git branch -f %s <RC…>; git push --force)\n",
				b, opts.env, opts.mainline, opts.mainline, opts.env, b)
			continue
		}
		if name, ok := strings.CutPrefix(u.ref, "refs/tags/"); ok && strings.HasPrefix(name, "RC") {
			t := release.TagMove{Name: name, Old: u.old, New: u.new}
			if u.new != release.Zero {
				if t.Annotated, t.Commit, err = g.Peel(ctx, u.new); err != nil {
					return refused, fmt.Errorf("tag %s: %w", name, err)
				}
			}
			v, err := release.CheckTag(ctx, view, t, opts.mainline)
			if err != nil {
				return refused, fmt.Errorf("tag %s: %w", name, err)
			}
			if !v.Allowed {
				refused++
				fmt.Fprintf(w, "ferry: refusing to update tag %s: %s\n", name, v.Reason)
			}
		}
	}
	return refused, nil
}
