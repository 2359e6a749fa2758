package controller

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// Git is what releases need of the app's repository.
type Git interface {
	Fetch(ctx context.Context) error
	Head(ctx context.Context, branch string) (string, error)
	IsAncestor(ctx context.Context, ancestor, descendant string) (bool, error)
	Log(ctx context.Context, from, to string) ([]ferry.Commit, error)
	SetRef(ctx context.Context, ref, sha, expect string) error
	CreateTag(ctx context.Context, name, commit, message string) error
	ResolveTag(ctx context.Context, tag string) (string, error)
}

// candidate is what a promotion would roll out.
type candidate struct {
	commit, digest, release string
	buildID                 int64
}

var shortHex = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// Promote rolls env forward to what its upstream runs (ref "" or the
// upstream's name), or to a given commit (full or at least 7 hex) or
// release tag, after every gate passed. It moves the release branch (fast
// forward only), tags the digest with a new release tag (no rebuild, no
// upload) and queues the rollout. Refusals are *ferry.Error with the reason.
func (c *Controller) Promote(ctx context.Context, env, ref, actor, reason string) (*ferry.Deployment, error) {
	r, err := c.env(env)
	if err != nil {
		return nil, err
	}
	if !r.env.Gated() {
		return nil, ferry.Errorf(ferry.EINVALID, "%s takes no promotions: it follows branch %s", env, r.env.Branch)
	}
	r.promoteMu.Lock()
	defer r.promoteMu.Unlock()
	if err := c.git.Fetch(ctx); err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "fetch the repository: %v", err)
	}
	cand, err := c.resolve(ctx, r, ref)
	if err != nil {
		return nil, c.refuse(ctx, r, "promote", ref, actor, err)
	}
	if err := c.gates(ctx, r, cand); err != nil {
		return nil, c.refuse(ctx, r, "promote", cand.commit, actor, err)
	}
	if err := c.moveRelease(ctx, r, cand.commit, false); err != nil {
		return nil, c.refuse(ctx, r, "promote", cand.commit, actor, err)
	}
	tag, err := c.newReleaseTag(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := c.tags.Tag(ctx, cand.digest, tag); err != nil {
		return nil, fmt.Errorf("tag %s as %s: %w", ferry.ShortSHA(cand.commit), tag, err)
	}
	d := &ferry.Deployment{
		App: c.cfg.App, Env: env, Kind: ferry.DeployPromote, BuildID: cand.buildID,
		Commit: cand.commit, Digest: cand.digest, Release: tag, Actor: actor, Reason: reason,
	}
	if d.Reason == "" {
		d.Reason = fmt.Sprintf("promote %s from %s as %s", ferry.ShortSHA(cand.commit), r.env.From, tag)
	}
	return c.request(ctx, r, d)
}

// refuse records a refused action and returns its error.
func (c *Controller) refuse(ctx context.Context, r *envRunner, action, what, actor string, err error) error {
	e := &ferry.Event{
		Time: c.now(), Actor: actor, Kind: action + ".refused", App: c.cfg.App, Env: r.env.Name,
		Message: fmt.Sprintf("%s %s to %s refused", action, dashIf(what), r.env.Name), Reason: ferry.ErrorMessage(err),
	}
	if ferry.ValidCommit(what) {
		e.Commit = what
	}
	if aerr := c.ledger.AddEvent(ctx, e); aerr != nil {
		c.log.Error("record refusal", "err", aerr)
	}
	c.changed.Notify()
	return err
}

func dashIf(s string) string {
	if s == "" {
		return "(upstream)"
	}
	return ferry.ShortSHA(s)
}

