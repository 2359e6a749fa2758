package server

import (
	"context"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/prometheus"
	"github.com/ferryhq/ferry/runtime/kube"
)

// kubeCanary is a Kubernetes environment with a canary: the kube
// runtime's split (canary and baseline Deployments), judged on the
// figures Prometheus has of the versions each split runs
// (strategy.canary.analysis.prometheus). Every other method is the
// runtime's own.
type kubeCanary struct {
	*kube.Runtime
	figs *prometheus.Splits
}

func (k *kubeCanary) Split(ctx context.Context, s ferry.Split, progress func(ferry.Progress)) error {
	if err := k.Runtime.Split(ctx, s, progress); err != nil {
		return err
	}
	return k.figs.Begin(s)
}

func (k *kubeCanary) EndSplit(ctx context.Context) error {
	k.figs.End()
	return k.Runtime.EndSplit(ctx)
}

func (k *kubeCanary) Figures(ctx context.Context) (map[string]analysis.Figures, error) {
	return k.figs.Figures(ctx)
}
