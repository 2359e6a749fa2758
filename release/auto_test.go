package release

import (
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

func TestAutoCandidate(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	prod := ferry.Environment{Name: "prod", From: "staging", Auto: true, Wait: 30 * time.Minute, Soak: 10 * time.Minute}
	up := &ferry.Deployment{Digest: "sha256:b", State: ferry.DeploymentSucceeded}
	for _, tt := range []struct {
		name    string
		f       AutoFacts
		wantOK  bool
		wantDue time.Time
	}{
		{"wait after the first success", AutoFacts{Env: prod, Upstream: up, FirstSuccess: at, Running: "sha256:a"}, true, at.Add(30 * time.Minute)},
		{"soak when longer", AutoFacts{Env: func() ferry.Environment { e := prod; e.Soak = time.Hour; return e }(), Upstream: up, FirstSuccess: at}, true, at.Add(time.Hour)},
		{"auto off", AutoFacts{Env: func() ferry.Environment { e := prod; e.Auto = false; return e }(), Upstream: up, FirstSuccess: at}, false, time.Time{}},
		{"runs it already", AutoFacts{Env: prod, Upstream: up, FirstSuccess: at, Running: "sha256:b"}, false, time.Time{}},
		{"upstream runs nothing", AutoFacts{Env: prod}, false, time.Time{}},
		{"tried once (failed, refused or requested)", AutoFacts{Env: prod, Upstream: up, FirstSuccess: at, Tried: true}, false, time.Time{}},
	} {
		due, ok := AutoCandidate(tt.f)
		if ok != tt.wantOK || !due.Equal(tt.wantDue) {
			t.Errorf("%s: AutoCandidate = %s, %v; want %s, %v", tt.name, due, ok, tt.wantDue, tt.wantOK)
		}
	}
}