// resolve finds the commit and digest a promotion names.
func (c *Controller) resolve(ctx context.Context, r *envRunner, ref string) (candidate, error) {
	up := r.env.From
	switch {
	case ref == "" || ref == up:
		cur, err := c.ledger.Current(ctx, c.cfg.App, up)
		if err != nil {
			if ferry.ErrorCode(err) == ferry.ENOTFOUND {
				return candidate{}, ferry.Errorf(ferry.ECONFLICT, "%s runs nothing yet: nothing to promote", up)
			}
			return candidate{}, err
		}
		return candidate{commit: cur.Commit, digest: cur.Digest, buildID: cur.BuildID}, nil
	case strings.HasPrefix(ref, "RC"):
		ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Release: ref, Limit: 1})
		if err != nil {
			return candidate{}, err
		}
		if len(ds) == 0 {
			return candidate{}, ferry.Errorf(ferry.ENOTFOUND, "no release %s", ref)
		}
		return candidate{commit: ds[0].Commit, digest: ds[0].Digest, buildID: ds[0].BuildID}, nil
	case shortHex.MatchString(ref):
		b, err := c.buildOf(ctx, ref)
		if err != nil {
			return candidate{}, err
		}
		return candidate{commit: b.Commit, digest: b.Digest, buildID: b.ID}, nil
	}
	return candidate{}, ferry.Errorf(ferry.EINVALID, "%q is neither a commit, a release tag (RC…) nor the upstream environment %q", ref, up)
}

// buildOf finds the succeeded build of a commit given in full or by prefix.
// A full commit id is one indexed lookup; a prefix is matched against the
// newest 1000 succeeded builds.
func (c *Controller) buildOf(ctx context.Context, ref string) (*ferry.Build, error) {
	if ferry.ValidCommit(ref) {
		b, err := c.ledger.BuildByCommit(ctx, c.cfg.App, ref)
		switch {
		case ferry.ErrorCode(err) == ferry.ENOTFOUND || err == nil && b.State != ferry.BuildSucceeded:
			return nil, ferry.Errorf(ferry.ENOTFOUND, "commit %s has no succeeded build: it never ran in dev", ref)
		case err != nil:
			return nil, err
		}
		return b, nil
	}
	builds, err := c.ledger.Builds(ctx, ledger.BuildFilter{App: c.cfg.App, States: []ferry.BuildState{ferry.BuildSucceeded}, Limit: 1000})
	if err != nil {
		return nil, err
	}
	var found *ferry.Build
	for _, b := range builds {
		if strings.HasPrefix(b.Commit, ref) {
			if found != nil {
				return nil, ferry.Errorf(ferry.EINVALID, "commit prefix %s is ambiguous: give more digits", ref)
			}
			found = b
		}
	}
	if found == nil {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "commit %s has no succeeded build: it never ran in dev", ref)
	}
	return found, nil
}

