package lb_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lb"
)

// TestTrackWeights: under concurrent load, each track gets exactly its
// weight of the requests, the figures count them per track, and without
// weights the other tracks get nothing.
func TestTrackWeights(t *testing.T) {
	b := startBalancer(t, lb.Config{})
	s1, s2 := startReplica(t, "s1"), startReplica(t, "s2")
	c, base := startReplica(t, "c"), startReplica(t, "b")
	addReady(t, b, s1, s2)
	addTrack(t, b, "canary", c)
	addTrack(t, b, "baseline", base)
	url := "http://" + b.Addr()

	// No weights: the canary and baseline tracks take nothing.
	if got := runLoad(t, url, 4, 200); got["c"]+got["b"] != 0 || got["s1"]+got["s2"] != 200 {
		t.Fatalf("without weights: served %v, want all 200 by s1 and s2", got)
	}

	for _, tc := range []struct {
		canary, n int
	}{{5, 2000}, {1, 1000}, {25, 400}, {50, 400}, {0, 100}} {
		t.Run(fmt.Sprintf("weight %d", tc.canary), func(t *testing.T) {
			if err := b.SetWeights(map[string]int{lb.DefaultTrack: 100 - 2*tc.canary, "canary": tc.canary, "baseline": tc.canary}); err != nil {
				t.Fatal(err)
			}
			b.ResetFigures()
			got := runLoad(t, url, 4, tc.n)
			want := tc.n * tc.canary / 100
			if got["c"] != want || got["b"] != want || got["s1"]+got["s2"] != tc.n-2*want {
				t.Errorf("served %v of %d, want exactly %d each by c and b", got, tc.n, want)
			}
			figs := b.Figures()
			for track, want := range map[string]int{"canary": want, "baseline": want, lb.DefaultTrack: tc.n - 2*want} {
				f := figs[track]
				if f.Requests != int64(want) || f.Latency.Count() != int64(want) || f.Errors != 0 {
					t.Errorf("figures of track %q: %d requests, %d timed, %d errors; want %d, %d, 0",
						track, f.Requests, f.Latency.Count(), f.Errors, want, want)
				}
			}
		})
	}
}

// TestTrackStarved: a weighted track with no ready backend gives its share
// to the default track, and takes it back once ready.
func TestTrackStarved(t *testing.T) {
	b := startBalancer(t, lb.Config{CheckInterval: 20 * time.Millisecond})
	s := startReplica(t, "s")
	c := startReplica(t, "c")
	c.ready.Store(false)
	addReady(t, b, s)
	b.AddTo("canary", c.id, c.addr)
	if err := b.SetWeights(map[string]int{lb.DefaultTrack: 50, "canary": 50}); err != nil {
		t.Fatal(err)
	}
	url := "http://" + b.Addr()
	if got := runLoad(t, url, 2, 100); got["s"] != 100 {
		t.Errorf("canary not ready: served %v, want all 100 by s", got)
	}
	c.ready.Store(true)
	waitFor(t, "c ready", func() bool { st, _ := status(b, "c"); return st.Ready })
	if got := runLoad(t, url, 2, 100); got["s"] != 50 || got["c"] != 50 {
		t.Errorf("canary ready: served %v, want 50 each", got)
	}
	if st, _ := status(b, "c"); st.Track != "canary" {
		t.Errorf("c's track is %q", st.Track)
	}
}

