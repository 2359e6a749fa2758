package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/oci"
	"github.com/ferryhq/ferry/pipeline"
	"github.com/ferryhq/ferry/verify"
)

// Step names, in order.
const (
	StepCheckout    = "checkout"
	StepTest        = "test"
	StepBuild       = "build"
	StepPush        = "push"
	StepSign        = "sign"
	StepIntegration = "integration"
	StepTag         = "tag"
)

// candidateTag names the image a build command pushes: a commit's own tags
// (sha-…, the short commit) are set only once every step passed, so an
// image under them is one that passed, and adopting it is safe.
func candidateTag(commit string) string { return "candidate-" + commit }

// run is the state one build's steps share.
type run struct {
	b      *Builder
	build  *ferry.Build
	dir    string
	info   ferry.TemplateData
	img    v1.Image
	digest string
}

func (b *Builder) runBuild(ctx context.Context, build *ferry.Build) {
	// Cancel finds the build's cancel function from the moment the ledger
	// says it runs: set before the transition, not after it.
	bctx, cancel := context.WithCancel(ctx)
	b.mu.Lock()
	b.cancelID, b.cancel = build.ID, cancel
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.cancelID, b.cancel = 0, nil
		b.mu.Unlock()
		cancel()
	}()
	now := b.now()
	if err := b.ledger.TransitionBuild(ctx, build.ID, ferry.BuildQueued, ferry.BuildRunning, "", now); err != nil {
		if ferry.ErrorCode(err) != ferry.ECONFLICT {
			b.log.Error("start build", "build", build.ID, "err", err)
		}
		return // superseded, canceled or taken by another server meanwhile
	}
	build.State, build.StartedAt, build.Reason = ferry.BuildRunning, now, ""
	// A build queued (or resumed) under another configuration is pushed
	// where this one says; the ledger records where the image went.
	build.Image = b.cfg.Image
	b.event(ctx, "build.started", "ferry", build, "")

	rec := &recorder{ctx: context.WithoutCancel(ctx), b: b, build: build}
	rec.start()
	r := &run{b: b, build: build, dir: filepath.Join(b.cfg.WorkDir, fmt.Sprintf("%d-%s", build.ID, build.ShortCommit()))}
	p := &pipeline.Pipeline{Listener: rec, Steps: r.steps()}
	rec.plan(p.Steps)

	var err error
	if digest, ok := r.alreadyPushed(bctx, rec); ok {
		r.digest = digest
		rec.skipAll(p.Steps, fmt.Sprintf("image %s already in the registry, signed by ferry", ferry.CommitTag(build.Commit)))
	} else {
		err = p.Run(bctx)
	}
	if r.dir != "" {
		if rerr := b.src.RemoveCheckout(context.WithoutCancel(ctx), r.dir); rerr != nil {
			b.log.Warn("remove worktree", "dir", r.dir, "err", rerr)
		}
	}
	rec.close()
	b.finish(context.WithoutCancel(ctx), ctx, build, r.digest, err)
}

// finish records the outcome. A build stopped because ferry itself is
// shutting down stays running, so that the next start resumes it.
func (b *Builder) finish(ctx, runCtx context.Context, build *ferry.Build, digest string, err error) {
	switch {
	case err == nil:
		build.State, build.Digest = ferry.BuildSucceeded, digest
	case runCtx.Err() != nil:
		b.log.Info("build interrupted by shutdown; it resumes at the next start", "build", build.ID)
		return
	case errors.Is(err, context.Canceled):
		build.State, build.Reason = ferry.BuildCanceled, "canceled"
	default:
		build.State, build.Reason = ferry.BuildFailed, err.Error()
	}
	build.FinishedAt = b.now()
	if uerr := b.ledger.UpdateBuild(ctx, build); uerr != nil {
		b.log.Error("record build result", "build", build.ID, "err", uerr)
		return
	}
	b.event(ctx, "build."+string(build.State), "ferry", build, build.Reason)
	if build.State == ferry.BuildSucceeded && b.OnSucceeded != nil {
		b.OnSucceeded(build)
	}
}

