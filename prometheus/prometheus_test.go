package prometheus

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
)

// queries are templates as a ferry.yaml would give them.
var queries = ferry.CanaryPrometheus{
	Requests: `sum(increase(http_requests_total{app="{{.App}}",track="{{.Track}}",version="{{.Version}}"}[{{.Range}}]))`,
	Errors:   `sum(increase(http_requests_total{app="{{.App}}",track="{{.Track}}",version="{{.Version}}",code=~"5.."}[{{.Range}}]))`,
	Latency:  `sum by (le) (increase(http_request_duration_seconds_bucket{app="{{.App}}",track="{{.Track}}",version="{{.Version}}"}[{{.Range}}]))`,
}

// fakeAPI answers the query API as Prometheus does, with the body answer
// gives for each query, and records the requests.
type fakeAPI struct {
	t       *testing.T
	answer  func(query string) (status int, body string)
	queries []string
	times   []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/prom/api/v1/query" || r.Method != http.MethodPost {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("query form: %v", err)
	}
	q := r.PostForm.Get("query")
	f.queries = append(f.queries, q)
	f.times = append(f.times, r.PostForm.Get("time"))
	status, body := f.answer(q)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

const (
	noSeries = `{"status":"success","data":{"resultType":"vector","result":[]}}`
)

