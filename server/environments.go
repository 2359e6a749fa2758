package server

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/runtime/kube"
	"github.com/ferryhq/ferry/runtime/local"
)

// environments builds the controller's view of each configured
// environment, with its runtime target and resolved variables.
func (s *Server) environments() (envs []controller.Env, err error) {
	defer func() {
		if err != nil { // release the targets already made
			for _, e := range envs {
				e.Target.Close(context.Background())
			}
		}
	}()
	for _, e := range s.cfg.Environments {
		vars, err := s.vars(e)
		if err != nil {
			return nil, err
		}
		env := controller.Env{
			Name: e.Name, Branch: e.Branch, From: e.From, Tags: e.Tags, Vars: vars, URL: e.URL,
			Rollout: controller.Rollout{
				MaxSurge: e.Rollout.MaxSurge, MaxUnavailable: e.Rollout.MaxUnavailable,
				ReadyTimeout: e.Rollout.ReadyTimeout, Grace: e.Rollout.Grace,
			},
		}
		if e.From != "" {
			env.Gated = &controller.Gated{Soak: e.Soak, Mainline: s.mainline(e), ReleaseTag: releaseTag(e)}
		}
		for _, c := range e.Verify {
			env.Verify = append(env.Verify, controller.Check{Method: c.Method, Path: c.Path, Expect: c.Expect, Contains: c.Contains, Timeout: c.Timeout})
		}
		switch {
		case e.Runtime.Local != nil:
			l := e.Runtime.Local
			env.Replicas = l.Replicas
			t, err := local.New(local.Config{
				Env:       e.Name,
				DataDir:   s.cfg.DataDir,
				Listen:    l.Listen,
				Readiness: l.Readiness,
				PortEnv:   l.PortEnv,
				Args:      renderArgs(e.Name, l),
				Images:    s.pub,
				Logger:    s.log.With("part", "local", "env", e.Name),
				Now:       s.opts.Now,
			})
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", e.Name, err)
			}
			env.Target = t
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
			env.Target = t
		default:
			return nil, fmt.Errorf("environment %s: no runtime configured", e.Name)
		}
		envs = append(envs, env)
	}
	return envs, nil
}

// mainline is the branch of the root of e's upstream chain: only its
// history is released.
func (s *Server) mainline(e *config.Environment) string {
	for e.From != "" {
		up, ok := s.cfg.Env(e.From)
		if !ok {
			break
		}
		e = up
	}
	return e.Branch
}

func releaseTag(e *config.Environment) func(time.Time) (string, error) {
	return func(t time.Time) (string, error) {
		if e.ReleaseTag == "" {
			return "RC" + t.UTC().Format("20060102_1504"), nil
		}
		return e.RenderReleaseTag(config.TemplateData{Time: t})
	}
}

// vars resolves an environment's variables; secrets are read now, from the
// environment or files, and never logged.
func (s *Server) vars(e *config.Environment) ([]controller.Var, error) {
	var out []controller.Var
	for _, v := range e.Env {
		value := v.Value
		if v.Secret != nil {
			var err error
			if value, err = v.Secret.Resolve(s.opts.Getenv, s.opts.ReadFile); err != nil {
				return nil, fmt.Errorf("environments.%s.env.%s: %w", e.Name, v.Name, err)
			}
		}
		out = append(out, controller.Var{Name: v.Name, Value: value})
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