// gates checks every rule a promotion must pass (DESIGN §6).
func (c *Controller) gates(ctx context.Context, r *envRunner, cand candidate) error {
	name, up := r.env.Name, r.env.From
	if l, err := c.locks.LockOf(ctx, c.cfg.App, name); err == nil {
		return ferry.Errorf(ferry.ECONFLICT, "%s is locked by %s since %s UTC: %s (ferry unlock %s)", name, l.Actor, l.CreatedAt.UTC().Format(time.DateTime), l.Reason, name)
	} else if ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return err
	}
	r.mu.Lock()
	busy := r.active
	if busy == nil || r.finishing {
		busy = r.pending
	}
	r.mu.Unlock()
	if busy != nil {
		return ferry.Errorf(ferry.ECONFLICT, "a rollout of %s is in progress (deployment %d, %s %s); wait for it to end", name, busy.ID, busy.Kind, ferry.ShortSHA(busy.Commit))
	}
	if q, err := c.locks.Quarantined(ctx, c.cfg.App, cand.commit); err == nil {
		return ferry.Errorf(ferry.ECONFLICT, "%s is quarantined by %s: %s", ferry.ShortSHA(cand.commit), q.Actor, q.Reason)
	} else if ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return err
	}
	main, err := c.git.Head(ctx, r.mainline)
	if err != nil {
		return fmt.Errorf("read %s: %w", r.mainline, err)
	}
	on, err := c.git.IsAncestor(ctx, cand.commit, main)
	if err != nil {
		return err
	}
	if !on {
		return ferry.Errorf(ferry.ECONFLICT, "%s is not on %s's history: only commits of %s are released", ferry.ShortSHA(cand.commit), r.mainline, r.mainline)
	}
	ran, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: up, Digest: cand.digest, Limit: 100})
	if err != nil {
		return err
	}
	var first *ferry.Deployment
	var failed *ferry.Deployment
	for _, d := range ran { // newest first
		switch d.State {
		case ferry.DeploymentSucceeded:
			first = d
		case ferry.DeploymentFailed, ferry.DeploymentRolledBack:
			if failed == nil {
				failed = d
			}
		}
	}
	if first == nil {
		if failed != nil {
			return ferry.Errorf(ferry.ECONFLICT, "%s failed in %s (deployment %d: %s): it is not promoted", ferry.ShortSHA(cand.commit), up, failed.ID, failed.Error)
		}
		return ferry.Errorf(ferry.ECONFLICT, "%s never ran in %s: only digests that succeeded there are promoted", ferry.ShortSHA(cand.commit), up)
	}
	if soak := r.env.Soak; soak > 0 {
		ranFor := c.now().Sub(first.FinishedAt)
		if ranFor < soak {
			return ferry.Errorf(ferry.ECONFLICT, "%s has run in %s for %s; %s needs %s of soak (promotable at %s)",
				ferry.ShortSHA(cand.commit), up, ranFor.Round(time.Second), name, soak, first.FinishedAt.Add(soak).UTC().Format(time.DateTime))
		}
	}
	return nil
}

// moveRelease points the environment's branch at commit: forward only for
// a promotion; for a rollback, back to an earlier release. Either way with
// a lease, so a concurrent push is refused instead of overwritten.
func (c *Controller) moveRelease(ctx context.Context, r *envRunner, commit string, back bool) error {
	branch := r.env.Branch
	if branch == "" {
		return nil
	}
	head, err := c.git.Head(ctx, branch)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		head = ferry.ZeroSHA
	case err != nil:
		return err
	case head == commit:
		return nil
	case !back:
		ff, err := c.git.IsAncestor(ctx, head, commit)
		if err != nil {
			return err
		}
		if !ff {
			return ferry.Errorf(ferry.ECONFLICT, "%s (%s) is not an ancestor of %s: a promotion only moves %s forward; to go back use ferry rollback %s",
				branch, ferry.ShortSHA(head), ferry.ShortSHA(commit), branch, r.env.Name)
		}
	}
	if err := c.git.SetRef(ctx, "refs/heads/"+branch, commit, head); err != nil {
		return fmt.Errorf("move %s to %s: %w", branch, ferry.ShortSHA(commit), err)
	}
	return nil
}

// newReleaseTag renders the release tag for now, adding _2, _3 … when a
// release of the same minute exists.
func (c *Controller) newReleaseTag(ctx context.Context, r *envRunner) (string, error) {
	base, err := r.env.ReleaseName(c.now())
	if err != nil {
		return "", err
	}
	tag := base
	for n := 2; ; n++ {
		ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Release: tag, Limit: 1})
		if err != nil {
			return "", err
		}
		if len(ds) == 0 {
			return tag, nil
		}
		tag = fmt.Sprintf("%s_%d", base, n)
	}
}

