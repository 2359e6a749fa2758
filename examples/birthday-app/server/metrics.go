package server

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ferryhq/ferry/examples/birthday-app/internal/buildinfo"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge

	// series holds, per method, route and status, the counter and the
	// histogram that requests with them update, so that a request does not
	// hash its label values to find them again. The keys are few: the
	// labels' values are bounded (methodLabel, routes, statusLabel).
	series sync.Map // seriesKey → *series
}

type seriesKey struct {
	method, route string
	code          int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// observe counts a request and records its duration.
func (m *metrics) observe(method, route string, code int, elapsed time.Duration) {
	key := seriesKey{method, route, code}
	v, ok := m.series.Load(key)
	if !ok {
		v, _ = m.series.LoadOrStore(key, &series{
			requests: m.requests.WithLabelValues(method, route, statusLabel(code)),
			duration: m.duration.WithLabelValues(method, route),
		})
	}
	se := v.(*series)
	se.requests.Inc()
	se.duration.Observe(elapsed.Seconds())
}

// newMetrics makes a registry of the server's own (not the process-wide
// default) with the HTTP metrics, build information, and the Go runtime
// and process collectors.
func newMetrics(build buildinfo.Info) (*prometheus.Registry, *metrics) {
	reg := prometheus.NewRegistry()
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "birthday_http_requests_total",
			Help: "HTTP requests served, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "birthday_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by method and route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "birthday_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "birthday_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"commit": build.Commit, "build_time": build.BuildTime, "go_version": build.GoVersion},
	})
	info.Set(1)
	reg.MustRegister(m.requests, m.duration, m.inFlight, info,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, m
}
