package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/demo"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/parts"
)

func newDemoCmd(sp serverParts) *cobra.Command {
	var (
		dir      string
		appSrc   string
		ferry    string
		ports    = demo.DefaultPorts
		stages   []string
		approval bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run ferry on embedded defaults: birthday-app from its own git repository to a serving dev",
		Long: `Run ferry on embedded defaults. The demo directory gets a bare git repository of
birthday-app (with history on master), a ferry.yaml with dev (from master) and prod
(from release), the embedded registry, the ledger and the local runtime. ferry builds
master and rolls it out to dev, then keeps serving: push to master and dev follows.
Ctrl-C stops everything; a second run on the same directory resumes where it was.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&dir, "dir", "ferry-demo", "the demo's working directory")
	cmd.Flags().StringVar(&appSrc, "app-src", "examples/birthday-app", "birthday-app's sources, imported into the demo repository on the first run")
	cmd.Flags().StringVar(&ferry, "ferry-binary", "", "ferry's executable for the repository's pre-receive hook (default: this one)")
	_ = cmd.Flags().MarkHidden("ferry-binary") // for tests, whose executable is not ferry
	cmd.Flags().IntVar(&ports.API, "api-port", ports.API, "ferry's API port on 127.0.0.1")
	cmd.Flags().IntVar(&ports.Registry, "registry-port", ports.Registry, "the embedded registry's port on 127.0.0.1")
	cmd.Flags().IntVar(&ports.Dev, "dev-port", ports.Dev, "dev's load balancer port on 127.0.0.1")
	cmd.Flags().IntVar(&ports.Prod, "prod-port", ports.Prod, "prod's load balancer port on 127.0.0.1")
	cmd.Flags().StringSliceVar(&stages, "stages", demo.DefaultStages, "the chain of environments a new ferry.yaml gets: the first follows master, each next is promoted from the one before, the last is released (stages between listen on the ports after --prod-port)")
	cmd.Flags().BoolVar(&approval, "approval", false, "a new ferry.yaml makes every release of the last stage wait for a second person's approval (ferry approve ID, with another releaser's token)")
	cmd.RunE = sp.run(func(p parts.Parts, cmd *cobra.Command, _ []string) error {
		out := cmd.OutOrStdout()
		say := func(s string) { fmt.Fprintln(out, "▸", s) }
		ctx := cmd.Context()
		if err := demo.CheckStages(stages); err != nil {
			return usageErrorf("%v", err)
		}
		layout, err := demo.PrepareWith(ctx, dir, appSrc, ports, demo.Options{Stages: stages, Approval: approval}, say)
		if err != nil {
			return err
		}
		cfg, err := loadConfig(cmd, layout.Config)
		if err != nil {
			return err
		}
		// On a resumed demo ferry.yaml decides the addresses, not the flags.
		for _, w := range ignoredPorts(cmd, cfg, ports) {
			say(w)
		}
		if err := layout.InstallHook(ferry, cfg.ServerURL()); err != nil {
			return err
		}
		logFile, err := os.OpenFile(filepath.Join(layout.Dir, "ferry.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer logFile.Close()
		logger := slog.New(slog.NewTextHandler(logFile, nil))
		srv, err := p.NewServer(cfg, parts.ServerOptions{Version: version, Logger: logger, Progress: say})
		if err != nil {
			return err
		}
		if err := srv.Start(ctx); err != nil {
			return err
		}
		defer func() {
			say("stopping (replicas drain, then stop)")
			srv.Close()
		}()
		credsPath, err := credentialsPath()
		if err != nil {
			return err
		}
		tok, created, err := ensureDemoToken(ctx, srv.Ledger(), cfg.App, srv.URL(), credsPath, time.Now)
		if err != nil {
			return fmt.Errorf("the demo's admin token: %w", err)
		}
		if created {
			say(fmt.Sprintf("made the %s token %s and stored it for %s in %s: the CLI finds it there", tok.Role, tok.Name, srv.URL(), credsPath))
		} else {
			say(fmt.Sprintf("using the %s token %s stored for %s in %s", tok.Role, tok.Name, srv.URL(), credsPath))
		}
		curPath, err := currentServerPath()
		if err != nil {
			return err
		}
		if err := writeCurrentServer(curPath, currentServer{Server: srv.URL(), Credentials: credsPath, WrittenBy: "ferry demo", WrittenAt: time.Now().UTC()}); err != nil {
			return err
		}
		say(fmt.Sprintf("%s is the CLI's current server (%s): later commands need no --server", srv.URL(), curPath))
		say("waiting for the first build of master and its rollout to dev (log: " + logFile.Name() + ")")
		if err := watchFirstRollout(ctx, out, srv, cfg.App); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		printNextSteps(out, layout, servedAddrs(ctx, cfg, srv.URL(), srv.ImageRepository()))
		trimExePages(ctx, logger)
		<-ctx.Done()
		return nil
	})
	return cmd
}

// watchFirstRollout prints the newest master build's steps and dev's
// deployment as they progress, until dev serves.
func watchFirstRollout(ctx context.Context, w io.Writer, srv parts.Server, app string) error {
	l := srv.Ledger()
	seen := map[string]bool{}
	say := func(key, msg string) {
		if !seen[key] {
			seen[key] = true
			fmt.Fprintln(w, "  ", msg)
		}
	}
	for {
		builds, err := l.Builds(ctx, ledger.BuildFilter{App: app, Branch: "master", Limit: 1})
		if err != nil {
			return err
		}
		if len(builds) > 0 {
			b, err := l.Build(ctx, builds[0].ID)
			if err != nil {
				return err
			}
			for _, s := range b.Steps {
				if s.State != ferry.StepPending {
					say(fmt.Sprintf("%d/%s/%s", b.ID, s.Name, s.State), fmt.Sprintf("build %d (%s) %s %s %s", b.ID, b.ShortCommit(), stateMark(s.State), s.Name, s.State))
				}
			}
			if b.State == ferry.BuildFailed {
				return fmt.Errorf("build %d failed: %s (see: ferry logs build %d)", b.ID, b.Reason, b.ID)
			}
		}
		cur, err := l.Current(ctx, app, "dev")
		if err == nil {
			say("dev", fmt.Sprintf("dev runs %s (%s) with %d replicas", cur.Commit, shortDigest(cur.Digest), cur.Replicas))
			return nil
		}
		ds, err := l.Deployments(ctx, ledger.DeploymentFilter{App: app, Env: "dev", Limit: 1})
		if err == nil && len(ds) > 0 {
			d := ds[0]
			say(fmt.Sprintf("d%d/%s", d.ID, d.State), fmt.Sprintf("deployment %d to dev: %s", d.ID, d.State))
			if d.State == ferry.DeploymentFailed {
				return fmt.Errorf("deployment %d to dev failed: %s", d.ID, d.Error)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// demoAddrs are the addresses a running demo serves.
type demoAddrs struct {
	API   string // ferry's server URL
	Image string // the image repository in the embedded registry
	Envs  []envAddr
}

type envAddr struct {
	Name, URL string
	Gated     bool // changed only by a release
}

// servedAddrs are the addresses the demo serves: the server's own, and
// each environment's URL as the server reports it (GET /api/v1/status:
// the balancer's real port), else as ferry.yaml says.
func servedAddrs(ctx context.Context, cfg *config.Config, apiURL, image string) demoAddrs {
	a := demoAddrs{API: apiURL, Image: image}
	urls := map[string]string{}
	if c, err := client.New(apiURL); err == nil {
		c.Token, _ = findToken("", c.Base)
		if st, err := c.Status(ctx); err == nil {
			for _, e := range st.Environments {
				urls[e.Name] = e.URL
			}
		}
	}
	for _, e := range cfg.Environments {
		a.Envs = append(a.Envs, envAddr{Name: e.Name, URL: cmp.Or(urls[e.Name], e.URL), Gated: e.Gated()})
	}
	return a
}

// ignoredPorts warns about port flags given on a resumed demo whose
// ferry.yaml says otherwise: the file decides, as the printed addresses
// show.
func ignoredPorts(cmd *cobra.Command, cfg *config.Config, p demo.Ports) []string {
	var out []string
	check := func(flag string, port int, field, listen string) {
		if !cmd.Flags().Changed(flag) {
			return
		}
		if _, got, err := net.SplitHostPort(listen); err == nil && got != strconv.Itoa(port) {
			out = append(out, fmt.Sprintf("--%s %d is ignored: %s keeps %s: %s (edit it to change the port)", flag, port, cfg.Path, field, listen))
		}
	}
	check("api-port", p.API, "server.listen", cfg.Server.Listen)
	check("registry-port", p.Registry, "registry.listen", cfg.Registry.Listen)
	for _, e := range cfg.Environments {
		if e.Runtime.Local == nil {
			continue
		}
		switch e.Name {
		case "dev":
			check("dev-port", p.Dev, "environments.dev.runtime.local.listen", e.Runtime.Local.Listen)
		case "prod":
			check("prod-port", p.Prod, "environments.prod.runtime.local.listen", e.Runtime.Local.Listen)
		}
	}
	return out
}

func printNextSteps(w io.Writer, l *demo.Layout, a demoAddrs) {
	fmt.Fprintln(w, "\nferry is running.")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range a.Envs {
		switch {
		case e.Gated:
			fmt.Fprintf(tw, "  %s\t%s\t(empty until a release)\n", e.Name, dash(e.URL))
		case e.URL != "":
			fmt.Fprintf(tw, "  %s\t%s\t(curl %s/version)\n", e.Name, e.URL, e.URL)
		default:
			fmt.Fprintf(tw, "  %s\t-\n", e.Name)
		}
	}
	fmt.Fprintf(tw, "  dashboard\t%s/\t(sign in with a token: go run ./cmd/ferry token create --name me --role releaser)\n", a.API)
	fmt.Fprintf(tw, "  API\t%s\t(the CLI's current server from now on; /metrics for Prometheus)\n", a.API)
	fmt.Fprintf(tw, "  registry\t%s\n", a.Image)
	tw.Flush()
	fmt.Fprintf(w, `
Next steps, in another terminal:
  git clone %s birthday-app && cd birthday-app
  # change something, then:
  git commit -am "my change" && git push origin master
  go run ./cmd/ferry status          # from ferry's repository: what runs where
  go run ./cmd/ferry builds          # what was built from what
  go run ./cmd/ferry logs dev -f     # dev's replicas
  go run ./cmd/ferry scale dev 4
  go run ./cmd/ferry promote         # release what dev runs to prod (RC… tag, live)
  go run ./cmd/ferry rollback prod   # back to the previous release
  go run ./cmd/ferry dora            # deployment frequency, lead time, failure rate, time to restore

Ctrl-C stops everything; run the demo again to resume.
`, l.Repo)
}