// alreadyPushed reports an image that an earlier run (or another ferry)
// pushed, signed and tagged for this commit; it is adopted instead of
// rebuilt. An image under the commit's tag that does not verify (planted
// by hand, signed with another key, attesting another commit) is not
// adopted: the build runs every step, and its tag step moves the tag to
// the image it made. The refusal is recorded as an event and a log line.
func (r *run) alreadyPushed(ctx context.Context, rec *recorder) (string, bool) {
	tag := ferry.CommitTag(r.build.Commit)
	digest, err := r.b.pub.Resolve(ctx, tag)
	if err != nil {
		return "", false // absent, or the registry is down: the push step retries
	}
	if err := r.b.cfg.Verifier.Verify(ctx, digest, r.build); err != nil {
		reason := fmt.Sprintf("not adopting %s (%s): %s; building the commit", r.b.pub.Ref(tag), ferry.ShortDigest(digest), ferry.ErrorMessage(err))
		rec.Line(StepCheckout, reason)
		r.b.event(ctx, "build.adopt-refused", "ferry", r.build, reason)
		return "", false
	}
	r.dir = ""
	return digest, true
}

func (r *run) steps() []pipeline.Step {
	return []pipeline.Step{
		{Name: StepCheckout, Run: r.checkout, MaxAttempts: 4},
		{Name: StepTest, Run: r.test, Skip: func() string {
			if r.b.cfg.Test == "" {
				return "no test command configured"
			}
			return ""
		}},
		{Name: StepBuild, Run: r.buildImage},
		{Name: StepPush, Run: r.push, MaxAttempts: r.b.cfg.PushAttempts},
		{Name: StepSign, Run: r.sign, MaxAttempts: r.b.cfg.PushAttempts},
		{Name: StepIntegration, Run: r.integration, Skip: func() string {
			if r.b.cfg.Integration == nil {
				return "no integration checks configured"
			}
			return ""
		}},
		{Name: StepTag, Run: r.tag, MaxAttempts: r.b.cfg.PushAttempts},
	}
}

func (r *run) checkout(ctx context.Context, log *pipeline.Log) error {
	ctx, cancel := context.WithTimeout(ctx, r.b.cfg.Timeout)
	defer cancel()
	_ = r.b.src.RemoveCheckout(ctx, r.dir) // left over from an interrupted run
	info, err := r.b.src.Commit(ctx, r.build.Commit)
	if err != nil {
		return retryIf(err)
	}
	r.info = ferry.TemplateData{Commit: r.build.Commit, ShortCommit: r.build.ShortCommit(), Branch: r.build.Branch, Time: info.Time.UTC()}
	log.Printf("checking out %s (%s) into %s", r.build.Commit, info.Subject, r.dir)
	if err := r.b.src.Checkout(ctx, r.build.Commit, r.dir); err != nil {
		return retryIf(err)
	}
	return nil
}

// appDir is where commands run: the worktree, or the configured directory
// inside it.
func (r *run) appDir() string { return filepath.Join(r.dir, filepath.FromSlash(r.b.cfg.Dir)) }

func retryIf(err error) error {
	if isRetryable(err) {
		return pipeline.Retryable(err)
	}
	return err
}

// env is what the user's commands see: the toolchain's part of ferry's
// environment (ferry.CommandEnv: none of ferry's secrets) and the build's
// facts.
func (r *run) env() []string {
	return ferry.CommandEnv(os.Environ(),
		"FERRY_APP="+r.b.cfg.App,
		"FERRY_COMMIT="+r.build.Commit,
		"FERRY_SHORT_COMMIT="+r.build.ShortCommit(),
		"FERRY_BRANCH="+r.build.Branch,
		"FERRY_BUILD_ID="+fmt.Sprint(r.build.ID),
		"FERRY_IMAGE="+r.b.pub.Ref(candidateTag(r.build.Commit)),
		"FERRY_WORKDIR="+r.dir,
	)
}

