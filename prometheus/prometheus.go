// Package prometheus reads a canary's figures from a Prometheus server, on
// Kubernetes, where ferry's balancer does not see the requests: each
// track's requests, failed requests and latency histogram since the split
// started, from the PromQL templates of a ferry.CanaryPrometheus, through
// the HTTP API's instant query (/api/v1/query) at the clock's time.
//
// Each template is given a ferry.CanaryQuery: the environment, the app,
// the track, its pods' version label and the span since the split started
// serving, in PromQL's form ("93s"). Requests and Errors must give one
// number (a scalar, or a vector of one series: sum it); Latency one series
// per histogram bucket, labelled le, of cumulative counts, as
//
//	sum by (le) (increase(http_request_duration_seconds_bucket{version="{{.Version}}"}[{{.Range}}]))
//
// gives. On Kubernetes the canary's and the baseline's pods carry the
// labels ferry.dev/track and ferry.dev/version (package runtime/kube);
// a scrape configuration that keeps them as track and version, with
// kubernetes_sd_configs of role pod, is
//
//	relabel_configs:
//	  - source_labels: [__meta_kubernetes_pod_label_ferry_dev_track]
//	    target_label: track
//	  - source_labels: [__meta_kubernetes_pod_label_ferry_dev_version]
//	    target_label: version
//
// A query that finds no series ("no values found": no requests yet,
// no 5xx series yet, pods not scraped yet) counts 0, so a track with no
// traffic has zero requests, which analysis.Judge calls inconclusive:
// never a pass and never a crash. Counts are rounded to whole requests;
// errors are never more than requests.
//
// Prometheus buckets are coarser than analysis.Histogram's quarter
// octaves. Spreading a Prometheus bucket's requests over the finer buckets
// below its bound would invent where in (previous bound, le] they fell, so
// each bucket's requests are counted at its bound: in the analysis bucket
// that holds le, the slowest those requests may have been, and those of
// the +Inf bucket in the last one. The canary is never judged faster than
// it was: a p99 limit between two Prometheus bounds counts every request
// of the bucket above it as over. Set the limit at a bound (the default
// buckets have 0.5 s) to judge it exactly. The baseline is counted the
// same way, so the comparison with it is not skewed, only coarser.
package prometheus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
)

// Config says where a split's figures come from.
type Config struct {
	// Prometheus is the server and the query templates.
	Prometheus ferry.CanaryPrometheus
	Env, App   string
	// Versions maps each track to judge (ferry.TrackCanary, TrackBaseline,
	// or TrackStable without a baseline) to its pods' version label.
	Versions map[string]string
	// Start is when the split started serving (the clock's time at New
	// when zero): figures are counted from there.
	Start time.Time
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Client makes the requests (one with a 10 s timeout when nil).
	Client *http.Client
}

// Source is one split's figures on a Prometheus server.
type Source struct {
	cfg                       Config
	endpoint                  string // the query API's URL
	shown                     string // the server's URL as messages show it
	tracks                    []string
	requests, errors, latency *template.Template
}

// New checks cfg and parses its templates. It does not contact the
// server.
func New(cfg Config) (*Source, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Start.IsZero() {
		cfg.Start = cfg.Now()
	}
	u, err := url.Parse(cfg.Prometheus.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "prometheus: url %q: want http(s)://host[:port][/path]", redact(cfg.Prometheus.URL))
	}
	if len(cfg.Versions) == 0 {
		return nil, ferry.Errorf(ferry.EINVALID, "prometheus at %s: no track to read figures of", u.Redacted())
	}
	s := &Source{
		cfg:      cfg,
		endpoint: strings.TrimSuffix(u.String(), "/") + "/api/v1/query",
		shown:    u.Redacted(),
	}
	for track, v := range cfg.Versions {
		if v == "" {
			return nil, ferry.Errorf(ferry.EINVALID, "prometheus at %s: track %s has no version", s.shown, track)
		}
		s.tracks = append(s.tracks, track)
	}
	slices.Sort(s.tracks)
	for _, q := range []struct {
		name     string
		text     string
		t        **template.Template
		optional bool
	}{
		{"requests", cfg.Prometheus.Requests, &s.requests, false},
		{"errors", cfg.Prometheus.Errors, &s.errors, false},
		{"latency", cfg.Prometheus.Latency, &s.latency, true},
	} {
		if strings.TrimSpace(q.text) == "" {
			if q.optional {
				continue
			}
			return nil, ferry.Errorf(ferry.EINVALID, "prometheus at %s: no %s query", s.shown, q.name)
		}
		t, err := template.New(q.name).Option("missingkey=error").Parse(q.text)
		if err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "prometheus %s query %q: %s", q.name, q.text, err)
		}
		*q.t = t
	}
	return s, nil
}

