// Package metrics exposes ferry's state to Prometheus. Its Collector
// computes every series at scrape time from the ledger (and, for what runs
// now, from the controller's status), so the figures survive restarts and
// never drift from the ledger: there is no counter in memory that a crash
// could lose or a second ferry server could disagree with.
//
// Series (docs/metrics.md explains each):
//
//	ferry_builds_total{branch,result}                 counter: builds that reached a final state
//	ferry_build_duration_seconds{branch}              histogram: started → finished, finished builds
//	ferry_deployments_total{env,kind,result}          counter: deployments that reached a final state
//	ferry_rollout_duration_seconds{env}               histogram: started → finished, finished deployments
//	ferry_environment_info{env,commit,release,digest} 1 for what each environment runs now
//	ferry_environment_replicas{env,state}             ready and desired replicas
//	ferry_replica_info{env,replica,state,isolation,last_exit}  1 per replica the runtime reports
//	ferry_replica_restarts_total{env,replica}         counter: its restarts
//	ferry_replica_memory_bytes{env,replica}           its memory use, when measured (local, under runc)
//	ferry_replica_memory_limit_bytes{env,replica}     its memory limit, when measured
//	ferry_replica_cpu_seconds_total{env,replica}      counter: CPU time of its current run, when measured
//	ferry_dora_deployments_per_day{env}               DORA figures of each production environment
//	ferry_dora_lead_time_seconds{env}                 over the window (package dora)
//	ferry_dora_change_failure_rate{env}
//	ferry_dora_time_to_restore_seconds{env}
//
// NewRegistry puts the Collector in a registry of its own, with the Go and
// process collectors; Handler serves it.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/ledger"
)

// Ledger is what the Collector reads of the ledger.
type Ledger interface {
	Builds(ctx context.Context, f ledger.BuildFilter) ([]*ferry.Build, error)
	Deployments(ctx context.Context, f ledger.DeploymentFilter) ([]*ferry.Deployment, error)
}

// Environments reports what each environment runs (the controller).
type Environments interface {
	Status(ctx context.Context) ([]controller.EnvStatus, error)
}

// Canaries reports the canaries that run now, by environment (the
// controller, from memory).
type Canaries interface {
	LiveCanaries() map[string]controller.CanaryStatus
}

// Dora computes the DORA figures (*dora.Reporter); env "" asks for every
// production environment.
type Dora interface {
	Reports(ctx context.Context, env string, window time.Duration) ([]dora.Report, error)
}

// Config is what a Collector reads.
type Config struct {
	App    string
	Ledger Ledger
	// Envs, Dora and Canaries may be nil: their series are then left
	// out.
	Envs     Environments
	Dora     Dora
	Canaries Canaries
	// Window is the DORA figures' window; dora.DefaultWindow when zero.
	Window time.Duration
	// Timeout bounds the reads of one scrape; 10s when zero.
	Timeout time.Duration
}

// Histogram buckets, in seconds.
var (
	buildBuckets   = []float64{5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600}
	rolloutBuckets = []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}
)