func vector(v string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.5,"` + v + `"]}]}}`
}

func buckets(pairs ...string) string {
	var rs []string
	for i := 0; i+1 < len(pairs); i += 2 {
		rs = append(rs, `{"metric":{"le":"`+pairs[i]+`"},"value":[1700000000.5,"`+pairs[i+1]+`"]}`)
	}
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(rs, ",") + `]}}`
}

func newSource(t *testing.T, srv *httptest.Server, now time.Time) *Source {
	t.Helper()
	p := queries
	p.URL = srv.URL + "/prom/"
	s, err := New(Config{
		Prometheus: p, Env: "prod", App: "birthday",
		Versions: map[string]string{ferry.TrackCanary: "c0ffee000001", ferry.TrackBaseline: "ba5e00000001"},
		Start:    now.Add(-92500 * time.Millisecond), Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFigures(t *testing.T) {
	now := time.Unix(1700000000, 250e6)
	api := &fakeAPI{t: t, answer: func(q string) (int, string) {
		canary := strings.Contains(q, `track="canary"`) && strings.Contains(q, `version="c0ffee000001"`)
		switch {
		case strings.HasPrefix(q, "sum by (le)") && canary:
			return 200, buckets("0.005", "60", "0.01", "90", "0.5", "99.6", "+Inf", "100")
		case strings.HasPrefix(q, "sum by (le)"):
			return 200, buckets("+Inf", "200", "0.01", "200", "0.005", "150")
		case strings.Contains(q, `code=~"5.."`) && canary:
			return 200, vector("5.2")
		case strings.Contains(q, `code=~"5.."`):
			return 200, noSeries // no 5xx series at all
		case canary:
			return 200, `{"status":"success","data":{"resultType":"scalar","result":[1700000000.25,"100.4"]}}`
		}
		return 200, vector("200")
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	got, err := newSource(t, srv, now).Figures(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var canaryLat, baseLat analysis.Histogram
	canaryLat[boundBucket(0.005)] = 60
	canaryLat[boundBucket(0.01)] = 30
	canaryLat[boundBucket(0.5)] = 10 // 99.6 - 90, rounded
	baseLat[boundBucket(0.005)] = 150
	baseLat[boundBucket(0.01)] = 50
	want := map[string]analysis.Figures{
		ferry.TrackCanary:   {Requests: 100, Errors: 5, Latency: canaryLat},
		ferry.TrackBaseline: {Requests: 200, Errors: 0, Latency: baseLat},
	}
	if len(got) != 2 || got[ferry.TrackCanary] != want[ferry.TrackCanary] || got[ferry.TrackBaseline] != want[ferry.TrackBaseline] {
		t.Errorf("Figures = %+v\nwant %+v", got, want)
	}
	// The requests of the +Inf bucket (0.4 of one) round away; those of
	// the 0.5 s bucket sit at its bound: none is over 0.5 s.
	if c := got[ferry.TrackCanary].Latency; c.Over(500*time.Millisecond) != 0 || c.Over(400*time.Millisecond) != 10 {
		t.Errorf("canary latency over 500 ms: %d, over 400 ms: %d; want 0 and 10", c.Over(500*time.Millisecond), c.Over(400*time.Millisecond))
	}
	if len(api.queries) != 6 {
		t.Fatalf("%d queries, want 6: %q", len(api.queries), api.queries)
	}
	wantQ := `sum(increase(http_requests_total{app="birthday",track="baseline",version="ba5e00000001"}[93s]))`
	if api.queries[0] != wantQ {
		t.Errorf("first query = %s, want %s", api.queries[0], wantQ)
	}
	for _, at := range api.times {
		if at != "1700000000.250" {
			t.Errorf("evaluation time %s, want the clock's 1700000000.250", at)
		}
	}
}

// TestFiguresNoValues: no series for any query (no traffic yet, or the
// pods not scraped yet) is zero requests, which Judge calls inconclusive.
func TestFiguresNoValues(t *testing.T) {
	srv := httptest.NewServer(&fakeAPI{t: t, answer: func(string) (int, string) { return 200, noSeries }})
	defer srv.Close()
	got, err := newSource(t, srv, time.Unix(1700000000, 0)).Figures(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, track := range []string{ferry.TrackCanary, ferry.TrackBaseline} {
		if f, ok := got[track]; !ok || f != (analysis.Figures{}) {
			t.Errorf("figures of %s = %+v, %v; want zero", track, f, ok)
		}
	}
	v := analysis.Judge(analysis.Limits{MinRequests: 50, MaxErrorRate: 0.01}, got[ferry.TrackBaseline], got[ferry.TrackCanary])
	if v.Outcome != analysis.Inconclusive {
		t.Errorf("Judge on no values = %+v, want inconclusive", v)
	}
}

func TestFiguresErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		code   string
		want   string
	}{
		{"two series", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1,"1"]},{"metric":{"pod":"b"},"value":[1,"2"]}]}}`,
			ferry.EINVALID, `gives 2 series ({pod="a"}, …), want one number: sum them`},
		{"matrix", 200, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}`,
			ferry.EINVALID, "gives a matrix, want a scalar or an instant vector"},
		{"string", 200, `{"status":"success","data":{"resultType":"string","result":[1,"x"]}}`, ferry.EINVALID, "gives a string"},
		{"NaN", 200, vector("NaN"), ferry.EINVALID, "gives NaN, not a count"},
		{"not a number", 200, vector("many"), ferry.EUNAVAILABLE, `a sample's value "many" is not a number`},
		{"bad query", 400, `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \"}\""}`,
			ferry.EINVALID, `bad_data (400 Bad Request): 1:5: parse error: unexpected "}"`},
		{"timeout", 503, `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`,
			ferry.EUNAVAILABLE, "timeout (503 Service Unavailable): query timed out"},
		{"not the API", 200, `<html>Grafana</html>`, ferry.EUNAVAILABLE, `answered 200 OK with no query API answer: "<html>Grafana</html>" (is the URL the server's, without /api/v1?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakeAPI{t: t, answer: func(string) (int, string) { return tc.status, tc.body }})
			defer srv.Close()
			_, err := newSource(t, srv, time.Unix(1700000000, 0)).Figures(context.Background())
			where := "prometheus at " + srv.URL + "/prom/, query sum(increase(http_requests_total{"
			if ferry.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), where) {
				t.Errorf("Figures = %v\nwant %s: %s, naming the server and the query", err, tc.code, tc.want)
			}
		})
	}

	// The latency query needs one series per bucket, labelled le.
	for _, tc := range []struct{ body, want string }{
		{vector("3"), `series {} has no le label`},
		{buckets("0.1", "3", "0.1", "4"), "two series with le=0.1: sum them by (le)"},
		{buckets("fast", "3"), `le "fast" is not a bound`},
		{`{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}`, "gives a scalar, want one series per bucket"},
	} {
		srv := httptest.NewServer(&fakeAPI{t: t, answer: func(q string) (int, string) {
			if strings.HasPrefix(q, "sum by (le)") {
				return 200, tc.body
			}
			return 200, vector("10")
		}})
		_, err := newSource(t, srv, time.Unix(1700000000, 0)).Figures(context.Background())
		if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "query sum by (le)") {
			t.Errorf("Figures with latency %s = %v, want %s", tc.body, err, tc.want)
		}
		srv.Close()
	}

	// An unreachable server, its password hidden.
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	p := queries
	p.URL = "http://ferry:s3cret@" + strings.TrimPrefix(srv.URL, "http://")
	s, err := New(Config{Prometheus: p, Versions: map[string]string{ferry.TrackCanary: "c0ffee000001"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Figures(context.Background())
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(ferry.ErrorMessage(err), "prometheus at http://ferry:xxxxx@"+strings.TrimPrefix(srv.URL, "http://")+" did not answer query sum(increase(") ||
		strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Figures from an unreachable server = %v (shown: %s), want %s naming the server without its password and the query", err, ferry.ErrorMessage(err), ferry.EUNAVAILABLE)
	}
}

func TestNew(t *testing.T) {
	versions := map[string]string{ferry.TrackCanary: "c0ffee000001"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{Prometheus: ferry.CanaryPrometheus{Requests: "up", Errors: "up"}, Versions: versions}, `url "": want http(s)://`},
		{"bad scheme", Config{Prometheus: ferry.CanaryPrometheus{URL: "prom:9090", Requests: "up", Errors: "up"}, Versions: versions}, `url "prom:9090"`},
		{"no requests", Config{Prometheus: ferry.CanaryPrometheus{URL: "http://prom:9090", Errors: "up"}, Versions: versions}, "no requests query"},
		{"bad template", Config{Prometheus: ferry.CanaryPrometheus{URL: "http://prom:9090", Requests: "up{v={{.Version}", Errors: "up"}, Versions: versions}, `prometheus requests query "up{v={{.Version}"`},
		{"no tracks", Config{Prometheus: ferry.CanaryPrometheus{URL: "http://prom:9090", Requests: "up", Errors: "up"}}, "no track"},
		{"no version", Config{Prometheus: ferry.CanaryPrometheus{URL: "http://prom:9090", Requests: "up", Errors: "up"}, Versions: map[string]string{ferry.TrackCanary: ""}}, "track canary has no version"},
	} {
		if _, err := New(tc.cfg); ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s) = %v, want %s: %s", tc.name, err, ferry.EINVALID, tc.want)
		}
	}
	// A field the query does not have fails when rendered, naming it.
	srv := httptest.NewServer(&fakeAPI{t: t, answer: func(string) (int, string) { return 200, noSeries }})
	defer srv.Close()
	s, err := New(Config{Prometheus: ferry.CanaryPrometheus{URL: srv.URL, Requests: "x{{.Pod}}", Errors: "up"}, Versions: versions})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Figures(context.Background()); ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "can't evaluate field Pod") {
		t.Errorf("Figures with {{.Pod}} = %v", err)
	}
}

func TestBoundBucket(t *testing.T) {
	for _, tc := range []struct {
		le   float64
		want time.Duration // the bucket's upper bound
	}{
		{0.0001, 100 * time.Microsecond},
		{0.00005, 100 * time.Microsecond},
		{0.5, analysis.UpperBound(50)},
		{math.Inf(1), math.MaxInt64},
		{1e6, math.MaxInt64},
	} {
		i := boundBucket(tc.le)
		finite := tc.le < 1e5
		if got := analysis.UpperBound(i); got != tc.want || finite && i > 0 && analysis.UpperBound(i-1) >= time.Duration(tc.le*1e9) {
			t.Errorf("boundBucket(%v) = %d (up to %s), want the first bucket up to at least le: up to %s", tc.le, i, got, tc.want)
		}
	}
}
