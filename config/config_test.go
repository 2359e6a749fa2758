package config

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// minimal is the smallest valid file; everything else is a default.
const minimal = `app: demo
source:
  repo: ../repos/demo.git
build:
  go: { main: ./cmd/demo }
environments:
  dev:
    branch: master
    runtime: { local: { listen: ":8081" } }
`

func mustParse(t *testing.T, name, text string) *Config {
	t.Helper()
	c, err := Parse(name, []byte(text))
	if err != nil {
		t.Fatalf("Parse(%s) error:\n%v", name, err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, "/etc/ferry/ferry.yaml", minimal)
	dev := c.Environments[0]
	for _, tt := range []struct {
		field string
		got   any
		want  any
	}{
		{"Path", c.Path, "/etc/ferry/ferry.yaml"},
		{"Dir", c.Dir, "/etc/ferry"},
		{"DataDir", c.DataDir, "/etc/ferry/ferry-data"},
		{"Server.Listen", c.Server.Listen, "127.0.0.1:7070"},
		{"Ledger", c.Ledger, Ledger{URL: "sqlite:///etc/ferry/ferry-data/ledger.db", Engine: "sqlite", Path: "/etc/ferry/ferry-data/ledger.db"}},
		{"Source.Repo", c.Source.Repo, "/etc/repos/demo.git"},
		{"Source.Poll", c.Source.Poll, 30 * time.Second},
		{"Source.WebhookSecret.IsZero", c.Source.WebhookSecret.IsZero(), true},
		{"Registry.Listen", c.Registry.Listen, "127.0.0.1:5050"},
		{"RegistryEmbedded", c.RegistryEmbedded(), true},
		{"ImageRepository", c.ImageRepository(), "127.0.0.1:5050/demo"},
		{"Build.Dir", c.Build.Dir, "."},
		{"Build.Timeout", c.Build.Timeout, 10 * time.Minute},
		{"Build.Test", c.Build.Test, ""},
		{"dev.Role", dev.Role, ferry.RoleDeployer},
		{"dev.Runtime.Kind", dev.Runtime.Kind(), "local"},
		{"dev.Replicas", dev.Replicas, 1},
		{"dev.Local.Listen (loopback added)", dev.Runtime.Local.Listen, "127.0.0.1:8081"},
		{"dev.Local.PortEnv", dev.Runtime.Local.PortEnv, "PORT"},
		{"dev.Local.Readiness", dev.Runtime.Local.Readiness, "/"},
		{"dev.URL", dev.URL, "http://127.0.0.1:8081"},
		{"dev.Rollout", dev.Rollout, ferry.Rollout{MaxSurge: 1, MaxUnavailable: 0, ReadyTimeout: 60 * time.Second, Grace: 30 * time.Second}},
		{"Warnings", len(c.Warnings), 0},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("Parse(minimal).%s = %#v, want %#v", tt.field, tt.got, tt.want)
		}
	}
}

