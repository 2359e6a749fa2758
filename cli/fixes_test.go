package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// driftGolden is every kind of drift the controller reports, with the fix
// it suggests (written by controller's TestDriftGolden).
const driftGolden = "../controller/testdata/drift.golden.json"

// parseCommand runs line (a suggested command) through the real command
// tree as the shell would hand it over: one command, a known subcommand,
// its flags and its arguments accepted.
func parseCommand(line string) error {
	if strings.ContainsAny(line, "(),;|&`$'\"<>\\\n") {
		return fmt.Errorf("%q is not one plain command", line)
	}
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != "ferry" {
		return fmt.Errorf("%q is not a ferry command", line)
	}
	root := newRoot(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}, serverParts{})
	cmd, rest, err := root.Find(fields[1:])
	if err != nil {
		return err
	}
	if cmd == root || !cmd.Runnable() || cmd.Annotations[groupAnnotation] != "" {
		return fmt.Errorf("%q names no command", line)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return err
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return err
	}
	return cmd.ValidateRequiredFlags()
}

// embedsCommand reports whether the instruction s names a ferry command
// inside its prose ("…, or ferry rollback prod"), which cannot be pasted.
func embedsCommand(s string) bool {
	root := newRoot(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}, serverParts{})
	words := strings.Fields(s)
	for i := 0; i+1 < len(words); i++ {
		if words[i] != "ferry" {
			continue
		}
		for _, c := range root.Commands() {
			if strings.TrimRight(words[i+1], ",.;:)") == c.Name() {
				return true
			}
		}
	}
	return false
}

func readDriftGolden(t *testing.T) []api.Drift {
	t.Helper()
	data, err := os.ReadFile(driftGolden)
	if err != nil {
		t.Fatal(err)
	}
	var drifts []api.Drift
	if err := json.Unmarshal(data, &drifts); err != nil {
		t.Fatal(err)
	}
	if len(drifts) == 0 {
		t.Fatalf("%s holds no drift", driftGolden)
	}
	return drifts
}

// TestDriftFixesParse: every fix `ferry status --check` suggests that is a
// command is one the CLI accepts when pasted: it parses with the real
// command tree, and run against a server that is not there it gets as far
// as asking it (no usage error). The others are instructions, not
// commands.
func TestDriftFixesParse(t *testing.T) {
	commands := 0
	for _, d := range readDriftGolden(t) {
		if !strings.HasPrefix(d.Fix, "ferry ") {
			if d.Fix == "" || embedsCommand(d.Fix) {
				t.Errorf("drift %s %s: fix %q is neither one command nor an instruction", d.Env, d.What, d.Fix)
			}
			continue
		}
		commands++
		if err := parseCommand(d.Fix); err != nil {
			t.Errorf("drift %s %s: fix %q does not parse: %v", d.Env, d.What, d.Fix, err)
			continue
		}
		args := append(strings.Fields(d.Fix)[1:], "--server", "http://127.0.0.1:1")
		if _, stderr, code := run(t, args...); code != 1 || !strings.Contains(stderr, "cannot reach the ferry server at http://127.0.0.1:1") {
			t.Errorf("drift %s %s: %s against no server: exit %d %s; want it to get as far as asking the server", d.Env, d.What, d.Fix, code, stderr)
		}
	}
	if commands == 0 {
		t.Errorf("no fix in %s is a command", driftGolden)
	}
}

// TestParseCommand: the check itself refuses what a shell or the CLI
// would refuse.
func TestParseCommand(t *testing.T) {
	for _, tt := range []struct {
		line string
		ok   bool
	}{
		{"ferry rollback prod --to RC20261126_2350", true},
		{"ferry scale dev 2", true},
		{"ferry status --check", true},
		{"ferry logs dev", true},
		{"ferry promote bbbbbbbbbbbb --to prod, or ferry rollback prod", false}, // two commands
		{"ferry build master (or restart ferry: it restores dev from the ledger)", false},
		{"ferry rollback", false},           // needs ENV
		{"ferry scale dev", false},          // needs N
		{"ferry promote --too prod", false}, // unknown flag
		{"ferry promot", false},             // unknown command
		{"ferry token", false},              // a group, not a command
		{"check the runtime", false},
	} {
		if err := parseCommand(tt.line); (err == nil) != tt.ok {
			t.Errorf("parseCommand(%q) = %v, want ok %v", tt.line, err, tt.ok)
		}
	}
}

