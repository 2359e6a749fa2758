package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

// TestBuildLogs: the helper that explains a demo's early end prints a
// stopped demo's build log from its ledger, and says when there is none.
func TestBuildLogs(t *testing.T) {
	dir := t.TempDir()
	if got := buildLogs(t, dir); !strings.Contains(got, "no ledger.db") {
		t.Errorf("buildLogs without a ledger = %q, want it said", got)
	}
	if err := os.Mkdir(filepath.Join(dir, "ferry-data"), 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(t.Context(), filepath.Join(dir, "ferry-data", "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	b := &ferry.Build{App: "birthday-app", Commit: strings.Repeat("a", 40), Branch: "master", State: ferry.BuildRunning, CreatedAt: time.Now()}
	if err := store.CreateBuild(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if err := store.AppendLog(t.Context(), b.ID, []ferry.LogLine{
		{BuildID: b.ID, Step: "test", Time: time.Now(), Text: "--- FAIL: TestSomething (0.01s)\n"},
	}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	if got := buildLogs(t, dir); !strings.Contains(got, "[test] --- FAIL: TestSomething (0.01s)") {
		t.Errorf("buildLogs = %q, want the failed test's line", got)
	}
}