var (
	buildsTotal = prometheus.NewDesc("ferry_builds_total",
		"Builds that reached a final state, by branch and result (succeeded, failed, superseded, canceled).",
		[]string{"branch", "result"}, nil)
	buildDuration = prometheus.NewDesc("ferry_build_duration_seconds",
		"Time from a build's start to its end, for builds that ran and reached a final state.",
		[]string{"branch"}, nil)
	deploymentsTotal = prometheus.NewDesc("ferry_deployments_total",
		"Deployments that reached a final state, by environment, kind (deploy, promote, rollback, auto-rollback, scale) and result (succeeded, failed, rolled-back, superseded).",
		[]string{"env", "kind", "result"}, nil)
	rolloutDuration = prometheus.NewDesc("ferry_rollout_duration_seconds",
		"Time from a deployment's start to its end (rollout and verification, and the revert of a failed one), for deployments that reached a final state.",
		[]string{"env"}, nil)
	environmentInfo = prometheus.NewDesc("ferry_environment_info",
		"What each environment runs now: its commit, release tag and image digest (always 1; absent while an environment runs nothing).",
		[]string{"env", "commit", "release", "digest"}, nil)
	environmentReplicas = prometheus.NewDesc("ferry_environment_replicas",
		"An environment's replicas: ready (reported by its runtime) and desired.",
		[]string{"env", "state"}, nil)
	replicaInfo = prometheus.NewDesc("ferry_replica_info",
		"Each replica its runtime reports (always 1): its state, how it is contained (runc, process; empty when the runtime does not say) and how its last run ended (oom-killed, signal, exit-code, start-failed; empty before one has).",
		[]string{"env", "replica", "state", "isolation", "last_exit"}, nil)
	replicaRestarts = prometheus.NewDesc("ferry_replica_restarts_total",
		"Times a replica was restarted after its process ended.",
		[]string{"env", "replica"}, nil)
	replicaMemory = prometheus.NewDesc("ferry_replica_memory_bytes",
		"A replica's memory use without reclaimable page cache, from its cgroup (local runtime under runc).",
		[]string{"env", "replica"}, nil)
	replicaMemoryLimit = prometheus.NewDesc("ferry_replica_memory_limit_bytes",
		"A replica's memory limit, from its cgroup (local runtime under runc).",
		[]string{"env", "replica"}, nil)
	replicaCPU = prometheus.NewDesc("ferry_replica_cpu_seconds_total",
		"CPU time used by a replica's current run, from its cgroup (local runtime under runc); starts again from 0 when it restarts.",
		[]string{"env", "replica"}, nil)
	canaryWeight = prometheus.NewDesc("ferry_canary_weight_percent",
		"Percent of the requests a running canary takes now, by environment (absent when none runs).",
		[]string{"env"}, nil)
	canaryStep = prometheus.NewDesc("ferry_canary_step",
		"The running canary's current step, from 1, with its state (running or paused).",
		[]string{"env", "state"}, nil)
	canaryRequests = prometheus.NewDesc("ferry_canary_step_requests",
		"Requests each version (track: stable, canary, baseline) answered over the canary's current step.",
		[]string{"env", "track"}, nil)
	canaryErrors = prometheus.NewDesc("ferry_canary_step_errors",
		"5xx answers and failed forwards of each version over the canary's current step.",
		[]string{"env", "track"}, nil)
	canaryP50 = prometheus.NewDesc("ferry_canary_step_p50_seconds",
		"Median latency of each version over the canary's current step (absent before its first request).",
		[]string{"env", "track"}, nil)
	canaryP99 = prometheus.NewDesc("ferry_canary_step_p99_seconds",
		"99th percentile latency of each version over the canary's current step (absent before its first request).",
		[]string{"env", "track"}, nil)
	canaryVerdict = prometheus.NewDesc("ferry_canary_verdict",
		"The last judgement of the running canary: 1 for its outcome (pass, fail, inconclusive).",
		[]string{"env", "outcome"}, nil)
	doraDeploymentsPerDay = prometheus.NewDesc("ferry_dora_deployments_per_day",
		"DORA deployment frequency of a production environment: successful changes per day over the window.",
		[]string{"env"}, nil)
	doraLeadTime = prometheus.NewDesc("ferry_dora_lead_time_seconds",
		"DORA lead time for changes: median time from commit to running in the environment, over the commits newly deployed in the window (0 without samples).",
		[]string{"env"}, nil)
	doraChangeFailureRate = prometheus.NewDesc("ferry_dora_change_failure_rate",
		"DORA change failure rate: failed changes divided by changes attempted in the window, 0..1.",
		[]string{"env"}, nil)
	doraTimeToRestore = prometheus.NewDesc("ferry_dora_time_to_restore_seconds",
		"DORA time to restore: median time from a failed change to the deployment that restored the environment, over the window (0 without samples).",
		[]string{"env"}, nil)
)

