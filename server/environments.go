package server

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/node"
	"github.com/ferryhq/ferry/prometheus"
	"github.com/ferryhq/ferry/runtime/kube"
	"github.com/ferryhq/ferry/runtime/local"
)

// environments builds the controller's view of each configured
// environment, with its runtime and resolved variables.
func (s *Server) environments() (envs []controller.Env, err error) {
	defer func() {
		if err != nil { // release the targets already made
			for _, e := range envs {
				e.Runtime.Close(context.Background())
			}
		}
	}()
	for _, e := range s.cfg.Environments {
		vars, err := s.vars("environments."+e.Name+".env", e.Env)
		if err != nil {
			return nil, err
		}
		env := controller.Env{Environment: e.Environment, Vars: vars}
		switch {
		case e.Runtime.Local != nil && s.opts.Node != nil:
			nc, err := s.nodeClient()
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", e.Name, err)
			}
			l := e.Runtime.Local
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			t, err := nc.Open(ctx, node.EnvConfig{
				Env: e.Name, Listen: l.Listen, Readiness: l.Readiness, PortEnv: l.PortEnv,
				Args: l.Args, Resources: l.Resources,
			})
			cancel()
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", e.Name, err)
			}
			env.Runtime = t
			if env.URL == "" {
				env.URL = "http://" + t.Addr()
			}
		case e.Runtime.Local != nil:
			l := e.Runtime.Local
			t, err := local.New(local.Config{
				Env:       e.Name,
				DataDir:   s.cfg.DataDir,
				Listen:    l.Listen,
				Readiness: l.Readiness,
				PortEnv:   l.PortEnv,
				Args:      renderArgs(e.Name, l),
				Resources: l.Resources,
				Images:    s.pub,
				Logger:    s.log.With("part", "local", "env", e.Name),
				Now:       s.opts.Now,
			})
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", e.Name, err)
			}
			env.Runtime = t
			if env.URL == "" {
				env.URL = "http://" + t.Addr()
			}
		case e.Runtime.Kubernetes != nil:
			k := e.Runtime.Kubernetes
			t, err := kube.New(kube.Config{
				Env:        e.Name,
				Namespace:  k.Namespace,
				Deployment: cmp.Or(k.Deployment, s.cfg.App),
				Container:  k.Container,
				HPA:        k.HPA,
				Kubeconfig: k.Kubeconfig,
				Context:    k.Context,
				Logger:     s.log.With("part", "kube", "env", e.Name),
				Now:        s.opts.Now,
				Poll:       s.opts.KubePoll,
			})
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", e.Name, err)
			}
			env.Runtime = t
			if c := e.Canary; c != nil && c.Analysis.Prometheus != nil {
				figs := &prometheus.Splits{
					Prometheus: *c.Analysis.Prometheus, Env: e.Name, App: s.cfg.App, Versions: kube.Versions, Now: s.opts.Now,
				}
				if err := figs.Check(); err != nil {
					t.Close(context.Background())
					return nil, fmt.Errorf("environment %s: strategy.canary.analysis.prometheus: %w", e.Name, err)
				}
				env.Runtime = &kubeCanary{Runtime: t, figs: figs}
			}
		default:
			return nil, fmt.Errorf("environment %s: no runtime configured", e.Name)
		}
		envs = append(envs, env)
	}
	return envs, nil
}

// nodeClient returns the client of the data directory's node, starting
// the node first when none answers, and from then on keeps it running (a watch on the node ends when it goes, and it is started again)
// until the server stops.
func (s *Server) nodeClient() (*node.Client, error) {
	if s.node != nil {
		return s.node, nil
	}
	nc := node.NewClient(node.ClientConfig{DataDir: s.cfg.DataDir, Images: s.pub, Logger: s.log.With("part", "node-client")})
	sc := *s.opts.Node
	ctx, cancel := context.WithTimeout(s.runCtx, time.Minute)
	defer cancel()
	started, err := nc.Ensure(ctx, sc)
	if err != nil {
		return nil, err
	}
	h, err := nc.Health(ctx)
	if err != nil {
		return nil, err
	}
	s.log.Info("node", "pid", h.PID, "version", h.Version, "started", started, "envs", h.Envs, "log", node.LogPath(s.cfg.DataDir))
	s.node = nc
	s.goRun("node", func() error {
		defer nc.Close()
		for {
			// Returns at once when the node stops or dies.
			nc.Watch(s.runCtx)
			select {
			case <-s.runCtx.Done():
				return nil
			case <-time.After(50 * time.Millisecond):
			}
			if started, err := nc.Ensure(s.runCtx, sc); err != nil {
				s.log.Error("node is gone and could not be started again", "err", err)
				select {
				case <-s.runCtx.Done():
					return nil
				case <-time.After(time.Second):
				}
			} else if started {
				s.log.Warn("node was gone: started it again; it restores its environments by itself")
			}
		}
	})
	return nc, nil
}

// vars resolves the variables at field (environments.dev.env,
// build.integration.env); secrets are read now, from the environment or
// files, and never logged.
func (s *Server) vars(field string, vars []config.EnvVar) ([]ferry.Var, error) {
	var out []ferry.Var
	for _, v := range vars {
		value := v.Value
		if v.Secret != nil {
			var err error
			if value, err = v.Secret.Resolve(s.opts.Getenv, s.opts.ReadFile); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", field, v.Name, err)
			}
		}
		out = append(out, ferry.Var{Name: v.Name, Value: value})
	}
	return out, nil
}

func renderArgs(env string, l *config.Local) func(replica int, host string, port int) ([]string, error) {
	if len(l.Args) == 0 {
		return nil
	}
	return func(replica int, host string, port int) ([]string, error) {
		return l.RenderArgs(config.ReplicaData{Env: env, Replica: replica, Host: host, Port: port, Addr: fmt.Sprintf("%s:%d", host, port)})
	}
}