// redact hides the password of a URL that may not parse.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		return "…" + raw[at:]
	}
	return raw
}

// Figures returns each track's figures since the split started, at the
// clock's time, keyed by track.
func (s *Source) Figures(ctx context.Context) (map[string]analysis.Figures, error) {
	now := s.cfg.Now()
	span := max(now.Sub(s.cfg.Start), time.Second)
	out := make(map[string]analysis.Figures, len(s.tracks))
	for _, track := range s.tracks {
		q := ferry.CanaryQuery{
			Env: s.cfg.Env, App: s.cfg.App, Track: track, Version: s.cfg.Versions[track],
			Range: strconv.FormatInt(int64(math.Ceil(span.Seconds())), 10) + "s",
		}
		f, err := s.figures(ctx, q, now)
		if err != nil {
			return nil, fmt.Errorf("figures of the %s track: %w", track, err)
		}
		out[track] = f
	}
	return out, nil
}

// figures runs one track's queries.
func (s *Source) figures(ctx context.Context, q ferry.CanaryQuery, at time.Time) (analysis.Figures, error) {
	var f analysis.Figures
	var err error
	if f.Requests, err = s.count(ctx, s.requests, q, at); err != nil {
		return f, err
	}
	if f.Errors, err = s.count(ctx, s.errors, q, at); err != nil {
		return f, err
	}
	f.Errors = min(f.Errors, f.Requests)
	if s.latency != nil {
		query, err := render(s.latency, q)
		if err != nil {
			return f, err
		}
		r, err := s.query(ctx, query, at)
		if err != nil {
			return f, err
		}
		if f.Latency, err = histogram(r); err != nil {
			return f, s.failed(query, ferry.EINVALID, "%s", err)
		}
	}
	return f, nil
}

// count runs a query that gives one number, rounded to a whole count.
func (s *Source) count(ctx context.Context, t *template.Template, q ferry.CanaryQuery, at time.Time) (int64, error) {
	query, err := render(t, q)
	if err != nil {
		return 0, err
	}
	r, err := s.query(ctx, query, at)
	if err != nil {
		return 0, err
	}
	v, err := r.number()
	if err != nil {
		return 0, s.failed(query, ferry.EINVALID, "%s", err)
	}
	return int64(math.Round(max(v, 0))), nil
}

func render(t *template.Template, q ferry.CanaryQuery) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, q); err != nil {
		return "", ferry.Errorf(ferry.EINVALID, "prometheus %s query: %s", t.Name(), err)
	}
	return b.String(), nil
}

// failed is an error about query, naming the server.
func (s *Source) failed(query, code, format string, args ...any) error {
	return ferry.Errorf(code, "prometheus at %s, query %s: %s", s.shown, query, fmt.Sprintf(format, args...))
}