// Collector is a prometheus.Collector over ferry's ledger and status.
//
// Cost of a scrape: the counters and histograms are folded incrementally.
// The Collector remembers the highest ID up to which every build (and
// every deployment) is final, with the tallies of those; a scrape reads
// only the newer records, newest first: a first page of 50, then pages of
// ledger.MaxLimit. So a scrape costs one small query of each kind unless
// more than 50 records changed since (after a restart, the first scrape
// reads each table once). A record
// that stays unfinished holds the mark back, and the records after it are
// re-read each scrape until it ends. Then one Status call on the
// controller (one status read per environment's runtime) and the DORA
// reports (see dora.Reporter.Reports: one small query each, and nothing
// computed unless the ledger changed or the window moved past a finish).
type Collector struct {
	cfg Config

	mu          sync.Mutex // one scrape at a time; guards the tallies
	builds      tally
	deployments tally
}

var _ prometheus.Collector = (*Collector)(nil)

// New returns a Collector reading cfg.
func New(cfg Config) *Collector {
	if cfg.Window <= 0 {
		cfg.Window = dora.DefaultWindow
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Collector{cfg: cfg, builds: newTally(2, buildBuckets), deployments: newTally(3, rolloutBuckets)}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		buildsTotal, buildDuration, deploymentsTotal, rolloutDuration, environmentInfo, environmentReplicas,
		replicaInfo, replicaRestarts, replicaMemory, replicaMemoryLimit, replicaCPU,
		doraDeploymentsPerDay, doraLeadTime, doraChangeFailureRate, doraTimeToRestore,
		canaryWeight, canaryStep, canaryRequests, canaryErrors, canaryP50, canaryP99, canaryVerdict,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A part that cannot be read
// (the ledger, the status, the DORA reports) is reported as an invalid
// metric for its series; the other parts are still collected.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()

	if recs, err := c.newBuilds(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(buildsTotal, fmt.Errorf("read builds: %w", err))
	} else {
		c.builds.fold(recs).emit(ch, buildsTotal, buildDuration)
	}
	if recs, err := c.newDeployments(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(deploymentsTotal, fmt.Errorf("read deployments: %w", err))
	} else {
		c.deployments.fold(recs).emit(ch, deploymentsTotal, rolloutDuration)
	}
	if c.cfg.Envs != nil {
		c.collectEnvironments(ctx, ch)
	}
	if c.cfg.Dora != nil {
		c.collectDora(ctx, ch)
	}
	if c.cfg.Canaries != nil {
		collectCanaries(c.cfg.Canaries.LiveCanaries(), ch)
	}
}

// collectCanaries exports each running canary's step, weight, this
// step's figures per version and the last verdict.
func collectCanaries(live map[string]controller.CanaryStatus, ch chan<- prometheus.Metric) {
	for env, st := range live {
		ch <- prometheus.MustNewConstMetric(canaryWeight, prometheus.GaugeValue, float64(st.Run.Weight), env)
		ch <- prometheus.MustNewConstMetric(canaryStep, prometheus.GaugeValue, float64(st.Run.Step+1), env, string(st.Run.State))
		for track, f := range st.Tracks {
			ch <- prometheus.MustNewConstMetric(canaryRequests, prometheus.GaugeValue, float64(f.Requests), env, track)
			ch <- prometheus.MustNewConstMetric(canaryErrors, prometheus.GaugeValue, float64(f.Errors), env, track)
			if f.Requests > 0 {
				ch <- prometheus.MustNewConstMetric(canaryP50, prometheus.GaugeValue, f.Latency.Quantile(0.5).Seconds(), env, track)
				ch <- prometheus.MustNewConstMetric(canaryP99, prometheus.GaugeValue, f.Latency.Quantile(0.99).Seconds(), env, track)
			}
		}
		if st.Verdict != nil {
			ch <- prometheus.MustNewConstMetric(canaryVerdict, prometheus.GaugeValue, 1, env, string(st.Verdict.Outcome))
		}
	}
}

func (c *Collector) collectEnvironments(ctx context.Context, ch chan<- prometheus.Metric) {
	envs, err := c.cfg.Envs.Status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(environmentInfo, fmt.Errorf("read status: %w", err))
		return
	}
	for _, e := range envs {
		if e.Commit != "" {
			ch <- prometheus.MustNewConstMetric(environmentInfo, prometheus.GaugeValue, 1, e.Name, e.Commit, e.Release, e.Digest)
		}
		ch <- prometheus.MustNewConstMetric(environmentReplicas, prometheus.GaugeValue, float64(e.Replicas.Ready), e.Name, "ready")
		ch <- prometheus.MustNewConstMetric(environmentReplicas, prometheus.GaugeValue, float64(e.Replicas.Desired), e.Name, "desired")
		for _, r := range e.Pods {
			lastExit := ""
			if r.LastExit != nil {
				lastExit = r.LastExit.Reason
			}
			ch <- prometheus.MustNewConstMetric(replicaInfo, prometheus.GaugeValue, 1, e.Name, r.ID, r.State, r.Isolation, lastExit)
			ch <- prometheus.MustNewConstMetric(replicaRestarts, prometheus.CounterValue, float64(r.Restarts), e.Name, r.ID)
			if r.MemoryLimitBytes > 0 {
				ch <- prometheus.MustNewConstMetric(replicaMemory, prometheus.GaugeValue, float64(r.MemoryBytes), e.Name, r.ID)
				ch <- prometheus.MustNewConstMetric(replicaMemoryLimit, prometheus.GaugeValue, float64(r.MemoryLimitBytes), e.Name, r.ID)
				ch <- prometheus.MustNewConstMetric(replicaCPU, prometheus.CounterValue, r.CPUSeconds, e.Name, r.ID)
			}
		}
	}
}

