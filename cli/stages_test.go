package cli

import (
	"context"
	"os"
	"testing"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/demo"
)

// TestDemoStagesConfig: the ferry.yaml of ferry demo --stages
// dev,staging,prod is valid, and chains the three: staging promoted from
// dev, prod from staging, released from master's history, prod the one
// production environment.
func TestDemoStagesConfig(t *testing.T) {
	l, err := demo.PrepareStages(context.Background(), t.TempDir(), "../examples/birthday-app", demo.DefaultPorts, []string{"dev", "staging", "prod"}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(l.Config, b)
	if err != nil {
		t.Fatalf("the demo's three-stage ferry.yaml: %v", err)
	}
	var envs []ferry.Environment
	for _, e := range cfg.Environments {
		envs = append(envs, e.Environment)
	}
	if got := len(envs); got != 3 || envs[1].Name != "staging" || envs[1].From != "dev" || envs[2].From != "staging" || envs[2].Branch != "release" {
		t.Fatalf("environments = %+v, want dev → staging → prod", envs)
	}
	if m := ferry.Mainline(envs, "prod"); m != "master" {
		t.Errorf("prod's mainline = %q, want master", m)
	}
	if p := ferry.Production(envs); len(p) != 1 || p[0] != "prod" {
		t.Errorf("production = %v, want [prod]", p)
	}
}
