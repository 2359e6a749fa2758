package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/builder"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/runtime/local"
)

// trial runs a new image for the builder's integration step, like a
// replica of the first local environment its branch drives: same port
// variable, arguments, readiness path and rollout bounds, but a name of its
// own (trial_<build>, which no configured environment can take), so its own
// data directory (a SQLite database of its own), a free loopback port, and
// the integration's variables instead of the environment's.
type trial struct {
	s    *Server
	like *config.Environment
	vars []ferry.Var
}

var _ builder.Trial = trial{}

// integration returns the builder's integration settings and trial, or
// nils when the configuration has none.
func (s *Server) integration() (*builder.Integration, builder.Trial, error) {
	in := s.cfg.Build.Integration
	if in == nil {
		return nil, nil, nil
	}
	like := s.trialTemplate()
	if like == nil {
		return nil, nil, fmt.Errorf("build.integration: no environment with a local runtime follows a built branch, so there is nothing to run the image like")
	}
	vars, err := s.vars("build.integration.env", in.Env)
	if err != nil {
		return nil, nil, err
	}
	return &builder.Integration{Checks: in.Checks, Command: in.Command, Timeout: in.Timeout},
		trial{s: s, like: like, vars: vars}, nil
}

// trialTemplate is the first environment with a local runtime that a
// built branch drives (dev).
func (s *Server) trialTemplate() *config.Environment {
	for _, e := range s.cfg.Environments {
		if e.Runtime.Local != nil && e.Branch != "" && !e.Gated() {
			return e
		}
	}
	return nil
}

func (t trial) Start(ctx context.Context, build int64, commit, digest string, log io.Writer) (string, func(failed bool), error) {
	name := "trial_" + strconv.FormatInt(build, 10)
	l := t.like.Runtime.Local
	envDir := filepath.Join(t.s.cfg.DataDir, "envs", name)
	os.RemoveAll(envDir) // left by an interrupted run
	rt, err := local.New(local.Config{
		Env:       name,
		DataDir:   t.s.cfg.DataDir,
		Listen:    "127.0.0.1:0",
		Readiness: l.Readiness,
		PortEnv:   l.PortEnv,
		Args:      renderArgs(name, l),
		Resources: l.Resources,
		// Every trial runs as one uid of its own, not one per build.
		Identity: "trial",
		Images:   t.s.pub,
		Logger:   t.s.log.With("part", "trial", "build", build),
		Now:      t.s.opts.Now,
	})
	if err != nil {
		return "", nil, err
	}
	stop := func(failed bool) {
		ctx := context.WithoutCancel(ctx)
		if failed {
			if err := rt.Logs(ctx, log, 40, false); err != nil {
				fmt.Fprintf(log, "(no output: %v)\n", err)
			}
		}
		if err := rt.Close(ctx); err != nil {
			t.s.log.Warn("stop trial", "build", build, "err", err)
		}
		if err := os.RemoveAll(envDir); err != nil {
			t.s.log.Warn("remove trial directory", "dir", envDir, "err", err)
		}
	}
	spec := ferry.Spec{
		Env: name, Commit: commit, Image: t.s.image, Digest: digest, Replicas: 1,
		Vars: t.vars, Rollout: t.like.Rollout,
	}
	err = rt.Apply(ctx, spec, func(p ferry.Progress) { fmt.Fprintln(log, p.Message) })
	if err != nil {
		stop(true)
		return "", nil, err
	}
	return "http://" + rt.Addr(), stop, nil
}