// Rollback returns env to an earlier release at once (no build): the one
// named, or the previous succeeded release. The release branch is reset to
// that release's commit with a lease, so nothing redeploys the bad head.
func (c *Controller) Rollback(ctx context.Context, env, to, actor, reason string) (*ferry.Deployment, error) {
	r, err := c.env(env)
	if err != nil {
		return nil, err
	}
	if !r.env.Gated() {
		return nil, ferry.Errorf(ferry.EINVALID, "%s has no releases to roll back to: it follows branch %s", env, r.env.Branch)
	}
	r.promoteMu.Lock()
	defer r.promoteMu.Unlock()
	if err := c.git.Fetch(ctx); err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "fetch the repository: %v", err)
	}
	target, err := c.rollbackTarget(ctx, r, to)
	if err != nil {
		return nil, c.refuse(ctx, r, "rollback", to, actor, err)
	}
	if q, err := c.locks.Quarantined(ctx, c.cfg.App, target.Commit); err == nil {
		return nil, c.refuse(ctx, r, "rollback", target.Commit, actor,
			ferry.Errorf(ferry.ECONFLICT, "%s (%s) is quarantined by %s: %s", target.Release, ferry.ShortSHA(target.Commit), q.Actor, q.Reason))
	} else if ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return nil, err
	}
	if err := c.moveRelease(ctx, r, target.Commit, true); err != nil {
		return nil, c.refuse(ctx, r, "rollback", target.Commit, actor, err)
	}
	d := &ferry.Deployment{
		App: c.cfg.App, Env: env, Kind: ferry.DeployRollback, BuildID: target.BuildID,
		Commit: target.Commit, Digest: target.Digest, Release: target.Release, Actor: actor, Reason: reason,
	}
	if d.Reason == "" {
		d.Reason = "rollback to " + target.Release
	}
	return c.request(ctx, r, d)
}

// rollbackTarget is the named release, which must have run successfully in
// env, or the newest succeeded release before the current one.
func (c *Controller) rollbackTarget(ctx context.Context, r *envRunner, to string) (*ferry.Deployment, error) {
	ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, States: []ferry.DeploymentState{ferry.DeploymentSucceeded}, Limit: 1000})
	if err != nil {
		return nil, err
	}
	if to != "" {
		for _, d := range ds {
			if d.Release == to {
				return d, nil
			}
		}
		return nil, ferry.Errorf(ferry.ENOTFOUND, "release %s never ran successfully in %s: nothing to roll back to", to, r.env.Name)
	}
	cur, err := c.ledger.Current(ctx, c.cfg.App, r.env.Name)
	if err != nil {
		return nil, ferry.Errorf(ferry.ECONFLICT, "%s runs nothing yet: nothing to roll back", r.env.Name)
	}
	for _, d := range ds {
		if d.Release != "" && d.Release != cur.Release && d.Digest != cur.Digest {
			return d, nil
		}
	}
	return nil, ferry.Errorf(ferry.ECONFLICT, "%s has no earlier release than %s to roll back to", r.env.Name, dashRelease(cur.Release))
}

func dashRelease(s string) string {
	if s == "" {
		return "what it runs"
	}
	return s
}

// releaseNotes lists the commits of a release since the previous one (the
// annotated tag's message).
func (c *Controller) releaseNotes(ctx context.Context, r *envRunner, d *ferry.Deployment) string {
	prevCommit, prevTag := "", ""
	ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, Kinds: []ferry.DeploymentKind{ferry.DeployPromote}, States: []ferry.DeploymentState{ferry.DeploymentSucceeded}, Limit: 50})
	if err == nil {
		for _, p := range ds {
			if p.ID < d.ID {
				prevCommit, prevTag = p.Commit, p.Release
				break
			}
		}
	}
	commits, err := c.git.Log(ctx, prevCommit, d.Commit)
	if err != nil {
		c.log.Warn("release notes: commit list unavailable", "release", d.Release, "err", err)
	}
	return release.ReleaseNotes(d.Release, prevTag, commits)
}

// ReleaseHead handles a new head of a gated environment's branch seen in
// git: someone pushed to release. A fast-forward along the mainline is a
// promotion, a move back to a known release's commit is a rollback (the
// seed's `git branch -f release <sha>; git push --force`); anything else is
// never deployed: it is recorded and shown as an alert until resolved. The
// repository's cache must already hold sha (the poller calls it after a
// fetch).
func (c *Controller) ReleaseHead(ctx context.Context, branch, sha string) {
	for _, r := range c.envs {
		if r.env.Gated() && r.env.Branch == branch {
			c.releaseHead(ctx, r, sha)
		}
	}
}

