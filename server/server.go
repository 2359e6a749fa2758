// Package server wires ferry's parts into the process `ferry serve` runs:
// it opens the ledger, starts the embedded registry, the git poller, the
// builder and the HTTP server (API and webhooks), and stops them in order.
// Tests start it on port 0 with a temporary data directory.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/builder"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/cosign"
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/leader"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/ledgerdb"
	"github.com/ferryhq/ferry/node"
	"github.com/ferryhq/ferry/oci"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/source"
)

// Options are what the command line adds to the configuration.
type Options struct {
	Version string
	Logger  *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Getenv and ReadFile resolve secret references; os's when nil.
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
	// Progress, when set, hears one line per start-up stage.
	Progress func(string)
	// Transport, when set, carries the requests to the registry (tests
	// count uploads with it).
	Transport http.RoundTripper
	// LeaseTTL is how long the leader lease lasts unrenewed;
	// leader.DefaultTTL when zero.
	LeaseTTL time.Duration
	// KubePoll is how often the Kubernetes runtime re-reads a rollout
	// when its watch is quiet; the runtime's default when zero.
	KubePoll time.Duration
	// Node, when set, runs the local environments in the node process of
	// the data directory (package node), started this way when none
	// answers, and started again should it die while ferry runs; the
	// environments then outlive this server. When nil they run in this
	// process and stop with it.
	Node *node.StartConfig
}

// Server is a running ferry.
type Server struct {
	cfg  *config.Config
	opts Options
	log  *slog.Logger

	// raw is the ledger unfenced: it takes the lead, and a standby reads
	// through it. A leader closes it once it writes through ledger.
	raw      ledger.Store
	ledger   ledger.Store // fenced by the lead's term: every write of this server
	registry *registry.Server
	repo     *source.Repo
	pub      *oci.Publisher
	signer   *cosign.Signer
	verifier *cosign.Verifier
	image    string
	builder  *builder.Builder
	ctrl     *controller.Controller
	node     *node.Client // nil unless Options.Node
	poller   *source.Poller
	hooked   hookTriggers
	dora     *dora.Reporter

	// dirLock proves this process alive to later runs (leadership.go).
	dirLock    *os.File
	holder     string // this run's lease holder
	leadership *leader.Lead
	// began is when this run started (Start): a server that began as the
	// lease was freed leaves it to those that stood by longer (yields).
	began    time.Time
	stopLead context.CancelFunc
	leadDone chan struct{}

	// standby holds the parts of a server that stands by (standby.go);
	// nil once it leads.
	standbyMu sync.Mutex
	standby   *standby

	ln        net.Listener
	advertise string // where other servers reach this one's API
	http      *http.Server
	// root is what answers HTTP: the leader's parts, or the standby's.
	root atomic.Pointer[http.Handler]
	// stopStreams ends the log followers, which would otherwise hold
	// the HTTP server's shutdown up until their build ends.
	stopStreams context.CancelFunc

	wg     sync.WaitGroup
	runCtx context.Context
	cancel context.CancelFunc
	// stopped is closed when the server stops on its own (lost the lead,
	// failed to take it over); stopErr says why.
	stopped  chan struct{}
	stopOnce sync.Once
	stopErr  error

	closeOnce sync.Once
	closeErr  error
}

// New checks what can be checked before starting anything.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = leader.DefaultTTL
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.Progress == nil {
		opts.Progress = func(string) {}
	}
	if len(cfg.BuildBranches()) == 0 {
		return nil, errors.New("no environment is driven by a branch without `from`: nothing to build")
	}
	return &Server{cfg: cfg, opts: opts, log: opts.Logger, stopped: make(chan struct{})}, nil
}