func TestResolvedValues(t *testing.T) {
	c := mustParse(t, "/srv/app/ferry.yaml", `app: demo
dataDir: /var/lib/ferry
ledger: sqlite://state/ferry.db?_pragma=busy_timeout(5000)
source:
  repo: git@git.example.com:team/demo.git
  poll: 0
  webhookSecret: { file: secrets/hook }
registry:
  image: registry.example.com/team/demo
  insecure: true
build:
  dir: services/demo/
  command: make push
  timeout: 1h
environments:
  dev:
    branch: master
    runtime:
      local:
        listen: 127.0.0.1:8081
        replicas: 3
        args: ["-listen", "{{.Addr}}"]
    verify:
      - { http: "GET /statusz" }
      - { http: "HEAD /version?full=1", expect: 204, contains: ok, timeout: 2s }
  prod:
    branch: release
    from: dev
    soak: 10m
    releaseTag: RC{{ .Time.UTC.Format "20060102_1504" }}
    tags: [live]
    runtime:
      kubernetes: { namespace: prod, kubeconfig: kube/config, hpa: demo }
    rollout: { maxSurge: 0, maxUnavailable: 1, readyTimeout: 2m, grace: 0s }
    approval: { required: 2, selfApproval: true, expires: 2h }
    auto: true
    wait: 30m
    windows:
      - { days: Mon-Thu, from: "09:00", to: "16:00", timezone: Europe/Berlin }
      - { days: Fri, from: "09:00", to: "24:00" }
    freeze:
      - { from: 2026-12-20, to: "2027-01-04 09:00", timezone: Europe/Berlin, reason: holidays }
      - { from: 2026-11-27T00:00:00Z, to: 2026-11-28T00:00:00Z, reason: black friday }
notifications:
  - { name: releases, url: "https://hooks.slack.com/services/T/B/x", format: slack, secret: { env: SLACK_SIGNING }, envs: [prod], topics: [pending-approval, released, drift] }
`)
	prod, _ := c.Env("prod")
	dev, _ := c.Env("dev")
	for _, tt := range []struct {
		field string
		got   any
		want  any
	}{
		{"DataDir", c.DataDir, "/var/lib/ferry"},
		{"Ledger", c.Ledger, Ledger{URL: "sqlite:///srv/app/state/ferry.db?_pragma=busy_timeout(5000)", Engine: "sqlite", Path: "/srv/app/state/ferry.db"}},
		{"Source.Repo", c.Source.Repo, "git@git.example.com:team/demo.git"},
		{"Source.Poll", c.Source.Poll, time.Duration(0)},
		{"Source.WebhookSecret", c.Source.WebhookSecret, SecretRef{File: "/srv/app/secrets/hook", Field: "source.webhookSecret"}},
		{"RegistryEmbedded", c.RegistryEmbedded(), false},
		{"ImageRepository", c.ImageRepository(), "registry.example.com/team/demo"},
		{"Registry.Insecure", c.Registry.Insecure, true},
		{"Build.Dir", c.Build.Dir, "services/demo"},
		{"Build.Command", c.Build.Command, "make push"},
		{"Build.Go", c.Build.Go, (*GoBuild)(nil)},
		{"Build.Timeout", c.Build.Timeout, time.Hour},
		{"dev.Local.PortEnv (args carry the port)", dev.Runtime.Local.PortEnv, ""},
		{"dev.Replicas", dev.Replicas, 3},
		{"dev.Verify", dev.Verify, []ferry.Check{
			{Method: "GET", Path: "/statusz", Expect: 200, Timeout: 10 * time.Second},
			{Method: "HEAD", Path: "/version?full=1", Expect: 204, Contains: "ok", Timeout: 2 * time.Second},
		}},
		{"prod.Role", prod.Role, ferry.RoleReleaser},
		{"prod.Soak", prod.Soak, 10 * time.Minute},
		{"prod.Approval", *prod.Approval, ferry.Approval{Required: 2, Role: ferry.RoleReleaser, SelfApproval: true, Expires: 2 * time.Hour}},
		{"dev.Approval", dev.Approval, (*ferry.Approval)(nil)},
		{"prod.Auto", prod.Auto, true},
		{"prod.Wait", prod.Wait, 30 * time.Minute},
		{"prod.Windows[0]", prod.Windows[0].String(), "Mon-Thu 09:00-16:00 Europe/Berlin"},
		{"prod.Windows[1]", prod.Windows[1].String(), "Fri 09:00-24:00 UTC"},
		{"prod.Freezes[0].From", prod.Freezes[0].From.UTC(), time.Date(2026, 12, 19, 23, 0, 0, 0, time.UTC)},
		{"prod.Freezes[0].To", prod.Freezes[0].To.UTC(), time.Date(2027, 1, 4, 8, 0, 0, 0, time.UTC)},
		{"prod.Freezes[0].Reason", prod.Freezes[0].Reason, "holidays"},
		{"Notifications", c.Notifications, []Receiver{{Name: "releases", URL: "https://hooks.slack.com/services/T/B/x", Format: "slack",
			Secret: SecretRef{Env: "SLACK_SIGNING", Field: "notifications[0].secret"}, Envs: []string{"prod"}, Topics: []string{"pending-approval", "released", "drift"}}}},
		{"prod.Freezes[1].To", prod.Freezes[1].To.UTC(), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)},
		{"prod.From", prod.From, "dev"},
		{"prod.Gated", prod.Gated(), true},
		{"dev.Gated", dev.Gated(), false},
		{"prod.Runtime.Kind", prod.Runtime.Kind(), "kubernetes"},
		{"prod.Kubernetes", *prod.Runtime.Kubernetes, Kubernetes{Namespace: "prod", Deployment: "demo", Kubeconfig: "/srv/app/kube/config", HPA: "demo"}},
		{"prod.URL", prod.URL, ""},
		{"prod.Rollout", prod.Rollout, ferry.Rollout{MaxSurge: 0, MaxUnavailable: 1, ReadyTimeout: 2 * time.Minute, Grace: 0}},
		{"Branches", c.Branches(), []string{"master", "release"}},
		{"BuildBranches", c.BuildBranches(), []string{"master"}},
		{"Downstream(dev)", c.Downstream("dev"), []string{"prod"}},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("Parse(full).%s = %#v, want %#v", tt.field, tt.got, tt.want)
		}
	}
	if got, ok := c.Env("dve"); ok || got != nil {
		t.Errorf(`Env("dve") = %v, %v, want nil, false`, got, ok)
	}
}

