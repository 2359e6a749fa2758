package prometheus

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// TestSplits follows a runtime's splits: each split's versions are what
// the queries ask for, counted from when it began; another weight keeps
// the split's start, another canary starts afresh; after End the figures
// are empty. The query API is a fake speaking Prometheus's protocol (the
// real server is TestPrometheus's).
func TestSplits(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.FormValue("query"))
		mu.Unlock()
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"10"]}]}}`)
	}))
	defer api.Close()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p := &Splits{
		Prometheus: ferry.CanaryPrometheus{URL: api.URL,
			Requests: `req{track="{{.Track}}",version="{{.Version}}"}[{{.Range}}]`, Errors: `err{version="{{.Version}}"}[{{.Range}}]`},
		Env: "prod", App: "app", Now: clock,
		Versions: func(s ferry.Split) map[string]string {
			return map[string]string{ferry.TrackCanary: s.Canary.Digest, ferry.TrackBaseline: s.Stable.Digest}
		},
	}
	read := func() (map[string]int64, []string) {
		t.Helper()
		mu.Lock()
		queries = nil
		mu.Unlock()
		f, err := p.Figures(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for track, v := range f {
			out[track] = v.Requests
		}
		mu.Lock()
		defer mu.Unlock()
		return out, append([]string(nil), queries...)
	}
	if f, q := read(); len(f) != 0 || len(q) != 0 {
		t.Fatalf("before a split: figures %v after queries %q, want none of either", f, q)
	}
	split := ferry.Split{Stable: ferry.Spec{Digest: "old1"}, Canary: ferry.Spec{Digest: "new1"}, Baseline: true, Weight: 5}
	for _, step := range []struct {
		name  string
		begin *ferry.Split
		after time.Duration
		want  []string
	}{
		{"first step", &split, 30 * time.Second, []string{`req{track="canary",version="new1"}[30s]`, `req{track="baseline",version="old1"}[30s]`}},
		{"next weight", &ferry.Split{Stable: split.Stable, Canary: split.Canary, Baseline: true, Weight: 25}, 30 * time.Second,
			[]string{`req{track="canary",version="new1"}[60s]`}},
		{"another canary", &ferry.Split{Stable: split.Stable, Canary: ferry.Spec{Digest: "new2"}, Baseline: true, Weight: 5}, 10 * time.Second,
			[]string{`req{track="canary",version="new2"}[10s]`, `err{version="new2"}[10s]`}},
	} {
		if err := p.Begin(*step.begin); err != nil {
			t.Fatalf("%s: Begin: %v", step.name, err)
		}
		now = now.Add(step.after)
		f, q := read()
		if f[ferry.TrackCanary] != 10 || f[ferry.TrackBaseline] != 10 {
			t.Errorf("%s: figures %v, want 10 requests per track", step.name, f)
		}
		for _, w := range step.want {
			if !strings.Contains(strings.Join(q, "\n"), w) {
				t.Errorf("%s: queries %q, want %s", step.name, q, w)
			}
		}
	}
	p.End()
	if f, q := read(); len(f) != 0 || len(q) != 0 {
		t.Errorf("after End: figures %v after queries %q, want none", f, q)
	}
	if err := p.Check(); err != nil {
		t.Errorf("Check = %v, want nil", err)
	}
	bad := &Splits{Prometheus: p.Prometheus, Versions: p.Versions}
	bad.Prometheus.URL = "prom:9090"
	if err := bad.Begin(split); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("Begin with a bad URL = %v, want EINVALID", err)
	}
	if err := bad.Check(); ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), `url "prom:9090"`) {
		t.Errorf("Check with a bad URL = %v, want EINVALID naming the URL", err)
	}
	noErrors := &Splits{Prometheus: p.Prometheus, Versions: p.Versions}
	noErrors.Prometheus.Errors = " "
	if err := noErrors.Check(); ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "no errors query") {
		t.Errorf("Check without an errors query = %v, want EINVALID: no errors query", err)
	}
}