func (c *Controller) releaseHead(ctx context.Context, r *envRunner, sha string) {
	r.mu.Lock()
	busy := (r.pending != nil && r.pending.Commit == sha) || (r.active != nil && r.active.Commit == sha)
	r.mu.Unlock()
	if busy {
		return
	}
	cur, err := c.ledger.Current(ctx, c.cfg.App, r.env.Name)
	if err != nil && ferry.ErrorCode(err) != ferry.ENOTFOUND {
		c.log.Error("release head", "err", err)
		return
	}
	if cur != nil && cur.Commit == sha {
		c.setAlert(r, "")
		return
	}
	// Back to a release that ran here: a rollback by push.
	if ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, Commit: sha,
		States: []ferry.DeploymentState{ferry.DeploymentSucceeded}, Limit: 1}); err == nil && len(ds) > 0 && ds[0].Release != "" {
		if _, err := c.Rollback(ctx, r.env.Name, ds[0].Release, "git push", "release moved back to "+ds[0].Release+" by a push"); err != nil {
			c.setAlert(r, fmt.Sprintf("%s pushed to %s, not deployed: %s", ferry.ShortSHA(sha), r.env.Branch, ferry.ErrorMessage(err)))
			return
		}
		c.setAlert(r, "")
		return
	}
	if cur != nil {
		// The caller (the poller) has just fetched: sha is in the cache.
		ff, err := c.git.IsAncestor(ctx, cur.Commit, sha)
		if err != nil {
			c.log.Error("release head", "err", err)
			return
		}
		if !ff {
			msg := fmt.Sprintf("%s was pushed to %s but is neither a fast-forward of what %s runs (%s) nor a known release: it is not deployed",
				ferry.ShortSHA(sha), r.env.Branch, r.env.Name, ferry.ShortSHA(cur.Commit))
			c.illegal(ctx, r, sha, msg)
			return
		}
	}
	if _, err := c.Promote(ctx, r.env.Name, sha, "git push", fmt.Sprintf("%s pushed to %s", ferry.ShortSHA(sha), r.env.Branch)); err != nil {
		c.setAlert(r, fmt.Sprintf("%s pushed to %s, not deployed: %s", ferry.ShortSHA(sha), r.env.Branch, ferry.ErrorMessage(err)))
		return
	}
	c.setAlert(r, "")
}

func (c *Controller) illegal(ctx context.Context, r *envRunner, sha, msg string) {
	c.setAlert(r, msg)
	e := &ferry.Event{Time: c.now(), Actor: "git push", Kind: "release.illegal", App: c.cfg.App, Env: r.env.Name, Commit: sha, Message: msg}
	if err := c.ledger.AddEvent(ctx, e); err != nil {
		c.log.Error("record illegal release head", "err", err)
	}
	c.changed.Notify()
}

func (c *Controller) setAlert(r *envRunner, msg string) {
	r.mu.Lock()
	r.alert = msg
	r.mu.Unlock()
	c.changed.Notify()
}

// Lock freezes an environment: promotions are refused while it holds.
func (c *Controller) Lock(ctx context.Context, env, actor, reason string) (*ferry.Lock, error) {
	r, err := c.env(env)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(reason) == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "a lock needs a reason (--reason)")
	}
	l := &ferry.Lock{App: c.cfg.App, Env: r.env.Name, Actor: actor, Reason: reason, CreatedAt: c.now()}
	if err := c.locks.Lock(ctx, l); err != nil {
		return nil, err
	}
	c.ledgerEvent(ctx, "env.locked", actor, env, "", fmt.Sprintf("%s locked", env), reason)
	return l, nil
}

// Unlock lifts an environment's lock.
func (c *Controller) Unlock(ctx context.Context, env, actor, reason string) (*ferry.Lock, error) {
	if _, err := c.env(env); err != nil {
		return nil, err
	}
	l, err := c.locks.Unlock(ctx, c.cfg.App, env)
	if err != nil {
		return nil, err
	}
	c.ledgerEvent(ctx, "env.unlocked", actor, env, "", fmt.Sprintf("%s unlocked (locked by %s: %s)", env, l.Actor, l.Reason), reason)
	return l, nil
}

