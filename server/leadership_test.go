package server

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/ledgerdb"
)

// startErr starts a server on yaml and returns why it did not start.
func startErr(t *testing.T, yaml string, opts Options) error {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "ferry.yaml"), []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	opts.Logger = testLogger(t)
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		return err
	}
	s.Close()
	t.Fatal("the second server started")
	return nil
}

// TestOneLeaderPerLedger: a second server on a ledger another server leads
// refuses to start, naming the leader, whether it shares the data
// directory or only the ledger; a clean stop hands the lead on at once.
func TestOneLeaderPerLedger(t *testing.T) {
	repo := newRepo(t, "testdata/tiny")
	shared := "sqlite://" + filepath.Join(t.TempDir(), "ledger.db")
	onLedger := func(dataDir string) string {
		return strings.Replace(tinyConfig(repo.Dir, dataDir, ""), "source:", "ledger: "+shared+"\nsource:", 1)
	}
	dirA := t.TempDir()
	a := start(t, onLedger(dirA), Options{})

	for _, tt := range []struct {
		name, yaml string
		want       []string
	}{
		{"same data directory", onLedger(dirA), []string{"another ferry server (pid ", "uses the data directory " + dirA}},
		{"same ledger", onLedger(t.TempDir()), []string{"tiny is led by ", "(term 1, lease until", "would split the brain"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := startErr(t, tt.yaml, Options{})
			if ferry.ErrorCode(err) != ferry.ECONFLICT {
				t.Errorf("start = %v, want a conflict", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(ferry.ErrorMessage(err), w) {
					t.Errorf("start = %q, want it to say %q", ferry.ErrorMessage(err), w)
				}
			}
		})
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := start(t, onLedger(t.TempDir()), Options{})
	if term := b.leadership.Term(); term != 2 {
		t.Errorf("the next server leads in term %d, want 2", term)
	}
	es, err := b.Ledger().Events(context.Background(), ledger.EventFilter{Kind: "leader."})
	if err != nil || len(es) != 2 {
		t.Fatalf("leader events = %v, %v; want two", es, err)
	}
	if !strings.Contains(es[0].Message, "leads in term 2") {
		t.Errorf("newest leader event = %q", es[0].Message)
	}
	st, err := newClient(t, b).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if l := st.Leader; l == nil || l.Term != 2 || l.Holder != b.leadership.Lease().Holder || !l.ExpiresAt.After(time.Now()) {
		t.Errorf("status shows leader %+v, want %s in term 2", l, b.leadership.Lease().Holder)
	}
}

// TestDeposedLeaderStops: a leader whose lease another server took (as
// after a pause past its TTL) stops on its own within the TTL, and the
// ledger refuses whatever it still tries to write.
func TestDeposedLeaderStops(t *testing.T) {
	repo := newRepo(t, "testdata/tiny")
	const ttl = 3 * time.Second
	s := start(t, tinyConfig(repo.Dir, t.TempDir(), ""), Options{LeaseTTL: ttl})
	ctx := context.Background()
	other, err := ledgerdb.Open(ctx, s.cfg.Ledger.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.TakeOver(ctx, "tiny", "intruder", "", s.leadership.Lease(), ttl, time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.leadership.Lost():
	case <-time.After(2 * ttl):
		t.Fatal("the deposed leader did not notice within the TTL")
	}
	// Found at the next renewal; a machine so loaded that no renewal ran
	// within the TTL gives up the lead for that reason first.
	if err := ferry.ErrorMessage(s.leadership.Err()); !strings.Contains(err, "intruder holds it in term 2") && !strings.Contains(err, "ran out") {
		t.Errorf("lost because %v", err)
	}
	err = s.Ledger().AddEvent(ctx, &ferry.Event{App: "tiny", Kind: "stale.write", Time: time.Now()})
	if !ledger.IsFenced(err) {
		t.Errorf("a write of the deposed leader = %v, want refused by the fence", err)
	}
	if _, _, err := s.Trigger(ctx, "master", "", "ada"); err == nil {
		t.Errorf("a build triggered on the deposed leader was queued")
	}
}
