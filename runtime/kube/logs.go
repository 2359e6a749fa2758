package kube

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/replicalog"
	corev1 "k8s.io/api/core/v1"
)

// logConnect bounds the wait for the cluster to start serving a pod's
// log: the API server reaches the node's kubelet, which may not answer.
const logConnect = 10 * time.Second

// Logs writes the last tail lines of the container's log in each pod of
// the Deployment and of a running split's canary and baseline (see
// Status), every line prefixed with the pod's name
// ("app-7d9f-x2kq | …"): pod after pod, or, with follow, all at once until
// ctx ends. Following covers the pods that run when Logs is called. When
// the cluster does not serve a pod's log (no kubelet to reach, as with
// kwok, or a kubelet that does not answer within 10 s), Logs writes what
// the other pods serve and returns an unavailable error naming the pod.
func (t *Runtime) Logs(ctx context.Context, w io.Writer, tail int, follow bool) error {
	if err := t.open("logs of"); err != nil {
		return err
	}
	d, err := t.deployment(ctx)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", t.cfg.Env, err)
	}
	ci, err := t.container(d)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", t.cfg.Env, err)
	}
	pods, err := t.currentPods(ctx, d)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", t.cfg.Env, err)
	}
	split, err := t.splitPods(ctx, d)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", t.cfg.Env, err)
	}
	pods = append(pods, split...)
	opts := &corev1.PodLogOptions{
		Container: d.Spec.Template.Spec.Containers[ci].Name,
		TailLines: new(int64(max(tail, 0))),
		Follow:    follow,
	}
	out := replicalog.New(w)
	errs := make([]error, len(pods))
	if follow {
		var wg sync.WaitGroup
		for i, p := range pods {
			wg.Go(func() { errs[i] = t.podLog(ctx, out, p.Name, opts) })
		}
		wg.Wait()
	} else {
		for i, p := range pods {
			errs[i] = t.podLog(ctx, out, p.Name, opts)
		}
	}
	if err := out.Err(); err != nil {
		return err
	}
	if follow && ctx.Err() != nil {
		return nil
	}
	return joinLogErrors(errs)
}

// podLog copies one pod's log to out.
func (t *Runtime) podLog(ctx context.Context, out *replicalog.Writer, pod string, opts *corev1.PodLogOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(logConnect, cancel)
	rc, err := t.api.podLogs(t.cfg.Namespace, pod, opts).Stream(ctx)
	connected := timer.Stop()
	if err != nil {
		if !connected {
			err = fmt.Errorf("no answer within %s", logConnect)
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
		return ferry.Errorf(ferry.EUNAVAILABLE, "the cluster did not serve logs for pod %s: %s", pod, apiMessage(err))
	}
	defer rc.Close()
	return copyLines(ctx, out, pod, rc)
}

// copyLines writes every line read from r to out, prefixed with pod,
// until r ends or ctx does.
func copyLines(ctx context.Context, out *replicalog.Writer, pod string, r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if werr := out.Lines(pod, strings.TrimSuffix(line, "\n")); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err != nil && ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return ferry.Wrap(err, ferry.EUNAVAILABLE, "log of pod %s broke off", pod)
		}
	}
}

// joinLogErrors reduces the pods' errors to one: the first, noting how
// many other pods failed too.
func joinLogErrors(errs []error) error {
	var first error
	n := 0
	for _, err := range errs {
		if err == nil {
			continue
		}
		if first == nil {
			first = err
		}
		n++
	}
	if n <= 1 {
		return first
	}
	if e, ok := errors.AsType[*ferry.Error](first); ok {
		return ferry.Errorf(e.Code, "%s (and %d more pods)", e.Message, n-1)
	}
	return fmt.Errorf("%w (and %d more pods)", first, n-1)
}