// Quarantine bars a commit, named by commit or release tag, from ever
// being promoted or rolled back to again.
func (c *Controller) Quarantine(ctx context.Context, ref, actor, reason string) (*ferry.Quarantine, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "a quarantine needs a reason (--reason)")
	}
	q := &ferry.Quarantine{App: c.cfg.App, Actor: actor, Reason: reason, CreatedAt: c.now()}
	if strings.HasPrefix(ref, "RC") {
		ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Release: ref, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(ds) == 0 {
			return nil, ferry.Errorf(ferry.ENOTFOUND, "no release %s", ref)
		}
		q.Commit, q.Release = ds[0].Commit, ref
	} else {
		if !shortHex.MatchString(ref) {
			return nil, ferry.Errorf(ferry.EINVALID, "%q is neither a commit nor a release tag (RC…)", ref)
		}
		b, err := c.buildOf(ctx, ref)
		if err != nil {
			return nil, err
		}
		q.Commit = b.Commit
	}
	if err := c.locks.AddQuarantine(ctx, q); err != nil {
		return nil, err
	}
	c.ledgerEvent(ctx, "release.quarantined", actor, "", q.Commit, fmt.Sprintf("%s quarantined", strings.TrimSpace(q.Release+" "+ferry.ShortSHA(q.Commit))), reason)
	return q, nil
}

func (c *Controller) ledgerEvent(ctx context.Context, kind, actor, env, commit, msg, reason string) {
	e := &ferry.Event{Time: c.now(), Actor: actor, Kind: kind, App: c.cfg.App, Env: env, Commit: commit, Message: msg, Reason: reason}
	if err := c.ledger.AddEvent(ctx, e); err != nil {
		c.log.Error("record event", "kind", kind, "err", err)
	}
	c.changed.Notify()
}

// Diff compares what two environments run: the commits in from and not in
// to, and the reverse.
func (c *Controller) Diff(ctx context.Context, from, to string) (*release.Comparison, error) {
	side := func(name string) (release.Side, error) {
		if _, err := c.env(name); err != nil {
			return release.Side{}, err
		}
		s := release.Side{Env: name}
		cur, err := c.ledger.Current(ctx, c.cfg.App, name)
		switch {
		case err == nil:
			s.Commit, s.Release = cur.Commit, cur.Release
		case ferry.ErrorCode(err) != ferry.ENOTFOUND:
			return s, err
		}
		return s, nil
	}
	f, err := side(from)
	if err != nil {
		return nil, err
	}
	t, err := side(to)
	if err != nil {
		return nil, err
	}
	if err := c.git.Fetch(ctx); err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "fetch the repository: %v", err)
	}
	return release.Compare(ctx, c.git, f, t)
}

// KnownReleases lists env's known releases, newest first: the release
// names its succeeded deployments carried (release.KnownReleases, the one
// definition). A push of the release branch may return to one of them;
// `ferry hook pre-receive` asks for them through the API.
func (c *Controller) KnownReleases(ctx context.Context, env string) ([]release.Known, error) {
	r, err := c.env(env)
	if err != nil {
		return nil, err
	}
	if !r.env.Gated() {
		return nil, ferry.Errorf(ferry.EINVALID, "%s has no releases: it follows branch %s", env, r.env.Branch)
	}
	return c.knownReleases(ctx, r)
}

// knownReleases reads r's known releases from the ledger.
func (c *Controller) knownReleases(ctx context.Context, r *envRunner) ([]release.Known, error) {
	ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, States: []ferry.DeploymentState{ferry.DeploymentSucceeded}, Limit: 1000})
	if err != nil {
		return nil, fmt.Errorf("list the releases of %s: %w", r.env.Name, err)
	}
	return release.KnownReleases(r.env.Environment, ds), nil
}
