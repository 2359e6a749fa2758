package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

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
	root := newRoot(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	cmd, rest, err := root.Find(fields[1:])
	if err != nil {
		return err
	}
	if cmd == root || !cmd.Runnable() {
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
			if strings.Contains(d.Fix, "ferry ") || d.Fix == "" {
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