func (c *Collector) collectDora(ctx context.Context, ch chan<- prometheus.Metric) {
	reps, err := c.cfg.Dora.Reports(ctx, "", c.cfg.Window)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(doraDeploymentsPerDay, fmt.Errorf("dora figures: %w", err))
		return
	}
	for _, r := range reps {
		ch <- prometheus.MustNewConstMetric(doraDeploymentsPerDay, prometheus.GaugeValue, r.DeploymentsPerDay, r.Env)
		ch <- prometheus.MustNewConstMetric(doraLeadTime, prometheus.GaugeValue, r.LeadTimeSeconds, r.Env)
		ch <- prometheus.MustNewConstMetric(doraChangeFailureRate, prometheus.GaugeValue, r.ChangeFailureRate, r.Env)
		ch <- prometheus.MustNewConstMetric(doraTimeToRestore, prometheus.GaugeValue, r.TimeToRestoreSeconds, r.Env)
	}
}

// record is a build or a deployment as the tallies see it.
type record struct {
	id     int64
	final  bool
	labels [3]string // the counter's labels; the histogram's is labels[0]
	// seconds is the run time; ran says whether there is one.
	seconds float64
	ran     bool
}

func buildRecord(b *ferry.Build) record {
	r := record{id: b.ID, final: b.State.Final(), labels: [3]string{b.Branch, string(b.State)}}
	r.seconds, r.ran = runTime(b.StartedAt, b.FinishedAt)
	return r
}

func deploymentRecord(d *ferry.Deployment) record {
	r := record{id: d.ID, final: d.State.Final(), labels: [3]string{d.Env, string(d.Kind), string(d.State)}}
	r.seconds, r.ran = runTime(d.StartedAt, d.FinishedAt)
	return r
}

func runTime(start, end time.Time) (float64, bool) {
	if start.IsZero() || end.IsZero() || end.Before(start) {
		return 0, false
	}
	return end.Sub(start).Seconds(), true
}

// newBuilds returns the builds newer than the builds' mark, oldest first.
func (c *Collector) newBuilds(ctx context.Context) ([]record, error) {
	f := ledger.BuildFilter{App: c.cfg.App}
	return newer(c.builds.mark, func(before int64, limit int) ([]record, error) {
		f.BeforeID, f.Limit = before, limit
		bs, err := c.cfg.Ledger.Builds(ctx, f)
		recs := make([]record, len(bs))
		for i, b := range bs {
			recs[i] = buildRecord(b)
		}
		return recs, err
	})
}

