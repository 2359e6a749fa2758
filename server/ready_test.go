package server

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// TestReadiness: /readyz tells the leader from the standby, which names
// the leader it forwards to; once the leader stops, the standby's /readyz
// says it leads in the next term.
func TestReadiness(t *testing.T) {
	r := newRedundant(t)
	opts := Options{LeaseTTL: 3 * time.Second, KubePoll: 100 * time.Millisecond}
	a := start(t, r.yaml(t.TempDir()), opts)
	b := start(t, r.yaml(t.TempDir()), opts)

	ra, rb := readyz(t, a.URL()), readyz(t, b.URL())
	if ra.Role != "leader" || ra.Holder != a.holder || ra.Term == 0 {
		t.Errorf("the leader's /readyz = %+v, want role leader, holder %s and its term", ra, a.holder)
	}
	if rb.Role != "standby" || rb.Holder != b.holder || rb.Leader != a.holder || rb.LeaderAddress != a.Addr() || rb.Term != ra.Term {
		t.Errorf("the standby's /readyz = %+v, want role standby naming leader %s at %s in term %d", rb, a.holder, a.Addr(), ra.Term)
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the standby's /readyz to say it leads", func() bool {
		rb = readyz(t, b.URL())
		return rb.Role == "leader"
	})
	if rb.Holder != b.holder || rb.Term <= ra.Term || rb.Leader != "" {
		t.Errorf("after the takeover /readyz = %+v, want leader %s in a term after %d", rb, b.holder, ra.Term)
	}
}

// readyz is a server's GET /readyz, which must answer 200.
func readyz(t testing.TB, url string) Readiness {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/readyz = %d, %+v, %v", url, resp.StatusCode, r, err)
	}
	return r
}

// TestStandbyPrecedesReplacement: when the leader stops and a server
// starts in its place at that moment (a deleted pod and its replacement),
// the server that stood by takes the lead, not the newcomer, which stands
// by for it: also when the standby itself began less than a lease before
// and the newcomer started before the leader stopped.
func TestStandbyPrecedesReplacement(t *testing.T) {
	const ttl = 3 * time.Second
	for _, tc := range []struct {
		name  string
		stood time.Duration // how long the standby stood by before the leader stopped
		early bool          // the replacement starts before the leader stops, not after
	}{
		{"stood a lease", ttl, false},
		{"stood half a lease and the replacement started first", ttl / 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRedundant(t)
			opts := Options{LeaseTTL: ttl, KubePoll: 100 * time.Millisecond}
			a := start(t, r.yaml(t.TempDir()), opts)
			b := start(t, r.yaml(t.TempDir()), opts)
			time.Sleep(tc.stood)
			var c *Server
			if tc.early {
				c = start(t, r.yaml(t.TempDir()), opts)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if !tc.early {
				c = start(t, r.yaml(t.TempDir()), opts)
			}
			if c.leadership != nil {
				t.Fatalf("the replacement took the lead in term %d from the standby", c.leadership.Term())
			}
			waitFor(t, 10*time.Second, "a standby to lead", func() bool {
				return readyz(t, b.URL()).Role == "leader" || readyz(t, c.URL()).Role == "leader"
			})
			if rb, rc := readyz(t, b.URL()), readyz(t, c.URL()); rb.Role != "leader" || rc.Role != "standby" || rc.Leader != b.holder {
				t.Errorf("the standby's /readyz = %+v, the replacement's %+v; want %s leading and the replacement standing by for it", rb, rc, b.holder)
			}
		})
	}
}