// response is the query API's answer.
type response struct {
	Status    string   `json:"status"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// result is a query's result: a scalar or an instant vector.
type result struct {
	kind   string
	scalar sample
	vector []series
}

type series struct {
	Metric map[string]string `json:"metric"`
	Value  sample            `json:"value"`
}

// sample is [unix time, "value"].
type sample struct{ v float64 }

func (p *sample) UnmarshalJSON(b []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil || len(pair) != 2 {
		return fmt.Errorf("a sample is [time, \"value\"], not %s", b)
	}
	var text string
	if err := json.Unmarshal(pair[1], &text); err != nil {
		return fmt.Errorf("a sample's value is a string, not %s", pair[1])
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return fmt.Errorf("a sample's value %q is not a number", text)
	}
	p.v = v
	return nil
}

// query runs an instant query at time at.
func (s *Source) query(ctx context.Context, query string, at time.Time) (result, error) {
	form := url.Values{
		"query": {query},
		"time":  {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return result{}, fmt.Errorf("prometheus at %s: %w", s.shown, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return result{}, fmt.Errorf("prometheus at %s, query %s: %w", s.shown, query, err)
		}
		return result{}, ferry.Wrap(err, ferry.EUNAVAILABLE, "prometheus at %s did not answer query %s", s.shown, query)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return result{}, ferry.Wrap(err, ferry.EUNAVAILABLE, "prometheus at %s: reading the answer to query %s", s.shown, query)
	}
	var r response
	if err := json.Unmarshal(body, &r); err != nil || r.Status == "" {
		return result{}, s.failed(query, ferry.EUNAVAILABLE, "answered %s with no query API answer: %q (is the URL the server's, without /api/v1?)",
			resp.Status, string(bytes.TrimSpace(body[:min(len(body), 200)])))
	}
	if r.Status != "success" {
		code := ferry.EUNAVAILABLE
		if r.ErrorType == "bad_data" {
			code = ferry.EINVALID
		}
		return result{}, s.failed(query, code, "%s (%s): %s", r.ErrorType, resp.Status, r.Error)
	}
	out := result{kind: r.Data.ResultType}
	switch out.kind {
	case "scalar":
		err = json.Unmarshal(r.Data.Result, &out.scalar)
	case "vector":
		err = json.Unmarshal(r.Data.Result, &out.vector)
	default:
		return result{}, s.failed(query, ferry.EINVALID, "gives a %s, want a scalar or an instant vector (a range selector [..] needs a function around it, such as increase)", out.kind)
	}
	if err != nil {
		return result{}, s.failed(query, ferry.EUNAVAILABLE, "cannot read the %s it gives: %s", out.kind, err)
	}
	return out, nil
}

// number is the one number a result gives; 0 for a vector of no series
// ("no values found").
func (r result) number() (float64, error) {
	v := r.scalar.v
	if r.kind == "vector" {
		switch len(r.vector) {
		case 0:
			return 0, nil
		case 1:
			v = r.vector[0].Value.v
		default:
			return 0, fmt.Errorf("gives %d series (%s, …), want one number: sum them", len(r.vector), labels(r.vector[0].Metric))
		}
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("gives %v, not a count", v)
	}
	return v, nil
}

// histogram maps a vector of cumulative bucket counts (labelled le) onto
// an analysis.Histogram: each bucket's own requests at its bound (see the
// package comment). No series is an empty histogram.
func histogram(r result) (analysis.Histogram, error) {
	var h analysis.Histogram
	if r.kind != "vector" {
		return h, fmt.Errorf("gives a %s, want one series per bucket, labelled le", r.kind)
	}
	type bucket struct {
		le    float64
		count float64
	}
	bs := make([]bucket, 0, len(r.vector))
	for _, s := range r.vector {
		text, ok := s.Metric["le"]
		if !ok {
			return h, fmt.Errorf("series %s has no le label: want one series per histogram bucket (sum by (le) (…_bucket))", labels(s.Metric))
		}
		le, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsNaN(le) {
			return h, fmt.Errorf("series %s: le %q is not a bound", labels(s.Metric), text)
		}
		if math.IsNaN(s.Value.v) || math.IsInf(s.Value.v, 0) {
			return h, fmt.Errorf("series %s gives %v, not a count", labels(s.Metric), s.Value.v)
		}
		bs = append(bs, bucket{le, s.Value.v})
	}
	slices.SortFunc(bs, func(a, b bucket) int {
		switch {
		case a.le < b.le:
			return -1
		case a.le > b.le:
			return 1
		}
		return 0
	})
	var below float64 // the cumulative count of the buckets so far
	for i, b := range bs {
		if i > 0 && b.le == bs[i-1].le {
			return h, fmt.Errorf("two series with le=%v: sum them by (le)", b.le)
		}
		// Counts are cumulative; increase()'s extrapolation can make a
		// bucket a little lower than the one below it.
		own := max(b.count-below, 0)
		below = max(below, b.count)
		h[boundBucket(b.le)] += int64(math.Round(own))
	}
	return h, nil
}

// boundBucket is the analysis bucket that holds a latency of le seconds:
// the first whose upper bound is at least le, the last for +Inf.
func boundBucket(le float64) int {
	if math.IsInf(le, 1) || le*float64(time.Second) >= float64(math.MaxInt64) {
		return analysis.Buckets - 1
	}
	d := time.Duration(math.Ceil(le * float64(time.Second)))
	for i := range analysis.Buckets {
		if analysis.UpperBound(i) >= d {
			return i
		}
	}
	return analysis.Buckets - 1
}

// labels shows a series' labels.
func labels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
