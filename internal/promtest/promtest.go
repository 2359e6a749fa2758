// Package promtest runs a real Prometheus server for tests
// (FERRY_TEST_PROMETHEUS, under FERRY_TEST_REQUIRE's rule) and exporters
// that stand in for a canary's pods: the test cluster's pods run no
// containers, so something else must serve requests and expose the
// counters and latency histogram a scrape of the pods would give, labelled
// as a scrape configuration would label them (app, track, version).
package promtest

import (
	"encoding/json"
	"fmt"
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
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/internal/testport"
	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Queries are the PromQL templates over an exporter's series, as
// strategy.canary.analysis.prometheus would give them, for the server at
// url.
func Queries(url string) ferry.CanaryPrometheus {
	return ferry.CanaryPrometheus{
		URL:      url,
		Requests: `sum(increase(app_http_requests_total{app="{{.App}}",track="{{.Track}}",version="{{.Version}}"}[{{.Range}}]))`,
		Errors:   `sum(increase(app_http_requests_total{app="{{.App}}",track="{{.Track}}",version="{{.Version}}",code=~"5.."}[{{.Range}}]))`,
		Latency:  `sum by (le) (increase(app_http_request_duration_seconds_bucket{app="{{.App}}",track="{{.Track}}",version="{{.Version}}"}[{{.Range}}]))`,
	}
}

// Exporter stands in for the pods of one track: it serves requests,
// failing one in FailEvery (never when 0) with a 500 and taking Delay(i),
// and exposes its counter of requests by code and its latency histogram,
// labelled with the app, the track and the version it runs now. Set
// changes the version and the behaviour, as a new set of pods would.
type Exporter struct {
	URL string // where it serves requests (GET /) and metrics (GET /metrics)

	app, track string
	mu         sync.Mutex
	version    string
	failEvery  int
	delay      func(i int) time.Duration
	n          int
	requests   *prom.CounterVec
	latency    *prom.HistogramVec
}

// NewExporter starts an exporter of app's track, running version, until
// the test ends.
func NewExporter(t testing.TB, app, track, version string, failEvery int, delay func(int) time.Duration) *Exporter {
	t.Helper()
	labels := prom.Labels{"app": app, "track": track}
	e := &Exporter{
		app: app, track: track,
		requests: prom.NewCounterVec(prom.CounterOpts{Name: "app_http_requests_total", Help: "Requests by code.", ConstLabels: labels}, []string{"version", "code"}),
		latency:  prom.NewHistogramVec(prom.HistogramOpts{Name: "app_http_request_duration_seconds", Help: "Latency.", ConstLabels: labels, Buckets: prom.DefBuckets}, []string{"version"}),
	}
	e.Set(version, failEvery, delay)
	reg := prom.NewRegistry()
	reg.MustRegister(e.requests, e.latency)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		e.mu.Lock()
		i, version, failEvery, delay := e.n, e.version, e.failEvery, e.delay
		e.n++
		e.mu.Unlock()
		if delay != nil {
			time.Sleep(delay(i))
		}
		code := http.StatusOK
		if failEvery > 0 && i%failEvery == failEvery-1 {
			code = http.StatusInternalServerError
		}
		w.WriteHeader(code)
		e.requests.WithLabelValues(version, strconv.Itoa(code)).Inc()
		e.latency.WithLabelValues(version).Observe(time.Since(start).Seconds())
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	return e
}

// Set makes the exporter run version from now on, failing one request in
// failEvery and taking delay(i) for the i-th.
func (e *Exporter) Set(version string, failEvery int, delay func(int) time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.version, e.failEvery, e.delay, e.n = version, failEvery, delay, 0
	// Both codes exist from the first scrape on, at 0, as an app that
	// initialises its series does: increase() then counts every request.
	e.requests.WithLabelValues(version, "200")
	e.requests.WithLabelValues(version, "500")
	e.latency.WithLabelValues(version)
}

// Target is the exporter's address as a scrape configuration names it.
func (e *Exporter) Target() string { return strings.TrimPrefix(e.URL, "http://") }

// Load sends n requests to e from workers at once, failing the test on a
// transport error.
func (e *Exporter) Load(t testing.TB, n, workers int) {
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
				resp, err := http.Get(e.URL + "/")
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
		t.Fatalf("load on %s: %v", e.URL, err)
	}
}

// Binary is the prometheus server to test with: FERRY_TEST_PROMETHEUS,
// else prometheus on PATH. Without one the test fails when
// FERRY_TEST_REQUIRE names prometheus, and is skipped otherwise.
func Binary(t testing.TB) string {
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

// Start runs a Prometheus server scraping targets every second, with its
// storage in a temp directory, until the test ends, and returns its URL
// once it has scraped each target once.
func Start(t testing.TB, targets []string) string {
	t.Helper()
	bin := Binary(t)
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
	addr := testport.Addr(t)
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
		if n, err := Instant(base, up); err == nil && n == float64(len(targets)) {
			return base
		}
		if time.Now().After(end) {
			fail("prometheus at %s has not scraped the %d targets after 30s", base, len(targets))
		}
	}
}

// Instant is the one number an instant query gives now; an error when it
// gives none.
func Instant(base, query string) (float64, error) {
	resp, err := http.PostForm(base+"/api/v1/query", url.Values{"query": {query}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]json.RawMessage `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("%d series", len(r.Data.Result))
	}
	var s string
	if err := json.Unmarshal(r.Data.Result[0].Value[1], &s); err != nil {
		return 0, err
	}
	return strconv.ParseFloat(s, 64)
}

// WaitScraped waits until Prometheus has scraped n requests of version's
// track.
func WaitScraped(t testing.TB, base, track, version string, n int) {
	t.Helper()
	q := fmt.Sprintf(`sum(app_http_requests_total{track=%q,version=%q})`, track, version)
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got, err := Instant(base, q)
		if err == nil && got == float64(n) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("after 15s, prometheus has %v requests of %s %s (%v), want %d", got, track, version, err, n)
		}
	}
}