func TestEnvironmentsKeepFileOrder(t *testing.T) {
	c := mustParse(t, "ferry.yaml", `app: demo
source: { repo: /srv/demo.git }
build: { command: make }
environments:
  zeta:    { branch: z, runtime: { local: { listen: 127.0.0.1:9001 } } }
  prod:    { from: canary, runtime: { local: { listen: 127.0.0.1:9002 } } }
  alpha:   { branch: a, runtime: { local: { listen: 127.0.0.1:9003 } } }
  canary:  { from: alpha, branch: canary, runtime: { local: { listen: 127.0.0.1:9004 } } }
`)
	want := []string{"zeta", "prod", "alpha", "canary"}
	if got := c.EnvNames(); !slices.Equal(got, want) {
		t.Errorf("EnvNames() = %v, want %v", got, want)
	}
	if got, want := c.Branches(), []string{"z", "a", "canary"}; !slices.Equal(got, want) {
		t.Errorf("Branches() = %v, want %v", got, want)
	}
}

func TestBranchesDeduplicates(t *testing.T) {
	c := &Config{Environments: []*Environment{env("a", "master"), env("b", ""), env("c", "master"), env("d", "release")}}
	if got, want := c.Branches(), []string{"master", "release"}; !slices.Equal(got, want) {
		t.Errorf("Branches() = %v, want %v", got, want)
	}
}

func TestWarnings(t *testing.T) {
	c := mustParse(t, "ferry.yaml", `app: demo
source:
  repo: /srv/demo.git
  webhookSecret: s3cret
build: { command: make }
environments:
  dev:
    branch: master
    runtime: { local: { listen: 0.0.0.0:8081 } }
  prod:
    from: dev
    runtime: { local: { listen: ":8082" } }
  k8s:
    from: prod
    runtime: { kubernetes: { namespace: prod } }
    env: { A: b }
`)
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		`ferry.yaml:4: source.webhookSecret: secret written into the file; prefer { env: NAME } or { file: PATH }`,
		`ferry.yaml:9: environments.dev.runtime.local.listen: 0.0.0.0:8081 is reachable beyond this machine; an environment without from (like dev) usually listens on loopback only`,
		`ferry.yaml:16: environments.k8s.env: ignored by the kubernetes runtime: the Deployment's manifest owns the container's environment`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if prod, _ := c.Env("prod"); prod.Runtime.Local.Listen != ":8082" {
		t.Errorf("prod listen = %q, want %q (gated environments keep an empty host)", prod.Runtime.Local.Listen, ":8082")
	}
}

func TestWarningsAccompanyErrors(t *testing.T) {
	_, err := Parse("ferry.yaml", []byte(`app: demo
source: { repo: /srv/demo.git, webhookSecret: s3cret }
build: { command: make }
`))
	e, ok := errors.AsType[*Error](err)
	if !ok || len(e.Warnings) != 1 || e.Warnings[0].Field != "source.webhookSecret" {
		t.Fatalf("Parse() error = %#v, want *Error with the webhookSecret warning", err)
	}
}

