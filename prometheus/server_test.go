package prometheus

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/internal/testenv"
	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// exporter stands in for a pod of one track: it serves requests, failing
// one in failEvery (never when 0) with a 500 and taking delay(i), and
// exposes its counter of requests by code and its latency histogram, with
// the app, track and version labels Prometheus would take from the pod.
type exporter struct {
	srv       *httptest.Server
	failEvery int
	delay     func(i int) time.Duration

	mu       sync.Mutex
	n        int
	requests *prom.CounterVec
	latency  prom.Histogram
}

func newExporter(t *testing.T, track, version string, failEvery int, delay func(int) time.Duration) *exporter {
	t.Helper()
	labels := prom.Labels{"app": "birthday", "track": track, "version": version}
	e := &exporter{
		failEvery: failEvery, delay: delay,
		requests: prom.NewCounterVec(prom.CounterOpts{Name: "app_http_requests_total", Help: "Requests by code.", ConstLabels: labels}, []string{"code"}),
		latency:  prom.NewHistogram(prom.HistogramOpts{Name: "app_http_request_duration_seconds", Help: "Latency.", ConstLabels: labels, Buckets: prom.DefBuckets}),
	}
	// Both codes exist from the first scrape on, at 0, as an app that
	// initialises its series does: increase() then counts every request.
	e.requests.WithLabelValues("200")
	e.requests.WithLabelValues("500")
	reg := prom.NewRegistry()
	reg.MustRegister(e.requests, e.latency)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		e.mu.Lock()
		i := e.n
		e.n++
		e.mu.Unlock()
		if e.delay != nil {
			time.Sleep(e.delay(i))
		}
		code := http.StatusOK
		if e.failEvery > 0 && i%e.failEvery == e.failEvery-1 {
			code = http.StatusInternalServerError
		}
		w.WriteHeader(code)
		e.requests.WithLabelValues(strconv.Itoa(code)).Inc()
		e.latency.Observe(time.Since(start).Seconds())
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// load sends n requests to e from workers at once, failing the test on a
// transport error.
func (e *exporter) load(t *testing.T, n, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for range next {
				resp, err := http.Get(e.srv.URL + "/")
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("load on %s: %v", e.srv.URL, err)
	}
}

// prometheusBinary is the prometheus server to test with:
// FERRY_TEST_PROMETHEUS, else prometheus on PATH. Without one the test
// fails when FERRY_TEST_REQUIRE names prometheus, and is skipped
// otherwise.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FERRY_TEST_PROMETHEUS"); p != "" {
		if _, err := os.Stat(p); err != nil {
			testenv.Unavailable(t, "prometheus", "FERRY_TEST_PROMETHEUS: %v", err)
		}
		return p
	}
	p, err := exec.LookPath("prometheus")
	if err != nil {
		testenv.Unavailable(t, "prometheus", "no prometheus server: install Debian's prometheus package (scripts/provision.sh does) or set FERRY_TEST_PROMETHEUS")
	}
	return p
}

// freePort is a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPrometheus runs a Prometheus server scraping targets every second,
// with its storage in a temp directory, until the test ends, and returns
// its URL once it has scraped each target once.
func startPrometheus(t *testing.T, targets []string) string {
	t.Helper()
	bin := prometheusBinary(t)
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: pods
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
	})
	base := "http://" + addr
	fail := func(format string, args ...any) {
		t.Helper()
		out, _ := os.ReadFile(logPath)
		t.Fatalf("%s\nprometheus log:\n%s", fmt.Sprintf(format, args...), out)
	}
	up := fmt.Sprintf(`count(up{job="pods"} == 1) == %d`, len(targets))
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			fail("prometheus exited: %v", err)
		default:
		}
		if n, err := instant(base, up); err == nil && n == float64(len(targets)) {
			return base
		}
		if time.Now().After(end) {
			fail("prometheus at %s has not scraped the %d targets after 30s", base, len(targets))
		}
	}
}

