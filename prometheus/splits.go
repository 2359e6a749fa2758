package prometheus

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
)

// Splits reads the figures of whichever split a runtime runs: the
// runtime's wrapper calls Begin after each Split and End after EndSplit,
// and the controller reads Figures. A split of another canary or stable
// version begins a new Source, counted from then; another weight of the
// same split keeps the one it has.
type Splits struct {
	Prometheus ferry.CanaryPrometheus
	Env, App   string
	// Versions maps a split's tracks to their pods' version labels
	// (kube.Versions).
	Versions func(ferry.Split) map[string]string
	// Now is the clock (time.Now when nil); Client as in Config.
	Now    func() time.Time
	Client *http.Client

	mu  sync.Mutex
	src *Source
	key string // the split src reads: canary and stable digests
}

// Check reports whether the server's URL and the queries make a Source,
// before any split runs: a configuration ferry cannot query with is an
// error when ferry starts, not at a release's first step.
func (p *Splits) Check() error {
	_, err := New(Config{Prometheus: p.Prometheus, Env: p.Env, App: p.App, Now: p.Now, Client: p.Client,
		Versions: map[string]string{ferry.TrackCanary: "0", ferry.TrackBaseline: "0"}})
	return err
}

// Begin makes s the split whose figures Figures reads.
func (p *Splits) Begin(s ferry.Split) error {
	key := s.Canary.Digest + " " + s.Stable.Digest
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.src != nil && p.key == key {
		return nil
	}
	src, err := New(Config{Prometheus: p.Prometheus, Env: p.Env, App: p.App, Versions: p.Versions(s), Now: p.Now, Client: p.Client})
	if err != nil {
		return err
	}
	p.src, p.key = src, key
	return nil
}

// End forgets the split: Figures is empty until the next Begin.
func (p *Splits) End() {
	p.mu.Lock()
	p.src, p.key = nil, ""
	p.mu.Unlock()
}

// Figures returns each track's figures since the split began, or an
// empty map when none runs.
func (p *Splits) Figures(ctx context.Context) (map[string]analysis.Figures, error) {
	p.mu.Lock()
	src := p.src
	p.mu.Unlock()
	if src == nil {
		return map[string]analysis.Figures{}, nil
	}
	return src.Figures(ctx)
}