func TestExampleParses(t *testing.T) {
	c, err := Parse("/srv/ferry/ferry.yaml", []byte(Example()))
	if err != nil {
		t.Fatalf("Parse(Example()) error:\n%v", err)
	}
	if len(c.Warnings) > 0 {
		t.Errorf("Parse(Example()) warnings = %v, want none", c.Warnings)
	}
	if got, want := c.EnvNames(), []string{"dev", "prod"}; !slices.Equal(got, want) {
		t.Errorf("Example environments = %v, want %v", got, want)
	}
	tag, err := mustEnv(t, c, "prod").ReleaseName(time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600)))
	if err != nil || tag != "RC20260304_0406" {
		t.Errorf("prod.ReleaseName(2026-03-04 05:06 CET) = %q, %v, want RC20260304_0406 (UTC)", tag, err)
	}
	args, err := mustEnv(t, c, "dev").Runtime.Local.RenderArgs(ReplicaData{Env: "dev", Replica: 1, Host: "127.0.0.1", Port: 41234, Addr: "127.0.0.1:41234"})
	if err != nil || !slices.Equal(args, []string{"-listen", "127.0.0.1:41234"}) {
		t.Errorf("dev.RenderArgs(port 41234) = %q, %v, want [-listen 127.0.0.1:41234]", args, err)
	}
}

// TestExampleMatchesDocs keeps docs/config.md's copy of the example in step.
func TestExampleMatchesDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+Example()+"```") {
		t.Errorf("docs/config.md does not contain Example() verbatim in a yaml block; copy it from config/example.go")
	}
}

func mustEnv(t *testing.T, c *Config, name string) *Environment {
	t.Helper()
	e, ok := c.Env(name)
	if !ok {
		t.Fatalf("Env(%q) not found", name)
	}
	return e
}

func TestLoadResolvesAgainstTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "conf", "ferry.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(minimal), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "conf", "ferry-data"); c.DataDir != want {
		t.Errorf("Load().DataDir = %q, want %q", c.DataDir, want)
	}
	if want := filepath.Join(dir, "repos", "demo.git"); c.Source.Repo != want {
		t.Errorf("Load().Source.Repo = %q, want %q", c.Source.Repo, want)
	}
}