// instant is the one number an instant query gives now; an error when it
// gives none.
func instant(base, query string) (float64, error) {
	resp, err := http.PostForm(base+"/api/v1/query", url.Values{"query": {query}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []series `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("%d series", len(r.Data.Result))
	}
	return r.Data.Result[0].Value.v, nil
}

// waitScraped waits until Prometheus has scraped n requests of version's
// track.
func waitScraped(t *testing.T, base, track, version string, n int) {
	t.Helper()
	q := fmt.Sprintf(`sum(app_http_requests_total{track=%q,version=%q})`, track, version)
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got, err := instant(base, q)
		if err == nil && got == float64(n) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("after 15s, prometheus has %v requests of %s %s (%v), want %d", got, track, version, err, n)
		}
	}
}

// TestPrometheus judges canaries on the figures a real Prometheus server
// gives for exporters standing in for the canary's and the baseline's
// pods: a canary failing 5 % of its requests fails; one 200 ms slower
// fails; an A/A pair passes; no traffic is zero requests, inconclusive.
func TestPrometheus(t *testing.T) {
	steady := func(i int) time.Duration { return time.Duration(i%4) * 2 * time.Millisecond }
	slow := func(i int) time.Duration { return 200*time.Millisecond + steady(i) }
	type pair struct {
		name                    string
		baseVersion, canVersion string
		baseFail, canFail       int
		baseDelay, canDelay     func(int) time.Duration
		requests, workers       int
		want                    analysis.Outcome
		reason                  string
		base, can               *exporter
	}
	pairs := []*pair{
		{name: "5 % errors", baseVersion: "ba5e00000001", canVersion: "c0ffee000001", canFail: 20, baseDelay: steady, canDelay: steady,
			requests: 400, workers: 8, want: analysis.Fail, reason: "is over the limit 1.00%"},
		{name: "200 ms slower", baseVersion: "ba5e00000002", canVersion: "c0ffee000002", baseDelay: steady, canDelay: slow,
			requests: 200, workers: 50, want: analysis.Fail, reason: "slower than the baseline"},
		{name: "A/A", baseVersion: "aa0000000003", canVersion: "aa0000000003", baseDelay: steady, canDelay: steady,
			requests: 400, workers: 8, want: analysis.Pass},
		{name: "no traffic", baseVersion: "ba5e00000004", canVersion: "c0ffee000004", want: analysis.Inconclusive, reason: "too few requests to judge: canary 0, baseline 0"},
	}
	start := time.Now()
	var targets []string
	for _, p := range pairs {
		p.base = newExporter(t, ferry.TrackBaseline, p.baseVersion, p.baseFail, p.baseDelay)
		p.can = newExporter(t, ferry.TrackCanary, p.canVersion, p.canFail, p.canDelay)
		targets = append(targets, strings.TrimPrefix(p.base.srv.URL, "http://"), strings.TrimPrefix(p.can.srv.URL, "http://"))
	}
	base := startPrometheus(t, targets)
	t.Logf("prometheus at %s scraped %d exporters after %s", base, len(targets), time.Since(start).Round(time.Millisecond))
	limits := analysis.Limits{MinRequests: 50, MaxErrorRate: 0.01, MaxP99: 500 * time.Millisecond}
	q := queries
	q.URL = base
	q.Requests = `sum(increase(app_http_requests_total{app="{{.App}}",track="{{.Track}}",version="{{.Version}}"}[{{.Range}}]))`
	q.Errors = `sum(increase(app_http_requests_total{app="{{.App}}",track="{{.Track}}",version="{{.Version}}",code=~"5.."}[{{.Range}}]))`
	q.Latency = `sum by (le) (increase(app_http_request_duration_seconds_bucket{app="{{.App}}",track="{{.Track}}",version="{{.Version}}"}[{{.Range}}]))`

	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			if p.requests > 0 {
				var wg sync.WaitGroup
				for _, e := range []*exporter{p.base, p.can} {
					wg.Go(func() { e.load(t, p.requests, p.workers) })
				}
				wg.Wait()
				waitScraped(t, base, ferry.TrackBaseline, p.baseVersion, p.requests)
				waitScraped(t, base, ferry.TrackCanary, p.canVersion, p.requests)
				// increase() extrapolates the counters' average slope
				// to the end of the span: with the load in the last of
				// only two samples, by up to half again. A few more
				// scrapes make it at most a third.
				time.Sleep(3 * time.Second)
			}
			src, err := New(Config{
				Prometheus: q, Env: "prod", App: "birthday",
				Versions: map[string]string{ferry.TrackBaseline: p.baseVersion, ferry.TrackCanary: p.canVersion},
				Start:    start,
			})
			if err != nil {
				t.Fatal(err)
			}
			figs, err := src.Figures(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			b, c := figs[ferry.TrackBaseline], figs[ferry.TrackCanary]
			t.Logf("baseline %d requests, %d errors, p50 %s, p99 %s; canary %d requests, %d errors, p50 %s, p99 %s",
				b.Requests, b.Errors, b.Latency.Quantile(0.5), b.Latency.Quantile(0.99), c.Requests, c.Errors, c.Latency.Quantile(0.5), c.Latency.Quantile(0.99))
			// increase() extrapolates to the end of the span by up to a
			// scrape interval: the counts may be over what was served,
			// never under.
			for _, f := range []analysis.Figures{b, c} {
				if f.Requests < int64(p.requests) || f.Requests > int64(p.requests)*3/2 ||
					f.Latency.Count() < int64(p.requests) || f.Latency.Count() > int64(p.requests)*3/2 {
					t.Errorf("figures %d requests, %d in the histogram; want %d served, give or take the extrapolation", f.Requests, f.Latency.Count(), p.requests)
				}
			}
			if p.canFail > 0 {
				if r := float64(c.Errors) / float64(c.Requests); r < 0.04 || r > 0.06 {
					t.Errorf("canary error rate %.3f (%d of %d), want 5 %%", r, c.Errors, c.Requests)
				}
			}
			v := analysis.Judge(limits, b, c)
			t.Logf("verdict %s: %v", v.Outcome, v.Reasons)
			if v.Outcome != p.want || p.reason != "" && !strings.Contains(strings.Join(v.Reasons, "; "), p.reason) {
				t.Errorf("Judge = %s %q, want %s %q", v.Outcome, v.Reasons, p.want, p.reason)
			}
		})
	}

	// A version no pod runs: every query finds no series.
	src, err := New(Config{Prometheus: q, App: "birthday", Versions: map[string]string{ferry.TrackCanary: "000000000000"}, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	if figs, err := src.Figures(context.Background()); err != nil || figs[ferry.TrackCanary] != (analysis.Figures{}) {
		t.Errorf("Figures of a version nothing runs = %+v, %v; want zero", figs, err)
	}
	// A query Prometheus refuses, with its reason.
	bad := q
	bad.Requests = `sum(increase(app_http_requests_total{version="{{.Version}}"}))`
	if src, err = New(Config{Prometheus: bad, Versions: map[string]string{ferry.TrackCanary: "c0ffee000001"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Figures(context.Background()); ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "bad_data (400 Bad Request)") ||
		!strings.Contains(err.Error(), "prometheus at "+base+", query "+`sum(increase(app_http_requests_total{version="c0ffee000001"}))`) {
		t.Errorf("Figures with a query prometheus refuses = %v", err)
	}
}