// newDeployments returns the deployments newer than the deployments'
// mark, oldest first.
func (c *Collector) newDeployments(ctx context.Context) ([]record, error) {
	f := ledger.DeploymentFilter{App: c.cfg.App}
	return newer(c.deployments.mark, func(before int64, limit int) ([]record, error) {
		f.BeforeID, f.Limit = before, limit
		ds, err := c.cfg.Ledger.Deployments(ctx, f)
		recs := make([]record, len(ds))
		for i, d := range ds {
			recs[i] = deploymentRecord(d)
		}
		return recs, err
	})
}

// First pages are small: in the steady state a scrape finds a few new
// records at most; later pages are as large as the ledger allows.
const (
	firstPage = 50
	fullPage  = ledger.MaxLimit
)

// newer pages through records newest first (page(0, n) is the newest n,
// page(id, n) the n before id) until it reaches mark, and returns those
// above it, oldest first.
func newer(mark int64, page func(before int64, limit int) ([]record, error)) ([]record, error) {
	var out []record
	before, limit := int64(0), firstPage
	for {
		recs, err := page(before, limit)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if r.id <= mark {
				slices.Reverse(out)
				return out, nil
			}
			out = append(out, r)
		}
		if len(recs) < limit {
			slices.Reverse(out)
			return out, nil
		}
		before, limit = recs[len(recs)-1].id, fullPage
	}
}

// tally is a counter and a histogram over records: those up to mark are
// all final and folded in for good.
type tally struct {
	mark   int64
	labels int // how many of a key's labels the counter has
	bounds []float64
	counts map[[3]string]uint64
	hists  map[string]*histogram
}

type histogram struct {
	count   uint64
	sum     float64
	buckets []uint64 // cumulative, one per bound
}

func newTally(labels int, bounds []float64) tally {
	return tally{labels: labels, bounds: bounds, counts: map[[3]string]uint64{}, hists: map[string]*histogram{}}
}

func (t *tally) clone() *tally {
	c := &tally{mark: t.mark, labels: t.labels, bounds: t.bounds, counts: maps.Clone(t.counts), hists: make(map[string]*histogram, len(t.hists))}
	for k, h := range t.hists {
		c.hists[k] = &histogram{count: h.count, sum: h.sum, buckets: slices.Clone(h.buckets)}
	}
	return c
}

func (t *tally) add(r record) {
	t.counts[r.labels]++
	if !r.ran {
		return
	}
	h := t.hists[r.labels[0]]
	if h == nil {
		h = &histogram{buckets: make([]uint64, len(t.bounds))}
		t.hists[r.labels[0]] = h
	}
	h.count++
	h.sum += r.seconds
	for i, b := range t.bounds {
		if r.seconds <= b {
			h.buckets[i]++
		}
	}
}

// fold takes records newer than the mark, oldest first: it folds the
// final ones up to the first unfinished one in for good, moving the mark,
// and returns the tallies to show, which count every final record.
func (t *tally) fold(recs []record) *tally {
	show := t.clone()
	folding := true
	for _, r := range recs {
		if !r.final {
			folding = false
			continue
		}
		show.add(r)
		if folding {
			t.add(r)
			t.mark = r.id
		}
	}
	return show
}

// emit sends the counter (with the first labels of each key) and the
// histogram (labelled with the first).
func (t *tally) emit(ch chan<- prometheus.Metric, counter, hist *prometheus.Desc) {
	for k, n := range t.counts {
		ch <- prometheus.MustNewConstMetric(counter, prometheus.CounterValue, float64(n), k[:t.labels]...)
	}
	for k, h := range t.hists {
		buckets := make(map[float64]uint64, len(t.bounds))
		for i, b := range t.bounds {
			buckets[b] = h.buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(hist, h.count, h.sum, buckets, k)
	}
}

// NewRegistry returns a registry of its own (not the global one) holding
// c and the Go and process collectors.
func NewRegistry(c *Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus text format. A part that could not
// be read is logged and left out; the rest is served.
func Handler(reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      errorLog{logger},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// errorLog is promhttp's logger on slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) { l.log.Warn("metrics scrape", "err", fmt.Sprint(v...)) }