func TestEmbedsCommand(t *testing.T) {
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"restart ferry: it restores dev from the ledger", false},
		{"on the git server: git tag -d RC1 (ferry never made it; pushes cannot delete release tags)", false},
		{"check the runtime", false},
		{"promote bbbbbbbbbbbb, or ferry rollback prod", true},
		{"run ferry build master.", true},
	} {
		if got := embedsCommand(tt.s); got != tt.want {
			t.Errorf("embedsCommand(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

// TestStatusCheckGolden: `ferry status --check` as it prints every kind
// of drift (testdata/status-check.golden; -update rewrites it).
func TestStatusCheckGolden(t *testing.T) {
	st := &api.StatusBody{
		Environments: []api.EnvStatus{
			{Name: "dev", Commit: strings.Repeat("a", 40), ShortCommit: strings.Repeat("a", 12), Digest: "sha256:" + strings.Repeat("0", 63) + "1",
				Replicas: api.Replicas{Ready: 1, Desired: 2}, State: "degraded", DeployedBy: "ferry", URL: "http://127.0.0.1:8081"},
			{Name: "prod", Commit: strings.Repeat("a", 40), ShortCommit: strings.Repeat("a", 12), Digest: "sha256:" + strings.Repeat("0", 63) + "1",
				Release: "RC20261126_2350", Replicas: api.Replicas{Ready: 2, Desired: 2}, State: "healthy", DeployedBy: "ada", URL: "http://127.0.0.1:8082"},
		},
		Drift:   readDriftGolden(t),
		Checked: true,
	}
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			cmd := &cobra.Command{}
			var got bytes.Buffer
			cmd.SetOut(&got)
			out := output{format: format}
			if err := printStatus(cmd, &out, st); err != nil {
				t.Fatal(err)
			}
			golden := "testdata/status-check." + format + ".golden"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("ferry status --check -o %s =\n%s\nwant (%s)\n%s", format, got.String(), golden, want)
			}
		})
	}
}

// TestStatusShowsAlerts: plain `ferry status` prints every alert the
// server reports (and -o json keeps them), so master red, a release head
// not deployed and an environment lagging its branch are seen without
// --check.
func TestStatusShowsAlerts(t *testing.T) {
	body := api.StatusBody{Environments: []api.EnvStatus{
		{Name: "dev", State: "healthy", Alerts: []ferry.Alert{
			{Kind: ferry.AlertMainlineRed, Message: "master is red: build 9 of bbbbbbbbbbbb failed; see ferry logs build 9"},
			{Kind: ferry.AlertLagging, Message: "dev runs aaaaaaaaaaaa, not master's newest succeeded build 8 (cccccccccccc); see ferry history dev"},
		}},
		{Name: "prod", State: "healthy", Alert: "eeeeeeeeeeee was pushed to release but is not deployed"}, // an older server: no list
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("check") {
			t.Errorf("plain ferry status asked for a check: %s", r.URL)
		}
		json.NewEncoder(w).Encode(body)
	}))
	defer srv.Close()
	stdout, stderr, code := run(t, "status", "--server", srv.URL, "--token", "ferry_x")
	if code != 0 {
		t.Fatalf("ferry status: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"ALERT dev mainline-red: master is red: build 9 of bbbbbbbbbbbb failed; see ferry logs build 9",
		"ALERT dev lagging: dev runs aaaaaaaaaaaa, not master's newest succeeded build 8 (cccccccccccc); see ferry history dev",
		"ALERT prod release: eeeeeeeeeeee was pushed to release but is not deployed",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("ferry status printed\n%s\nwant %q", stdout, want)
		}
	}
	stdout, _, code = run(t, "status", "-o", "json", "--server", srv.URL, "--token", "ferry_x")
	if code != 0 || !strings.Contains(stdout, `"kind": "mainline-red"`) || !strings.Contains(stdout, `"kind": "lagging"`) {
		t.Errorf("ferry status -o json = exit %d\n%s\nwant the alerts", code, stdout)
	}
	// Every command an alert suggests parses.
	for _, e := range body.Environments {
		for _, a := range alertsOf(e) {
			if _, cmd, ok := strings.Cut(a.Message, "see "); ok {
				if err := parseCommand(cmd); err != nil {
					t.Errorf("alert %q suggests %q: %v", a.Message, cmd, err)
				}
			}
		}
	}
}