func TestSecretResolve(t *testing.T) {
	env := map[string]string{"DEV_API_KEY": "k-123"}
	files := map[string]string{"/run/secrets/db": "postgres://u:p@db/app\n", "/run/secrets/empty": "\n"}
	getenv := func(k string) string { return env[k] }
	readFile := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	c := mustParse(t, "/etc/ferry/ferry.yaml", `app: demo
source: { repo: /srv/demo.git, webhookSecret: { env: FERRY_WEBHOOK_SECRET } }
build: { command: make }
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    env:
      PLAIN: "sqlite:///var/lib/ferry/dev.db"
      API_KEY: { secret: { env: DEV_API_KEY } }
      DATABASE_URL: { secret: { file: /run/secrets/db } }
      EMPTY: { secret: { file: /run/secrets/empty } }
      GONE: { secret: { file: missing/db } }
      NUMBER: 8080
      NOTHING:
`)
	dev := mustEnv(t, c, "dev")
	tests := []struct {
		name    string
		ref     SecretRef
		want    string
		wantErr string
	}{
		{"env", *dev.Env[1].Secret, "k-123", ""},
		{"file drops one newline", *dev.Env[2].Secret, "postgres://u:p@db/app", ""},
		{"empty file", *dev.Env[3].Secret, "", "environments.dev.env.EMPTY: secret file /run/secrets/empty is empty"},
		{"missing file (relative to the config)", *dev.Env[4].Secret, "", "environments.dev.env.GONE: read secret file /etc/ferry/missing/db: file does not exist"},
		{"unset variable", c.Source.WebhookSecret, "", "source.webhookSecret: environment variable FERRY_WEBHOOK_SECRET is not set"},
		{"literal", SecretRef{Literal: "x", Field: "f"}, "x", ""},
		{"zero", SecretRef{Field: "f"}, "", "f: no secret configured"},
	}
	for _, tt := range tests {
		got, err := tt.ref.Resolve(getenv, readFile)
		if got != tt.want || errString(err) != tt.wantErr {
			t.Errorf("%s: Resolve() = %q, %q; want %q, %q", tt.name, got, errString(err), tt.want, tt.wantErr)
		}
	}
	wantPlain := []EnvVar{{Name: "PLAIN", Value: "sqlite:///var/lib/ferry/dev.db"}, {Name: "NUMBER", Value: "8080"}, {Name: "NOTHING"}}
	var plain []EnvVar
	for _, v := range dev.Env {
		if v.Secret == nil {
			plain = append(plain, v)
		}
	}
	if !reflect.DeepEqual(plain, wantPlain) {
		t.Errorf("plain env = %+v, want %+v", plain, wantPlain)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestRedacted compares the logged view with testdata/redacted.golden (go
// test ./config -run Redacted -update rewrites it) and checks that no
// secret value or URL password leaks into it.
func TestRedacted(t *testing.T) {
	c := mustParse(t, "/etc/ferry/ferry.yaml", `app: demo
ledger: postgres://ferry:ledger-pass@db.internal:5432/ferry?sslmode=require
source:
  repo: https://bot:repo-token@git.example.com/team/demo.git
  webhookSecret: hook-literal
build:
  test: go test ./...
  go: { main: ./cmd/demo, ldflags: "-X main.commit={{.Commit}}", env: [GOFLAGS=-mod=mod] }
environments:
  dev:
    branch: master
    tags: [latest]
    runtime: { local: { replicas: 2, listen: 127.0.0.1:8081, port: { env: PORT }, readiness: /statusz } }
    env:
      DATABASE_URL: "postgres://app:db-pass@db.internal/dev"
      API_KEY: { secret: { env: DEV_API_KEY } }
      TOKEN: { secret: { file: /run/secrets/token } }
      LOG_LEVEL: debug
    verify: [ { http: "GET /statusz" } ]
  prod:
    branch: release
    from: dev
    soak: 10m
    releaseTag: RC{{ .Time.UTC.Format "20060102_1504" }}
    tags: [live]
    runtime: { kubernetes: { namespace: prod, container: app, context: prod-cluster } }
`)
	got := c.Redacted()
	for _, secret := range []string{"ledger-pass", "repo-token", "hook-literal", "db-pass"} {
		if strings.Contains(got, secret) {
			t.Errorf("Redacted() contains %q:\n%s", secret, got)
		}
	}
	if c.String() != got {
		t.Errorf("String() differs from Redacted()")
	}
	golden := filepath.Join("testdata", "redacted.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("Redacted() =\n%s\nwant (%s)\n%s", got, golden, want)
	}
}

func TestAliases(t *testing.T) {
	c := mustParse(t, "ferry.yaml", `app: demo
source: { repo: /srv/demo.git }
build: { command: make }
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    verify: &checks
      - { http: "GET /statusz" }
    rollout: &rollout { maxSurge: 2, readyTimeout: 5s }
  prod:
    from: dev
    runtime: { local: { listen: 127.0.0.1:8082 } }
    verify: *checks
    rollout: *rollout
`)
	dev, prod := mustEnv(t, c, "dev"), mustEnv(t, c, "prod")
	if !reflect.DeepEqual(prod.Verify, dev.Verify) || len(prod.Verify) != 1 {
		t.Errorf("prod.Verify = %+v, want dev's %+v", prod.Verify, dev.Verify)
	}
	if want := (ferry.Rollout{MaxSurge: 2, ReadyTimeout: 5 * time.Second, Grace: ferry.DefaultGrace}); prod.Rollout != want {
		t.Errorf("prod.Rollout = %+v, want %+v", prod.Rollout, want)
	}
}

func TestBranchProblem(t *testing.T) {
	for _, tt := range []struct{ branch, want string }{
		{"master", ""},
		{"release/2026-q1", ""},
		{"-x", "must not start with a dash"},
		{"a//b", "has an empty path component"},
		{"x/", "has an empty path component"},
		{"main.lock", `must not end with "." or ".lock"`},
		{"a..b", `must not contain ".." or "@{"`},
		{"a@{1}", `must not contain ".." or "@{"`},
		{"a~1", `must not contain '~'`},
		{"a:b", `must not contain ':'`},
		{"x/.hidden", `a path component must not start with "."`},
		{"HEAD", `"HEAD" is not a branch`},
	} {
		if got := branchProblem(tt.branch); got != tt.want {
			t.Errorf("branchProblem(%q) = %q, want %q", tt.branch, got, tt.want)
		}
	}
}

func BenchmarkParseExample(b *testing.B) {
	data := []byte(Example())
	for b.Loop() {
		if _, err := Parse("/srv/ferry/ferry.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestURLOfPortZero: a balancer on port 0 gets its port when it listens,
// so the configuration leaves the URL to the server then.
func TestURLOfPortZero(t *testing.T) {
	for _, tc := range []struct{ listen, want string }{
		{":8081", "http://127.0.0.1:8081"},
		{"127.0.0.1:0", ""},
		{":0", ""},
	} {
		c := mustParse(t, "ferry.yaml", strings.Replace(minimal, `":8081"`, `"`+tc.listen+`"`, 1))
		if got := c.Environments[0].URL; got != tc.want {
			t.Errorf("URL with listen %q = %q, want %q", tc.listen, got, tc.want)
		}
	}
}

func env(name, branch string) *Environment {
	return &Environment{Environment: ferry.Environment{Name: name, Branch: branch}}
}

func TestParseIntegrationAndRichChecks(t *testing.T) {
	c := mustParse(t, "ferry.yaml", `app: demo
source: { repo: /srv/demo.git }
build:
  command: make image
  integration:
    env: { DATABASE_URL: sqlite://trial.db }
    checks:
      - { http: PUT /hello/ada, headers: { Content-Type: application/json }, body: '{"dateOfBirth":"1990-05-17"}', expect: 204 }
      - { http: GET /hello/ada, json: { field: message, contains: "Hello, ada" } }
    command: go test ./e2e/...
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`)
	in := c.Build.Integration
	if in == nil {
		t.Fatal("Build.Integration = nil")
	}
	want := []ferry.Check{
		{Method: "PUT", Path: "/hello/ada", Headers: []ferry.Header{{Name: "Content-Type", Value: "application/json"}},
			Body: `{"dateOfBirth":"1990-05-17"}`, Expect: 204, Timeout: ferry.DefaultCheckTimeout},
		{Method: "GET", Path: "/hello/ada", Expect: 200, JSON: &ferry.JSONCheck{Field: "message", Contains: "Hello, ada"}, Timeout: ferry.DefaultCheckTimeout},
	}
	if !reflect.DeepEqual(in.Checks, want) {
		t.Errorf("integration checks = %+v, want %+v", in.Checks, want)
	}
	if in.Command != "go test ./e2e/..." || in.Timeout != DefaultIntegrationTimeout || len(in.Env) != 1 || in.Env[0].Value != "sqlite://trial.db" {
		t.Errorf("integration = %+v", in)
	}
	if v := c.Redacted(); !strings.Contains(v, `PUT /hello/ada (1 header, body) → 204 within 10s`) || !strings.Contains(v, `GET /hello/ada → 200, JSON message contains "Hello, ada" within 10s`) {
		t.Errorf("Redacted() does not show the checks:\n%s", v)
	}
}

// TestPolicyExample: the three-stage policy of docs/config.md (approval,
// window, freeze, wait and auto in 22 lines) parses as it says.
func TestPolicyExample(t *testing.T) {
	data, err := os.ReadFile("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("testdata/policy.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	staging, _ := c.Env("staging")
	prod, _ := c.Env("prod")
	if !staging.Auto || staging.Wait != 30*time.Minute || staging.From != "dev" {
		t.Errorf("staging = auto %v wait %s from %s", staging.Auto, staging.Wait, staging.From)
	}
	if prod.Approval == nil || prod.Approval.Required != 1 || len(prod.Windows) != 1 || prod.Windows[0].String() != "Mon-Thu 09:00-16:00 Europe/Berlin" ||
		len(prod.Freezes) != 1 || prod.Freezes[0].Reason != "year end" || prod.From != "staging" {
		t.Errorf("prod = %+v", prod.Environment)
	}
	if len(c.Notifications) != 1 || c.Notifications[0].Envs[0] != "prod" {
		t.Errorf("notifications = %+v", c.Notifications)
	}
}