// Start opens the ledger, listens, and takes the lead of the app's ledger:
// then it starts the registry, the builder, the controller and the poller,
// and serves. When another server leads and the configuration lets
// several servers share the ledger (config.RedundancyGaps), it stands by
// instead (standby.go): it serves reads and forwards the rest to the
// leader until it takes over. It returns once ferry serves.
func (s *Server) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	cfg := s.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	s.opts.Progress(fmt.Sprintf("opening the ledger (%s)", cfg.Ledger.Engine))
	if s.raw, err = ledgerdb.Open(ctx, cfg.Ledger.URL); err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	if s.dirLock, err = lockDataDir(cfg.DataDir); err != nil {
		return err
	}
	if s.ln, err = net.Listen("tcp", cfg.Server.Listen); err != nil {
		return fmt.Errorf("listen on %s (server.listen): %w", cfg.Server.Listen, err)
	}
	s.advertise = advertised(cfg.Server.Advertise, s.ln.Addr())
	s.serve()
	s.runCtx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.began = s.opts.Now()
	lead, err := s.firstCampaign(ctx)
	switch {
	case err == nil:
		return s.startLeading(ctx, lead)
	case ferry.ErrorCode(err) != ferry.ECONFLICT:
		return fmt.Errorf("take the lead of %s: %w", cfg.App, err)
	}
	if gaps := cfg.RedundancyGaps(); len(gaps) > 0 {
		return ferry.Wrap(err, ferry.ECONFLICT, "%s; a second server on this ledger would split the brain, and this configuration cannot stand by for it, so this server does not start "+
			"(stop the other, or wait for its lease to run out if it died on another machine). Several servers may share a ledger once: %s",
			ferry.ErrorMessage(err), strings.Join(gaps, "; "))
	}
	return s.startStandby(ctx, err)
}

