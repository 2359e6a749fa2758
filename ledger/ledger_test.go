package ledger_test

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

func TestPageSize(t *testing.T) {
	tests := []struct{ limit, builds, logs int }{
		{0, ledger.DefaultLimit, ledger.DefaultLogLimit},
		{-5, ledger.DefaultLimit, ledger.DefaultLogLimit},
		{7, 7, 7},
		{5000, ledger.MaxLimit, 5000},
		{1 << 30, ledger.MaxLimit, ledger.MaxLogLimit},
	}
	for _, tt := range tests {
		if got := (ledger.BuildFilter{Limit: tt.limit}).PageSize(); got != tt.builds {
			t.Errorf("BuildFilter{Limit: %d}.PageSize() = %d, want %d", tt.limit, got, tt.builds)
		}
		if got := (ledger.EventFilter{Limit: tt.limit}).PageSize(); got != tt.builds {
			t.Errorf("EventFilter{Limit: %d}.PageSize() = %d, want %d", tt.limit, got, tt.builds)
		}
		if got := ledger.LogPageSize(tt.limit); got != tt.logs {
			t.Errorf("LogPageSize(%d) = %d, want %d", tt.limit, got, tt.logs)
		}
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"ünïcode ✓", "ünïcode ✓"},
		{"nul\x00byte", "nul\uFFFDbyte"},
		{"bad \xff\xfe utf8", "bad \uFFFD utf8"},
		{"\xc3", "\uFFFD"},
	}
	for _, tt := range tests {
		if got := ledger.CleanText(tt.in); got != tt.want {
			t.Errorf("CleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStoreText(t *testing.T) {
	mark := ledger.TruncatedMark
	tests := []struct {
		in   string
		most int
		want string
	}{
		{"", 20, ""},
		{"short", 20, "short"},
		{"exactly twenty bytes", 20, "exactly twenty bytes"},
		{"twenty-one bytes long", 20, "twenty" + mark}, // the mark is 14 bytes
		{"nul\x00 \xff", 20, "nul\uFFFD \uFFFD"},
		// "é" is two bytes: never cut inside one.
		{strings.Repeat("é", 20), 20, "ééé" + mark},
		{strings.Repeat("é", 20), 21, "ééé" + mark},
		{strings.Repeat("é", 20), 22, "éééé" + mark},
		{"too long for its mark", 5, mark},
	}
	for _, tt := range tests {
		got := ledger.StoreText(tt.in, tt.most)
		if got != tt.want {
			t.Errorf("StoreText(%q, %d) = %q, want %q", tt.in, tt.most, got, tt.want)
		}
		if again := ledger.StoreText(got, tt.most); again != got {
			t.Errorf("StoreText(StoreText(%q, %d)) = %q, want it unchanged", tt.in, tt.most, again)
		}
	}
}

func TestCheckKey(t *testing.T) {
	tests := []struct {
		in   string
		most int
		want string // the message, "" for none
	}{
		{"master", 10, ""},
		{"ünï", 6, ""},
		{"RC\x00x", 10, "branch contains a NUL byte"},
		{"ma\xffster", 10, "branch is not valid UTF-8"},
		{"ünïcö", 6, "branch is 8 bytes long, more than the 6 allowed"},
	}
	for _, tt := range tests {
		err := ledger.CheckKey("branch", tt.in, tt.most)
		if got := ferry.ErrorMessage(err); err != nil && got != tt.want || err == nil && tt.want != "" {
			t.Errorf("CheckKey(branch, %q, %d) = %v, want %q", tt.in, tt.most, err, tt.want)
		}
		if err != nil && ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("CheckKey(branch, %q, %d) code %q, want %q", tt.in, tt.most, ferry.ErrorCode(err), ferry.EINVALID)
		}
	}
}

func TestTransition(t *testing.T) {
	t1 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	t2 := t1.Add(time.Minute)
	tests := []struct {
		name                    string
		state                   ferry.BuildState
		from, to                ferry.BuildState
		at                      time.Time
		code                    string
		wantStarted, wantFinish time.Time
	}{
		{"start", ferry.BuildQueued, ferry.BuildQueued, ferry.BuildRunning, t2, "", t2, time.Time{}},
		{"finish", ferry.BuildRunning, ferry.BuildRunning, ferry.BuildSucceeded, t2, "", t1, t2},
		{"supersede queued", ferry.BuildQueued, ferry.BuildQueued, ferry.BuildSuperseded, t2, "", t1, t2},
		{"requeue", ferry.BuildFailed, ferry.BuildFailed, ferry.BuildQueued, time.Time{}, "", time.Time{}, time.Time{}},
		{"lost race", ferry.BuildRunning, ferry.BuildQueued, ferry.BuildRunning, t2, ferry.ECONFLICT, t1, t1},
		{"no time to start", ferry.BuildQueued, ferry.BuildQueued, ferry.BuildRunning, time.Time{}, ferry.EINVALID, t1, t1},
		{"no time to fail", ferry.BuildRunning, ferry.BuildRunning, ferry.BuildFailed, time.Time{}, ferry.EINVALID, t1, t1},
		{"unknown to", ferry.BuildQueued, ferry.BuildQueued, "exploded", t2, ferry.EINVALID, t1, t1},
		{"unknown from", ferry.BuildQueued, "", ferry.BuildRunning, t2, ferry.EINVALID, t1, t1},
	}
	for _, tt := range tests {
		b := &ferry.Build{ID: 1, State: tt.state, Reason: "old", StartedAt: t1, FinishedAt: t1}
		err := ledger.Transition(b, tt.from, tt.to, "new", tt.at)
		if got := ferry.ErrorCode(err); got != tt.code {
			t.Errorf("Transition(%s) = %v, want code %q", tt.name, err, tt.code)
			continue
		}
		wantState, wantReason := tt.to, "new"
		if tt.code != "" {
			wantState, wantReason = tt.state, "old" // refused: unchanged
		}
		if b.State != wantState || b.Reason != wantReason || !b.StartedAt.Equal(tt.wantStarted) || !b.FinishedAt.Equal(tt.wantFinish) {
			t.Errorf("Transition(%s) left %s %q started %v finished %v, want %s %q started %v finished %v",
				tt.name, b.State, b.Reason, b.StartedAt, b.FinishedAt, wantState, wantReason, tt.wantStarted, tt.wantFinish)
		}
	}
}

func TestReadMigrations(t *testing.T) {
	good := fstest.MapFS{
		"010_later.sql":  {Data: []byte("-- ten")},
		"002_locks.sql":  {Data: []byte("-- two")},
		"001_builds.sql": {Data: []byte("-- one")},
		"README.md":      {Data: []byte("ignored")},
	}
	ms, err := ledger.ReadMigrations(good)
	if err != nil {
		t.Fatalf("ReadMigrations = %v", err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name+"="+m.SQL)
	}
	if want := "001_builds.sql=-- one 002_locks.sql=-- two 010_later.sql=-- ten"; strings.Join(got, " ") != want {
		t.Errorf("ReadMigrations = %q, want %q", strings.Join(got, " "), want)
	}
	if ms[2].Version != 10 {
		t.Errorf("version of 010_later.sql = %d, want 10", ms[2].Version)
	}

	bad := []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"no files", fstest.MapFS{"README.md": {}}, "no NNN_what.sql"},
		{"bad name", fstest.MapFS{"builds.sql": {}}, "builds.sql: name is not NNN_what.sql"},
		{"upper case", fstest.MapFS{"001_Builds.sql": {}}, "001_Builds.sql: name"},
		{"version 0", fstest.MapFS{"000_zero.sql": {}}, "positive"},
		{"same version", fstest.MapFS{"001_a.sql": {}, "01_b.sql": {}}, "same version 1"},
	}
	for _, tt := range bad {
		_, err := ledger.ReadMigrations(tt.fs)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadMigrations(%s) = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestPending(t *testing.T) {
	all := []ledger.Migration{{Version: 1, Name: "001_a.sql"}, {Version: 2, Name: "002_b.sql"}, {Version: 3, Name: "003_c.sql"}}
	names := func(ms []ledger.Migration) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.Name)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		name    string
		applied map[int]string
		want    string // pending names, or the error's text
	}{
		{"fresh", map[int]string{}, "001_a.sql,002_b.sql,003_c.sql"},
		{"partly", map[int]string{1: "001_a.sql"}, "002_b.sql,003_c.sql"},
		{"up to date", map[int]string{1: "001_a.sql", 2: "002_b.sql", 3: "003_c.sql"}, ""},
		{"newer database", map[int]string{1: "001_a.sql", 4: "004_d.sql"}, "error: ledger schema has migration 004_d.sql, unknown to this ferry: upgrade ferry"},
		{"renamed", map[int]string{1: "001_x.sql"}, "error: ledger schema migration 1 was applied as 001_x.sql, this ferry has 001_a.sql"},
	}
	for _, tt := range tests {
		ms, err := ledger.Pending(all, tt.applied)
		got := names(ms)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != tt.want {
			t.Errorf("Pending(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestTransitionDeployment(t *testing.T) {
	t1 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	t2 := t1.Add(time.Minute)
	none := time.Time{}
	tests := []struct {
		name                    string
		state                   ferry.DeploymentState
		from, to                ferry.DeploymentState
		at                      time.Time
		code                    string
		wantStarted, wantFinish time.Time
	}{
		{"start", ferry.DeploymentPending, ferry.DeploymentPending, ferry.DeploymentRolling, t2, "", t2, none},
		{"verify", ferry.DeploymentRolling, ferry.DeploymentRolling, ferry.DeploymentVerifying, none, "", t1, t1},
		{"succeed", ferry.DeploymentVerifying, ferry.DeploymentVerifying, ferry.DeploymentSucceeded, t2, "", t1, t2},
		{"roll back", ferry.DeploymentRolling, ferry.DeploymentRolling, ferry.DeploymentRolledBack, t2, "", t1, t2},
		{"supersede pending", ferry.DeploymentPending, ferry.DeploymentPending, ferry.DeploymentSuperseded, t2, "", t1, t2},
		{"requeue", ferry.DeploymentRolling, ferry.DeploymentRolling, ferry.DeploymentPending, none, "", none, none},
		{"lost race", ferry.DeploymentRolling, ferry.DeploymentPending, ferry.DeploymentRolling, t2, ferry.ECONFLICT, t1, t1},
		{"leave succeeded", ferry.DeploymentSucceeded, ferry.DeploymentSucceeded, ferry.DeploymentRolledBack, t2, ferry.EINVALID, t1, t1},
		{"leave failed", ferry.DeploymentFailed, ferry.DeploymentFailed, ferry.DeploymentPending, none, ferry.EINVALID, t1, t1},
		{"no time to start", ferry.DeploymentPending, ferry.DeploymentPending, ferry.DeploymentRolling, none, ferry.EINVALID, t1, t1},
		{"no time to fail", ferry.DeploymentRolling, ferry.DeploymentRolling, ferry.DeploymentFailed, none, ferry.EINVALID, t1, t1},
		{"unknown to", ferry.DeploymentPending, ferry.DeploymentPending, "exploded", t2, ferry.EINVALID, t1, t1},
		{"unknown from", ferry.DeploymentPending, "", ferry.DeploymentRolling, t2, ferry.EINVALID, t1, t1},
	}
	for _, tt := range tests {
		d := &ferry.Deployment{ID: 1, State: tt.state, Error: "old", StartedAt: t1, FinishedAt: t1}
		err := ledger.TransitionDeployment(d, tt.from, tt.to, "new", tt.at)
		if got := ferry.ErrorCode(err); got != tt.code {
			t.Errorf("TransitionDeployment(%s) = %v, want code %q", tt.name, err, tt.code)
			continue
		}
		wantState, wantError := tt.to, "new"
		if tt.code != "" {
			wantState, wantError = tt.state, "old" // refused: unchanged
		}
		if d.State != wantState || d.Error != wantError || !d.StartedAt.Equal(tt.wantStarted) || !d.FinishedAt.Equal(tt.wantFinish) {
			t.Errorf("TransitionDeployment(%s) left %s %q started %v finished %v, want %s %q started %v finished %v",
				tt.name, d.State, d.Error, d.StartedAt, d.FinishedAt, wantState, wantError, tt.wantStarted, tt.wantFinish)
		}
	}
}

func TestDeploymentFilterPageSize(t *testing.T) {
	for _, tt := range []struct{ limit, want int }{{0, ledger.DefaultLimit}, {-1, ledger.DefaultLimit}, {7, 7}, {5000, ledger.MaxLimit}} {
		if got := (ledger.DeploymentFilter{Limit: tt.limit}).PageSize(); got != tt.want {
			t.Errorf("DeploymentFilter{Limit: %d}.PageSize() = %d, want %d", tt.limit, got, tt.want)
		}
	}
}