// TestTrackFigures: the figures count 5xx answers and failed attempts as
// errors of the track that gave them, keep a removed backend's figures,
// and start again from zero on ResetFigures.
func TestTrackFigures(t *testing.T) {
	b := startBalancer(t, lb.Config{})
	s := startReplica(t, "s")
	addReady(t, b, s)
	bad := startFailing(t, 4, 30*time.Millisecond) // every 4th request answers 500; each takes 30 ms
	b.AddTo("canary", "bad", bad)
	waitBackend(t, b, "bad")
	if err := b.SetWeights(map[string]int{lb.DefaultTrack: 1, "canary": 1}); err != nil {
		t.Fatal(err)
	}
	url := "http://" + b.Addr()
	for range 40 {
		res, err := http.Get(url + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	f := b.Figures()
	c, st := f["canary"], f[lb.DefaultTrack]
	if c.Requests != 20 || c.Errors != 5 || st.Requests != 20 || st.Errors != 0 {
		t.Fatalf("figures: canary %d requests %d errors, stable %d/%d; want 20/5 and 20/0", c.Requests, c.Errors, st.Requests, st.Errors)
	}
	if p50 := c.Latency.Quantile(0.5); p50 < 30*time.Millisecond || p50 > 60*time.Millisecond {
		t.Errorf("canary p50 %s, want about 30ms", p50)
	}
	if p99 := st.Latency.Quantile(0.99); p99 >= 30*time.Millisecond {
		t.Errorf("stable p99 %s, want well under the canary's 30ms", p99)
	}

	// A canary that resets every connection: its attempts are its errors,
	// the retries are served by the stable track.
	rst := startReplica(t, "rst", func(r *replica) { r.reset = true })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Remove(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	if got := b.Figures()["canary"]; got.Requests != 20 || got.Errors != 5 {
		t.Errorf("after removing bad: canary %d/%d, want its 20/5 kept", got.Requests, got.Errors)
	}
	b.ResetFigures()
	got := b.Figures()
	if c := got["canary"]; c.Requests != 0 || got[lb.DefaultTrack].Requests != 0 || c.Latency.Count() != 0 {
		t.Errorf("after ResetFigures: %+v", got)
	}
	b.AddTo("canary", rst.id, rst.addr)
	waitBackend(t, b, "rst")
	res, body := get(t, url+"/")
	for res.Header.Get(lb.ReplicaHeader) != "s" || b.Figures()["canary"].Errors == 0 {
		// The first request went to s (the schedule's turn): the next one
		// is the canary's.
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		res, body = get(t, url+"/")
	}
	if got := b.Figures()["canary"]; got.Requests != 1 || got.Errors != 1 {
		t.Errorf("a reset attempt: canary %d requests %d errors, want 1 and 1", got.Requests, got.Errors)
	}
}

func TestSetWeightsErrors(t *testing.T) {
	b := startBalancer(t, lb.Config{})
	if err := b.SetWeights(map[string]int{"canary": -1}); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("negative weight: %v", err)
	}
	if err := b.SetWeights(map[string]int{"canary": 0}); err != nil || b.Weights() != nil {
		t.Errorf("all zero: %v, weights %v; want none", err, b.Weights())
	}
}

// addTrack adds rs to track and waits until they are ready.
func addTrack(t *testing.T, b *lb.Balancer, track string, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		b.AddTo(track, r.id, r.addr)
		waitBackend(t, b, r.id)
	}
}

func waitBackend(t *testing.T, b *lb.Balancer, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.WaitReady(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// runLoad sends n GETs from workers and returns who served them; every
// one must succeed.
func runLoad(t *testing.T, url string, workers, n int) map[string]int {
	t.Helper()
	start := time.Now()
	l := startLoad(url, workers, int64(n), 30*time.Second, 0)
	deadline := time.Now().Add(30 * time.Second)
	for l.OK()+l.Failed() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	l.Stop()
	if l.Failed() > 0 {
		t.Fatalf("%d of %d requests failed: %v", l.Failed(), n, l.Errors())
	}
	return l.Served(start)
}

// startFailing is a backend that answers 500 to every nth request other
// than /statusz, and 200 to the others, each after delay.
func startFailing(t *testing.T, nth int, delay time.Duration) string {
	t.Helper()
	var count atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/statusz" {
			return
		}
		time.Sleep(delay)
		if count.Add(1)%int64(nth) == 0 {
			http.Error(w, "failing, as asked", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestTrackSticky: with a sticky header, each client stays on one track,
// about its weight's share of the clients lands on each, and raising the
// weights moves no canary client off the canary nor any baseline client
// onto it. A sticky cookie works the same; requests with neither follow
// the exact schedule.
func TestTrackSticky(t *testing.T) {
	b := startBalancer(t, lb.Config{StickyHeader: "X-User", StickyCookie: "user"})
	s, c, base := startReplica(t, "s"), startReplica(t, "c"), startReplica(t, "b")
	addReady(t, b, s)
	addTrack(t, b, "canary", c)
	addTrack(t, b, "baseline", base)
	url := "http://" + b.Addr() + "/"
	send := func(user string, cookie bool) string {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if cookie {
			req.AddCookie(&http.Cookie{Name: "user", Value: user})
		} else if user != "" {
			req.Header.Set("X-User", user)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.Header.Get(lb.ReplicaHeader)
	}
	const users = 1000
	at := func(w int) map[string]string {
		if err := b.SetWeights(map[string]int{lb.DefaultTrack: 100 - 2*w, "canary": w, "baseline": w}); err != nil {
			t.Fatal(err)
		}
		where := map[string]string{}
		count := map[string]int{}
		for i := range users {
			u := fmt.Sprintf("user-%d", i)
			first := send(u, false)
			if again := send(u, i%2 == 0); again != first {
				t.Fatalf("at %d%%: %s went to %s, then to %s", w, u, first, again)
			}
			where[u] = first
			count[first]++
		}
		for _, id := range []string{"c", "b"} {
			if lo, hi := users*w/100/2, users*w/100*3/2; count[id] < lo || count[id] > hi {
				t.Errorf("at %d%%: %d of %d clients on %s, want %d to %d", w, count[id], users, id, lo, hi)
			}
		}
		t.Logf("at %d%%: clients by replica %v", w, count)
		return where
	}
	at5, at25 := at(5), at(25)
	for u, was := range at5 {
		if now := at25[u]; (was == "c" && now != "c") || (was == "b" && now == "c") {
			t.Errorf("%s was on %s at 5%%, on %s at 25%%", u, was, now)
		}
	}
	got := map[string]int{}
	for range 100 {
		got[send("", false)]++
	}
	if got["c"] != 25 || got["b"] != 25 {
		t.Errorf("without a sticky key at 25%%: %v, want exactly 25 each to c and b", got)
	}
}