// serve starts the HTTP server on the listener. It answers with whatever
// handler the server's role has set (s.root), and 503 before there is one.
func (s *Server) serve() {
	streams, stopStreams := context.WithCancel(context.Background())
	s.stopStreams = stopStreams
	s.http = &http.Server{
		Handler: endStreams(streams, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := s.root.Load()
			if h == nil {
				w.Header().Set("Retry-After", "1")
				writeError(w, ferry.Errorf(ferry.EUNAVAILABLE, "ferry is starting; try again in a moment"))
				return
			}
			(*h).ServeHTTP(w, r)
		})),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.goRun("http", func() error {
		if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
}

// startLeading makes this server the leader in lead's term: it writes
// through the ledger fenced by that term from now on, builds every part,
// answers HTTP with them (in place of the standby's parts, if it stood
// by), and starts the controller, the builder and the poller.
func (s *Server) startLeading(ctx context.Context, lead *leader.Lead) (err error) {
	cfg := s.cfg
	s.leadership = lead
	s.log.Info("leading", "term", lead.Term(), "holder", lead.Lease().Holder)
	fenced, err := s.raw.Fence(ctx, cfg.App, lead.Term())
	if err != nil {
		s.resign(s.raw)
		return fmt.Errorf("open ledger: %w", err)
	}
	// The one store this server writes (and keeps its lease) through, so
	// that on SQLite every write queues on one connection.
	lead.Via(fenced)
	s.ledger = fenced
	// The lease is renewed from now on: building the parts below can take
	// longer than a short TTL.
	runCtx, cancel := s.runCtx, s.cancel
	leadCtx, stopLead := context.WithCancel(context.WithoutCancel(ctx))
	s.stopLead, s.leadDone = stopLead, make(chan struct{})
	go func() {
		defer close(s.leadDone)
		if err := lead.Hold(leadCtx); err != nil {
			// Another server leads now, or may: the fence refuses this
			// one's writes from here on; stop acting.
			s.log.Error("lost the lead; builds, polls and deployments stop", "term", lead.Term(), "err", err)
			cancel()
			s.stop(fmt.Errorf("lost the lead: %w", err))
		}
	}()
	s.event(ctx, "leader.elected", fmt.Sprintf("%s leads in term %d", lead.Lease().Holder, lead.Term()), "")

	if cfg.RegistryEmbedded() {
		s.opts.Progress("starting the embedded registry on " + cfg.Registry.Listen)
		s.registry, err = registry.New(registry.Config{
			Dir: filepath.Join(cfg.DataDir, "registry"), Addr: cfg.Registry.Listen, Logger: s.log.With("part", "registry"),
		})
		if err != nil {
			return fmt.Errorf("embedded registry: %w", err)
		}
		if err := s.registry.Start(ctx); err != nil {
			return fmt.Errorf("start embedded registry: %w", err)
		}
	}
	if err := s.images(); err != nil {
		return err
	}
	integration, trial, err := s.integration()
	if err != nil {
		return err
	}
	s.builder, err = builder.New(builder.Config{
		App: cfg.App, Image: s.image, Source: s.repo.URL(),
		WorkDir: filepath.Join(cfg.DataDir, "work"), Dir: cfg.Build.Dir,
		Test: cfg.Build.Test, Timeout: cfg.Build.Timeout, Go: s.buildGo(), Command: cfg.Build.Command,
		PushAttempts: 8, Integration: integration, Trial: trial, BuilderID: builderID(s.opts.Version),
		Ledger: s.ledger, Git: s.repo, Registry: s.pub, Signer: s.signer, Verifier: s.verifier,
		Now: s.opts.Now, Logger: s.log.With("part", "builder"),
	})
	if err != nil {
		return err
	}
	if s.ctrl, err = s.controller(s.ledger); err != nil {
		return err
	}
	hooks, err := s.webhooks(s.ledger, s.onPush)
	if err != nil {
		return err
	}
	s.dora = s.doraReporter(s.ledger)
	root, err := s.handler(httpParts{
		ledger: s.ledger, ctrl: s.ctrl, builds: s, dora: s.dora, hooks: hooks, lead: lead,
	})
	if err != nil {
		return err
	}
	// From here on requests reach the leader's parts; the standby's, if
	// this server stood by, are let go once their requests are done.
	s.root.Store(&root)
	s.stopStandby()

	s.poller = &source.Poller{
		Repo: s.repo, Branches: cfg.Branches(), Interval: cfg.Source.Poll,
		OnHead: func(branch, sha string) {
			if !slices.Contains(cfg.BuildBranches(), branch) {
				// A gated environment's branch (release): pushes to it
				// are promotions or rollbacks, or refused.
				go s.ctrl.ReleaseHead(runCtx, branch, sha)
				return
			}
			if _, _, err := s.builder.Enqueue(runCtx, branch, sha, s.hooked.take(branch, sha), "ferry"); err != nil {
				s.log.Error("queue build", "branch", branch, "commit", sha, "err", err)
			}
			// A head built already (a reset to an older commit) is deployed
			// by convergence; a new one once its build succeeds.
			s.ctrl.BranchHead(runCtx, branch, sha)
		},
		OnError: s.fetchFailed,
	}
	notifier, err := s.notifier()
	if err != nil {
		cancel()
		return err
	}
	s.builder.OnSucceeded = func(b *ferry.Build) {
		if _, err := s.ctrl.BuildSucceeded(runCtx, b); err != nil {
			s.log.Error("queue deployment", "build", b.ID, "err", err)
		}
	}
	if err := s.ctrl.Start(runCtx); err != nil {
		cancel()
		return fmt.Errorf("start controller: %w", err)
	}
	s.goRun("controller", func() error { s.ctrl.Wait(); return nil })
	if notifier != nil {
		s.goRun("notifications", func() error { notifier.Run(runCtx); return nil })
	}
	s.goRun("builder", func() error { return s.builder.Run(runCtx) })
	s.goRun("poller", func() error { return s.poller.Run(runCtx) })
	s.goRun("queued webhooks", func() error { s.takeQueuedPushes(runCtx); return nil })
	s.opts.Progress("serving on http://" + s.Addr())
	return nil
}

// images makes the publisher, the signer and verifier and the git clone:
// the parts that do not depend on the ledger, the same for a standby and a
// leader. With the embedded registry, that registry must run already.
func (s *Server) images() (err error) {
	if s.pub != nil {
		return nil
	}
	cfg := s.cfg
	s.image = cfg.Registry.Image
	// The publisher retries briefly inside one attempt; the push step's
	// attempts (each logged) cover longer outages.
	pubOpts := []oci.Option{oci.WithRetry(oci.Retry{Initial: 250 * time.Millisecond, Max: 2 * time.Second, Deadline: 5 * time.Second})}
	if s.opts.Transport != nil {
		pubOpts = append(pubOpts, oci.WithTransport(s.opts.Transport))
	}
	if cfg.Registry.Insecure {
		pubOpts = append(pubOpts, oci.WithInsecure())
	}
	if s.registry != nil {
		s.image = s.registry.Host() + "/" + cfg.App
		pubOpts = append(pubOpts, oci.WithBasicAuth(s.registry.Credentials()))
	}
	if s.pub, err = oci.NewPublisher(s.image, pubOpts...); err != nil {
		return fmt.Errorf("registry %s: %w", s.image, err)
	}
	key, err := SigningKey(cfg, s.opts.Getenv, s.opts.ReadFile)
	if err != nil {
		return err
	}
	s.signer, s.verifier = cosign.NewSigner(key, s.pub), key.NewVerifier(s.pub)
	keyPath := cfg.Signing.Key
	if keyPath == "" {
		keyPath = filepath.Join(cfg.DataDir, cosign.PrivateKeyFile)
	}
	s.log.Info("signing images; every rollout verifies them", "key", keyPath, "public_key", filepath.Join(cfg.DataDir, cosign.PublicKeyFile))
	s.repo = source.Open(cfg.Source.Repo, filepath.Join(cfg.DataDir, "git"), s.log.With("part", "source"))
	return nil
}

func (s *Server) buildGo() *builder.GoConfig {
	g := s.cfg.Build.Go
	if g == nil {
		return nil
	}
	return &builder.GoConfig{Main: g.Main, Ldflags: g.Ldflags, Env: g.Env}
}

// controller makes the controller over the configured environments,
// reading and writing through store.
func (s *Server) controller(store ledger.Store) (*controller.Controller, error) {
	envs, err := s.environments()
	if err != nil {
		return nil, err
	}
	ctrl, err := controller.New(controller.Config{
		App: s.cfg.App, Image: s.image, Envs: envs,
		Ledger: store, Locks: store, Canaries: store, Registry: s.pub, Git: s.repo, Verifier: s.verifier,
		Now: s.opts.Now, Logger: s.log.With("part", "controller"),
	})
	if err != nil {
		for _, e := range envs {
			e.Runtime.Close(context.Background())
		}
		return nil, err
	}
	return ctrl, nil
}

func (s *Server) fetchFailed(err error, attempt int, next time.Duration) {
	s.log.Warn("fetch failed; retrying", "repo", s.repo.URL(), "attempt", attempt, "retry_in", next, "err", err)
	s.event(s.runCtx, "source.error", fmt.Sprintf("fetch failed (attempt %d), retrying in %s", attempt, next), err.Error())
}

// stop ends Run with why, once.
func (s *Server) stop(why error) {
	s.stopOnce.Do(func() {
		s.stopErr = why
		close(s.stopped)
	})
}

// endStreams gives the requests that follow a build's log (the only
// long-lived ones) a context that also ends when streams does, so that a
// follower is let go at shutdown instead of waiting for its build.
func endStreams(streams context.Context, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("follow") {
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			stop := context.AfterFunc(streams, cancel)
			defer stop()
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) goRun(name string, fn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("part stopped", "part", name, "err", err)
		}
	}()
}