func (r *run) test(ctx context.Context, log *pipeline.Log) error {
	log.Printf("$ %s", r.b.cfg.Test)
	start := time.Now()
	if err := r.shell(ctx, r.b.cfg.Test, log); err != nil {
		return fmt.Errorf("tests failed: %w", err)
	}
	log.Printf("tests passed in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// shell runs command with sh -c in the worktree, within the step timeout;
// on timeout or cancellation the whole process group is killed.
func (r *run) shell(ctx context.Context, command string, log *pipeline.Log, env ...string) error {
	ctx, cancel := context.WithTimeout(ctx, r.b.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Dir = r.appDir()
	cmd.Env = append(r.env(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %s", r.b.cfg.Timeout)
	}
	return err
}

func (r *run) buildImage(ctx context.Context, log *pipeline.Log) error {
	if r.b.cfg.Command != "" {
		log.Printf("$ %s", r.b.cfg.Command)
		if err := r.shell(ctx, r.b.cfg.Command, log); err != nil {
			return fmt.Errorf("build command failed: %w", err)
		}
		return nil
	}
	var ldflags bytes.Buffer
	if err := r.b.ldflags.Execute(&ldflags, r.info); err != nil {
		return fmt.Errorf("render ldflags: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.b.cfg.Timeout)
	defer cancel()
	img, err := oci.BuildGo(ctx, oci.GoBuild{
		Dir: r.appDir(), Main: r.b.cfg.Go.Main, Ldflags: ldflags.String(), Env: r.b.cfg.Go.Env,
		Commit: r.build.Commit, Source: r.b.cfg.Source, Version: r.build.ShortCommit(), Created: r.info.Time,
	}, log)
	if err != nil {
		return err
	}
	r.img = img
	return nil
}

// push uploads the image by digest, without the commit's tags (the tag
// step sets them once the image passed), or finds the one the build
// command pushed under candidateTag.
func (r *run) push(ctx context.Context, log *pipeline.Log) error {
	if r.img == nil { // the user's command pushed it
		tag := candidateTag(r.build.Commit)
		digest, err := r.b.pub.Resolve(ctx, tag)
		if err != nil {
			return retryIf(fmt.Errorf("the build command did not push %s: %w", r.b.pub.Ref(tag), err))
		}
		r.digest = digest
		log.Printf("found %s", r.b.pub.Ref(digest))
		return nil
	}
	h, err := r.img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	log.Printf("pushing %s", r.b.pub.Ref(h.String()))
	digest, err := r.b.pub.Push(ctx, r.img)
	if err != nil {
		return retryIf(err)
	}
	r.digest = digest
	log.Printf("pushed %s", digest)
	return nil
}

// sign signs the pushed digest with ferry's key and stores the signature
// and the provenance attestation (commit, branch, test command and result,
// builder, times) in the registry next to the image. Only an image that
// passed the tests gets here; every rollout checks what this step wrote.
func (r *run) sign(ctx context.Context, log *pipeline.Log) error {
	result := ferry.TestPassed
	if r.b.cfg.Test == "" {
		result = ferry.TestSkipped
	}
	start := time.Now()
	p := ferry.Provenance{
		App: r.b.cfg.App, BuildID: r.build.ID, Commit: r.build.Commit, Branch: r.build.Branch,
		Source: r.b.cfg.Source, Image: r.b.cfg.Image, Test: r.b.cfg.Test, TestResult: result,
		Builder: r.b.cfg.BuilderID, Started: r.build.StartedAt, Finished: r.b.now(),
	}
	if err := r.b.cfg.Signer.Sign(ctx, r.digest, p); err != nil {
		return retryIf(err)
	}
	log.Printf("signed %s and attested its provenance (commit %s, tests %s) in %s", ferry.ShortDigest(r.digest), r.build.ShortCommit(), result, time.Since(start).Round(time.Millisecond))
	return nil
}

// integration runs the pushed image on trial and asks it the configured
// checks, then the command; a failure fails the build, and the image never
// gets the commit's tags.
func (r *run) integration(ctx context.Context, log *pipeline.Log) error {
	in := r.b.cfg.Integration
	ctx, cancel := context.WithTimeout(ctx, in.Timeout)
	defer cancel()
	start := time.Now()
	log.Printf("starting %s on trial", ferry.ShortDigest(r.digest))
	url, stop, err := r.b.cfg.Trial.Start(ctx, r.build.ID, r.build.Commit, r.digest, log)
	if err != nil {
		return fmt.Errorf("the image did not start: %w", err)
	}
	passed := false
	defer func() { stop(!passed) }()
	log.Printf("ready at %s after %s", url, time.Since(start).Round(time.Millisecond))
	for _, chk := range in.Checks {
		if err := verify.Run(ctx, http.DefaultClient, url, []ferry.Check{chk}); err != nil {
			return fmt.Errorf("integration check failed: %w", err)
		}
		log.Printf("passed %s", chk)
	}
	if in.Command != "" {
		log.Printf("$ FERRY_URL=%s %s", url, in.Command)
		if err := r.shell(ctx, in.Command, log, "FERRY_URL="+url); err != nil {
			return fmt.Errorf("integration command failed: %w", err)
		}
	}
	passed = true
	log.Printf("integration passed in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// tag gives the image that passed every step the commit's tags.
func (r *run) tag(ctx context.Context, log *pipeline.Log) error {
	for _, tag := range []string{ferry.CommitTag(r.build.Commit), ferry.ShortCommitTag(r.build.Commit)} {
		if err := r.b.pub.Tag(ctx, r.digest, tag); err != nil {
			return retryIf(err)
		}
		log.Printf("tagged %s", r.b.pub.Ref(tag))
	}
	return nil
}
