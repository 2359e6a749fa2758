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
	return group(&cobra.Command{
		Use:   "hook",
		Short: "Git server hooks that apply ferry's release rules inside the repository",
	}, newPreReceiveCmd())
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
		Short: "Refuse pushes that ferry would not deploy, and any push of ferry's own tags",
		Long: `Run by a git server as the repository's pre-receive hook: it reads the pushed
ref updates ("<old> <new> <ref>" lines) on standard input and refuses the whole push
(non-zero exit, the reason on standard error, which git shows the pusher as
"remote: …") when ferry would not act on one of them as the push says:

  release moves only fast-forward along master's history (a promotion) or to
  the commit of a known release (a rollback), and only when that promotion or
  rollback passes its gates (prod not locked, the commit not quarantined, it
  succeeded in dev and soaked there); it is never deleted. Release tags (RC…)
  and environment tags (env/…) are ferry's: an RC tag may only be created,
  annotated, for a release of the ledger on that release's commit, and never
  moved or deleted; env/<name> may only name what <name> runs. Other refs pass.

ferry judges the updates itself (POST /api/v1/envs/{env}/push-check) on the facts
it acts on, with the same rules and sentences as ferry promote and ferry rollback,
so that what the hook accepts, ferry deploys. The hook sends what it read of its own
repository (the pushed objects are there, not yet in ferry's copy). It asks the
server --server (else FERRY_SERVER, else the current-server file's, else
http://127.0.0.1:7070) with --token, else
FERRY_TOKEN, else the token the credentials file holds for that server, as every
client command does; a viewer token is enough. It asks only when the push touches
one of those refs, and fails closed: when the server cannot be asked, such a push is
refused. ferry's own pushes (the release branch, RC and env tags) pass through the
same hook and the same judgement.

Install it as hooks/pre-receive of the bare repository, with a token of its own
(ferry token create --role viewer --name git-hook):

  #!/bin/sh
  FERRY_TOKEN=ferry_… exec /usr/local/bin/ferry hook pre-receive --server https://ferry.example.com`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&opts.mainline, "master", "master", "the branch whose history alone may be released")
	cmd.Flags().StringSliceVar(&opts.branches, "branch", []string{"release"}, "the branch(es) that track a gated environment")
	cmd.Flags().StringVar(&opts.env, "env", "prod", "the gated environment the branch tracks: its known releases are what the branch may return to")
	cmd.Flags().StringVar(&gitDir, "git-dir", "", "the repository (default: $GIT_DIR, set by git, else the current directory)")
	newClient := serverFlag(cmd)
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
		check := func(ctx context.Context, ups []release.PushUpdate) ([]release.Verdict, error) {
			c, err := newClient()
			if err != nil {
				return nil, err
			}
			return c.CheckPush(ctx, opts.env, ups)
		}
		refused, err := preReceive(cmd.Context(), release.GitDir{Path: dir}, updates, opts, check, cmd.ErrOrStderr())
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
// its new head (`git push origin master release` in one go). Known
// releases are the ledger's, so release tags pushed along change nothing.
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

// preReceive reads from g what ferry needs to know of each update that
// touches ferry's refs (a release branch, release tags, env/* tags), asks
// ferry to judge them (check: release.JudgePush, on the ledger's facts, in
// one call), prints one line per accepted move and per refusal to w, and
// returns how many were refused. Other refs are not ferry's and pass
// without asking. An error means some update could not be checked.
func preReceive(ctx context.Context, g release.GitDir, updates []refUpdate, opts hookOptions, check func(context.Context, []release.PushUpdate) ([]release.Verdict, error), w io.Writer) (refused int, err error) {
	view := pushView{GitDir: g, heads: map[string]string{}}
	for _, u := range updates {
		if u.ref == "refs/heads/"+opts.mainline {
			view.heads[opts.mainline] = u.new
		}
	}
	var ups []release.PushUpdate
	for _, u := range updates {
		p := release.PushUpdate{Ref: u.ref, Old: u.old, New: u.new}
		if b, ok := strings.CutPrefix(u.ref, "refs/heads/"); ok {
			if !slices.Contains(opts.branches, b) {
				continue
			}
			if p.Move, err = release.Observe(ctx, view, release.Move{Branch: b, Old: u.old, New: u.new}, opts.mainline); err != nil {
				return 0, fmt.Errorf("%s: %w", b, err)
			}
			ups = append(ups, p)
			continue
		}
		name, ok := strings.CutPrefix(u.ref, "refs/tags/")
		if !ok || !ferry.IsReleaseTag(name) && !strings.HasPrefix(name, release.EnvTagPrefix) {
			continue
		}
		if u.new != release.Zero {
			if p.Annotated, p.Commit, err = g.Peel(ctx, u.new); err != nil {
				return 0, fmt.Errorf("tag %s: %w", name, err)
			}
		}
		if ferry.IsReleaseTag(name) {
			t := release.TagMove{Name: name, Old: u.old, New: u.new, Annotated: p.Annotated, Commit: p.Commit}
			if p.Tag, err = release.ObserveTag(ctx, view, t, opts.mainline); err != nil {
				return 0, fmt.Errorf("tag %s: %w", name, err)
			}
		}
		ups = append(ups, p)
	}
	if len(ups) == 0 {
		return 0, nil
	}
	verdicts, err := check(ctx, ups)
	if err != nil {
		return 0, fmt.Errorf("ask ferry about %s: %w", opts.env, err)
	}
	for i, v := range verdicts {
		u := ups[i]
		b, isBranch := strings.CutPrefix(u.Ref, "refs/heads/")
		tag := strings.TrimPrefix(u.Ref, "refs/tags/")
		switch {
		case v.Allowed && isBranch && v.Kind != release.Unchanged:
			fmt.Fprintf(w, "ferry: %s → %s accepted (%s): %s\n", b, ferry.ShortSHA(u.New), v.Kind, v.Reason)
		case v.Allowed:
		case isBranch:
			refused++
			fmt.Fprintf(w, "ferry: refusing to update %s: %s\n", b, v.Reason)
			if v.Rule != release.RuleGate {
				fmt.Fprintf(w, "ferry: %s tracks %s and moves only forward along %s (git merge --ff-only <commit of %s>; git push)"+
					" or back to a release (ferry rollback %s [--to RC…], or git branch -f %s <RC…>; git push --force)\n",
					b, opts.env, opts.mainline, opts.mainline, opts.env, b)
			}
		default:
			refused++
			fmt.Fprintf(w, "ferry: refusing to update tag %s: %s\n", tag, v.Reason)
		}
	}
	return refused, nil
}