// Addr is the HTTP server's address (host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the HTTP server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// ImageRepository is where images are pushed.
func (s *Server) ImageRepository() string { return s.image }

// Ledger gives tests and the CLI's local commands read access: the
// leader's fenced store, or a standby's unfenced one.
func (s *Server) Ledger() ledger.Store {
	if s.ledger != nil {
		return s.ledger
	}
	return s.raw
}

// Run starts the server and blocks until ctx ends, then shuts down. It
// returns early, with an error, when the server lost the lead or could
// not take it over.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	return s.Wait(ctx)
}

// Wait serves a started server until ctx ends or the server stops on its
// own (a lost lead it cannot stand by after), then closes it.
func (s *Server) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return s.Close()
	case <-s.stopped:
		return errors.Join(s.stopErr, s.Close())
	}
}

// Close stops the HTTP server (letting requests finish), the poller and the
// builder (an interrupted build resumes at the next start), the registry
// and the ledger.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.http != nil {
			s.stopStreams()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.http.Shutdown(ctx); err != nil {
				// Requests still running must not outlive the ledger.
				errs = append(errs, fmt.Errorf("stop http server: %w", err), s.http.Close())
			}
			cancel()
		} else if s.ln != nil {
			errs = append(errs, s.ln.Close())
		}
		if s.cancel != nil {
			s.cancel()
		}
		s.stopStandby()
		s.wg.Wait()
		if s.ctrl != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			errs = append(errs, s.ctrl.Close(ctx))
			cancel()
		}
		if s.registry != nil {
			errs = append(errs, s.registry.Close())
		}
		// The lead is given up once nothing of this server writes.
		if s.stopLead != nil {
			s.stopLead()
			<-s.leadDone
		} else if s.leadership != nil && s.ledger != nil {
			errs = append(errs, s.resign(s.ledger))
		} else if s.leadership != nil && s.raw != nil {
			errs = append(errs, s.resign(s.raw))
		}
		if s.ledger != nil {
			errs = append(errs, s.ledger.Close())
		}
		if s.raw != nil {
			errs = append(errs, s.raw.Close())
		}
		if s.dirLock != nil {
			errs = append(errs, unlockDataDir(s.dirLock))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Trigger implements api.Builds: fetch, then queue branch's head (or
// commit, which must be on branch). When the head is built already, it is
// deployed to the environments the branch feeds that do not run it.
func (s *Server) Trigger(ctx context.Context, branch, commit, actor string) (*ferry.Build, bool, error) {
	if !slices.Contains(s.cfg.BuildBranches(), branch) {
		return nil, false, ferry.Errorf(ferry.EINVALID, "branch %q is not built by ferry (built branches: %v)", branch, s.cfg.BuildBranches())
	}
	if err := s.repo.Fetch(ctx); err != nil {
		return nil, false, ferry.Wrap(err, ferry.EUNAVAILABLE, "cannot fetch %s now; try again", s.repo.URL())
	}
	head, err := s.repo.Head(ctx, branch)
	if err != nil {
		return nil, false, err
	}
	if commit == "" {
		commit = head
	} else {
		if !ferry.ValidCommit(commit) {
			return nil, false, ferry.Errorf(ferry.EINVALID, "commit %q is not a full 40-hex commit id", commit)
		}
		on, err := s.repo.IsAncestor(ctx, commit, head)
		if err != nil {
			return nil, false, err
		}
		if !on {
			return nil, false, ferry.Errorf(ferry.EINVALID, "commit %s is not on branch %s", ferry.ShortSHA(commit), branch)
		}
	}
	b, queued, err := s.builder.Enqueue(ctx, branch, commit, "manual", actor)
	if err != nil || queued || b.Commit != head || b.State != ferry.BuildSucceeded {
		return b, queued, err
	}
	// The head is built: the operator's request deploys it where it does
	// not run, also after a failed rollout convergence does not retry.
	if _, err := s.ctrl.Deploy(ctx, b, actor); err != nil {
		return nil, false, err
	}
	return b, false, nil
}

// Cancel implements api.Builds.
func (s *Server) Cancel(ctx context.Context, id int64, actor, reason string) error {
	return s.builder.Cancel(ctx, id, actor, reason)
}

// Changed implements api.Builds.
func (s *Server) Changed() <-chan struct{} { return s.builder.Changed() }

func (s *Server) event(ctx context.Context, kind, msg, reason string) {
	e := &ferry.Event{Time: s.opts.Now(), Actor: "ferry", Kind: kind, App: s.cfg.App, Message: msg, Reason: reason}
	if err := s.ledger.AddEvent(ctx, e); err != nil {
		s.log.Error("record event", "kind", kind, "err", err)
	}
}
