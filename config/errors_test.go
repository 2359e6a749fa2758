package config

import (
	"errors"
	"strings"
	"testing"
)

// head is the first five lines of every case below, so that line numbers in
// the wanted messages can be read off the case: environments start at line 6.
const head = `app: demo
source:
  repo: /srv/demo.git
build:
  go: { main: ./cmd/demo }
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // the rendered error, one problem per line
	}{
		{"app missing", `source: { repo: /srv/demo.git }
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:1: app: required`},
		{"app format", "app: Birthday_App\n" + head[len("app: demo\n"):] + `environments:
  dev: { branch: master, runtime: { local: { listen: ":8081" } } }
`, `ferry.yaml:1: app: invalid name "Birthday_App" (want lowercase letters, digits and dashes, like "birthday-app")`},
		{"source missing", `app: demo
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:1: source: required`},
		{"source not a mapping", `app: demo
source: /srv/demo.git
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:2: source: want a mapping, got "/srv/demo.git"`},
		{"runtime not a mapping", head + `environments:
  dev:
    branch: master
    runtime: local
`, `ferry.yaml:9: environments.dev.runtime: want a mapping, got "local"`},
		{"source.repo missing", `app: demo
source:
  poll: 10s
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:2: source.repo: required`},
		{"repo scheme", `app: demo
source:
  repo: ftp://example.com/demo.git
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:3: source.repo: unsupported scheme "ftp" (want a local path, file://, https://, ssh:// or git@host:path)`},
		{"repo without host", `app: demo
source:
  repo: https:///demo.git
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:3: source.repo: URL without a host`},
		{"poll without unit", `app: demo
source:
  repo: /srv/demo.git
  poll: 30
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:4: source.poll: invalid duration "30" (want a number and a unit, like 30s or 10m)`},
		{"poll negative", `app: demo
source:
  repo: /srv/demo.git
  poll: -5s
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:4: source.poll: must not be negative`},
		{"webhook secret both", `app: demo
source:
  repo: /srv/demo.git
  webhookSecret: { env: HOOK, file: /run/hook }
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:4: source.webhookSecret: set env or file, not both`},
		{"webhook secret bad env name", `app: demo
source:
  repo: /srv/demo.git
  webhookSecret: { env: 1HOOK }
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:4: source.webhookSecret.env: invalid variable name "1HOOK"`},
		{"server listen", `app: demo
server:
  listen: localhost
source: { repo: /srv/demo.git }
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:3: server.listen: "localhost" is not a host:port address`},
		{"server publicURL", `app: demo
server:
  publicURL: ferry.example.com
source: { repo: /srv/demo.git }
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:3: server.publicURL: "ferry.example.com" is not an absolute http:// or https:// URL`},
		{"server advertise wildcard", `app: demo
server:
  advertise: 0.0.0.0:7070
source: { repo: /srv/demo.git }
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:3: server.advertise: "0.0.0.0:7070": want the host:port other servers reach this one at, with a host and a port (not a wildcard or port 0)`},
		{"ledger scheme", `app: demo
ledger: mysql://u:secret@db/ferry
source: { repo: /srv/demo.git }
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:2: ledger: unsupported scheme "mysql" (want sqlite://PATH or postgres://…)`},
		{"registry image with tag", `app: demo
registry:
  image: registry.example.com/team/demo:v1
source: { repo: /srv/demo.git }
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:3: registry.image: want a repository without tag or digest, got "registry.example.com/team/demo:v1"`},
		{"registry insecure not bool", `app: demo
registry:
  insecure: maybe
source: { repo: /srv/demo.git }
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:3: registry.insecure: want true or false, got "maybe"`},
		{"build missing", `app: demo
source: { repo: /srv/demo.git }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:1: build: required`},
		{"build neither go nor command", `app: demo
source: { repo: /srv/demo.git }
build:
  test: go test ./...
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:3: build: one of go or command is required`},
		{"build both go and command", `app: demo
source: { repo: /srv/demo.git }
build:
  go: { main: ./cmd/demo }
  command: make image
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:5: build: set go or command, not both`},
		{"build.go.main missing", `app: demo
source: { repo: /srv/demo.git }
build:
  go:
    ldflags: -s -w
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:4: build.go.main: required`},
		{"ldflags template syntax", `app: demo
source: { repo: /srv/demo.git }
build:
  go:
    main: ./cmd/demo
    ldflags: -X main.commit={{.Commit}
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:6: build.go.ldflags: bad template: bad character U+007D '}'`},
		{"ldflags template field", `app: demo
source: { repo: /srv/demo.git }
build:
  go:
    main: ./cmd/demo
    ldflags: -X main.commit={{.Comit}}
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:6: build.go.ldflags: bad template: executing "ldflags" at <.Comit>: can't evaluate field Comit in type ferry.TemplateData`},
		{"integration asks nothing", `app: demo
source: { repo: /srv/demo.git }
build:
  command: make image
  integration: { env: { DB: sqlite://t.db } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:5: build.integration: needs checks, a command, or both: the trial run of the image must be asked something`},
		{"check header name", `app: demo
source: { repo: /srv/demo.git }
build:
  command: make image
  integration:
    checks: [ { http: PUT /x, headers: { "Bad Name": 1 }, expect: 204 } ]
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:6: build.integration.checks[0].headers.Bad Name: invalid header name`},
		{"check json without field", `app: demo
source: { repo: /srv/demo.git }
build: { command: make image }
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    verify: [ { http: GET /x, json: { equals: ok } } ]
`, `ferry.yaml:8: environments.dev.verify[0].json.field: required`},
		{"check json field path", `app: demo
source: { repo: /srv/demo.git }
build: { command: make image }
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    verify: [ { http: GET /x, json: { field: "a..b", equals: ok } } ]
`, `ferry.yaml:8: environments.dev.verify[0].json.field: want a dotted path of names or indexes (user.name, items.0.id), got "a..b"`},
		{"go env entry", `app: demo
source: { repo: /srv/demo.git }
build:
  go:
    main: ./cmd/demo
    env: [GOFLAGS=-mod=vendor, CGO]
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:6: build.go.env[1]: want NAME=VALUE, got "CGO"`},
		{"build timeout zero", `app: demo
source: { repo: /srv/demo.git }
build:
  command: make image
  timeout: 0s
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:5: build.timeout: must be positive`},
		{"build dir escapes", `app: demo
source: { repo: /srv/demo.git }
build:
  dir: ../other
  command: make image
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, `ferry.yaml:4: build.dir: want a path inside the repository, got "../other"`},
		{"environments missing", head, `ferry.yaml:1: environments: at least one environment is required`},
		{"environments empty", head + "environments: {}\n", `ferry.yaml:6: environments: at least one environment is required`},
		{"environment name", head + `environments:
  Dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:7: environments.Dev: invalid environment name (want a lowercase letter, then lowercase letters, digits or dashes)`},
		{"neither branch nor from", head + `environments:
  dev:
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:7: environments.dev: needs a branch, a from, or both`},
		{"unknown field with suggestion", head + `environments:
  dev:
    branch: master
    brnch: main
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.brnch: unknown field (did you mean "branch"?)`},
		{"unknown field without suggestion", head + `environments:
  dev:
    branch: master
    colour: blue
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.colour: unknown field`},
		{"unknown top-level field, case", head + `webhooksecret: x
environments:
  dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } }
`, `ferry.yaml:6: webhooksecret: unknown field`},
		{"unknown field, wrong case", `app: demo
Source: { repo: /srv/demo.git }
build: { go: { main: . } }
environments: { dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } } }
`, "ferry.yaml:1: source: required\nferry.yaml:2: Source: unknown field (did you mean \"source\"?)"},
		{"duplicate field", head + `environments:
  dev:
    branch: master
    branch: main
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.branch: duplicate field (first at line 8)`},
		{"unknown from", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    branch: release
    from: dve
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, `ferry.yaml:12: environments.prod.from: unknown environment "dve" (did you mean "dev"?)`},
		{"from itself", head + `environments:
  dev:
    branch: master
    from: dev
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.from: an environment cannot follow itself`},
		{"from cycle", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  staging:
    from: prod
    runtime: { local: { listen: 127.0.0.1:8082 } }
  prod:
    from: staging
    runtime: { local: { listen: 127.0.0.1:8083 } }
`, `ferry.yaml:11: environments.staging.from: cycle staging → prod → staging`},
		{"branch drives two environments", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  qa:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, `ferry.yaml:11: environments.qa.branch: branch "master" already drives environment "dev"`},
		{"branch is a ref", head + `environments:
  dev:
    branch: refs/heads/master
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:8: environments.dev.branch: want a branch name like "master", not a ref`},
		{"branch with space", head + `environments:
  dev:
    branch: "my branch"
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:8: environments.dev.branch: must not contain ' '`},
		{"soak without from", head + `environments:
  dev:
    branch: master
    soak: 10m
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.soak: needs from: soak is how long a digest ran in the upstream environment`},
		{"approval without from", head + `environments:
  dev:
    branch: master
    approval: { required: 1 }
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.approval: needs from: only an environment that takes promotions waits for approvals`},
		{"approval required zero", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    approval: { required: 0 }
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, `ferry.yaml:12: environments.prod.approval.required: must be between 1 and 10, not 0`},
		{"approval role misspelled", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    approval: { role: relaser }
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, `ferry.yaml:12: environments.prod.approval.role: unknown approver role "relaser" (want one of "deployer", "releaser", "admin") (did you mean "releaser"?)`},
		{"approval expires zero", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    approval: { expires: 0s }
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, `ferry.yaml:12: environments.prod.approval.expires: must be positive`},
		{"approval unknown field", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    approval: { requried: 2 }
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, `ferry.yaml:12: environments.prod.approval.requried: unknown field (did you mean "required"?)`},
		{"window days misspelled", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    windows: [ { days: Mon-Thrs, from: "09:00", to: "16:00" } ]
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, "ferry.yaml:12: environments.prod.windows[0].days: unknown day \"Thrs\" (want Mon, Tue, Wed, Thu, Fri, Sat or Sun)"},
		{"window from not a time", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    windows: [ { days: Mon, from: "9am", to: "16:00" } ]
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, "ferry.yaml:12: environments.prod.windows[0].from: want a time of day HH:MM like \"09:00\" (quoted), got \"9am\""},
		{"window backwards", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    windows: [ { days: Mon, from: "16:00", to: "09:00" } ]
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, "ferry.yaml:12: environments.prod.windows[0].to: must be after from (16:00); for a window over midnight use two windows"},
		{"window unknown zone", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    windows: [ { days: Mon, from: "09:00", to: "16:00", timezone: Europe/Berlinn } ]
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, "ferry.yaml:12: environments.prod.windows[0].timezone: unknown time zone \"Europe/Berlinn\" (want an IANA name like Europe/Berlin or UTC)"},
		{"window without days", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    windows: [ { from: "09:00", to: "16:00" } ]
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, "ferry.yaml:12: environments.prod.windows[0].days: required"},
		{"freeze bad date", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    freeze: [ { from: 2026-13-01, to: 2026-12-02, reason: x } ]
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, "ferry.yaml:12: environments.prod.freeze[0].from: want a date or time like 2026-12-20, \"2026-12-20 18:00\" or 2026-12-20T18:00:00Z, got \"2026-13-01\""},
		{"freeze backwards", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    freeze: [ { from: 2026-12-02, to: 2026-12-01, reason: x } ]
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, "ferry.yaml:12: environments.prod.freeze[0].to: must be after from"},
		{"freeze without reason", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    freeze: [ { from: 2026-12-01, to: 2026-12-02 } ]
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, "ferry.yaml:12: environments.prod.freeze[0].reason: required"},
		{"windows without from", head + `environments:
  dev:
    branch: master
    windows: [ { days: Mon, from: "09:00", to: "16:00" } ]
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.windows: needs from: release windows govern promotions`},
		{"notification of an unknown environment", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
notifications:
  - { name: ops, url: "http://127.0.0.1:9/hook", secret: { env: S }, envs: [prd], topics: [relesed] }
`, "ferry.yaml:11: notifications[0].envs[0]: unknown environment \"prd\" (environments: dev)\nferry.yaml:11: notifications[0].topics[0]: unknown topic \"relesed\" (want one of \"pending-approval\", \"approved\", \"released\", \"failed\", \"rolled-back\", \"locked\", \"canary-paused\", \"drift\") (did you mean \"released\"?)"},
		{"notification without a secret", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
notifications:
  - { name: ops, url: "ftp://x" }
`, "ferry.yaml:11: notifications[0].url: \"ftp://x\" is not an absolute http:// or https:// URL\nferry.yaml:11: notifications[0].secret: required: every notification is signed (X-Ferry-Signature); give { env: NAME } or { file: PATH }"},
		{"wait without auto", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    wait: 30m
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, `ferry.yaml:12: environments.prod.wait: needs auto: true: wait is how long ferry waits before it promotes by itself (soak holds back every promotion)`},
		{"auto without from", head + `environments:
  dev:
    branch: master
    auto: true
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.auto: needs from: auto is about promotions from the upstream environment`},
		{"releaseTag renders invalid tag", head + `environments:
  dev:
    branch: master
    releaseTag: 'RC {{ .Time.UTC.Format "2006-01-02" }}'
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.releaseTag: renders "RC 2025-12-31", not a valid tag (want [A-Za-z0-9_][A-Za-z0-9._-]{0,127})`},
		{"releaseTag bad template", head + `environments:
  dev:
    branch: master
    releaseTag: 'RC{{ .Time.UTC.Format "20060102" '
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.releaseTag: bad template: unclosed action`},
		{"releaseTag reserved", head + `environments:
  dev:
    branch: master
    releaseTag: 'sha-{{ .Commit }}'
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.releaseTag: renders "sha-0123456789abcdef0123456789abcdef01234567", which is reserved: sha-… tags name builds`},
		{"tag invalid", head + `environments:
  dev:
    branch: master
    tags: [latest, "-live"]
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.tags[1]: "-live" is not a valid tag (want [A-Za-z0-9_][A-Za-z0-9._-]{0,127})`},
		{"tag reserved sha", head + `environments:
  dev:
    branch: master
    tags:
      - sha-latest
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:10: environments.dev.tags[0]: "sha-latest" is reserved: sha-… tags name builds`},
		{"tag reserved short commit", head + `environments:
  dev:
    branch: master
    tags: [0123456789ab]
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.tags[0]: "0123456789ab" is reserved: 12-hex tags name builds`},
		{"tag shared by two environments", head + `environments:
  dev:
    branch: master
    tags: [latest]
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    tags: [live, latest]
    runtime: { local: { listen: 127.0.0.1:8082 } }
`, `ferry.yaml:13: environments.prod.tags[1]: tag "latest" already follows environment "dev"`},
		{"tags not a list", head + `environments:
  dev:
    branch: master
    tags: latest
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.tags: want a list, got "latest"`},
		{"role unknown", head + `environments:
  dev:
    branch: master
    role: relaser
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.role: unknown role "relaser" (want one of "deployer", "releaser", "admin") (did you mean "releaser"?)`},
		{"runtime missing", head + `environments:
  dev:
    branch: master
`, `ferry.yaml:7: environments.dev.runtime: required`},
		{"runtime empty", head + `environments:
  dev:
    branch: master
    runtime: {}
`, `ferry.yaml:9: environments.dev.runtime: one of local or kubernetes is required`},
		{"runtime both", head + `environments:
  dev:
    branch: master
    runtime:
      local: { listen: 127.0.0.1:8081 }
      kubernetes: { namespace: dev }
`, `ferry.yaml:11: environments.dev.runtime: set local or kubernetes, not both`},
		{"local listen missing", head + `environments:
  dev:
    branch: master
    runtime:
      local:
        replicas: 2
`, `ferry.yaml:10: environments.dev.runtime.local.listen: required`},
		{"local listen bad port", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: "127.0.0.1:80801" } }
`, `ferry.yaml:9: environments.dev.runtime.local.listen: "127.0.0.1:80801" has an invalid port`},
		{"replicas zero", head + `environments:
  dev:
    branch: master
    runtime:
      local:
        listen: 127.0.0.1:8081
        replicas: 0
`, `ferry.yaml:12: environments.dev.runtime.local.replicas: must be at least 1`},
		{"replicas not a number", head + `environments:
  dev:
    branch: master
    runtime:
      local:
        listen: 127.0.0.1:8081
        replicas: two
`, `ferry.yaml:12: environments.dev.runtime.local.replicas: want an integer, got "two"`},
		{"resources memory without unit sense", head + `environments:
  dev:
    branch: master
    runtime:
      local:
        listen: 127.0.0.1:8081
        resources: { memory: lots }
`, `ferry.yaml:12: environments.dev.runtime.local.resources.memory: invalid memory "lots" (want bytes or a number with a unit: 256Mi, 1Gi, 500M)`},
		{"resources memory too small", head + `environments:
  dev:
    branch: master
    runtime:
      local:
        listen: 127.0.0.1:8081
        resources: { memory: 4Mi }
`, `ferry.yaml:12: environments.dev.runtime.local.resources.memory: memory "4Mi" is below the minimum of 32Mi`},
		{"resources cpu bad", head + `environments:
  dev:
    branch: master
    runtime:
      local:
        listen: 127.0.0.1:8081
        resources: { cpu: -1 }
`, `ferry.yaml:12: environments.dev.runtime.local.resources.cpu: invalid cpu "-1" (want cores, like 0.5 or 2, or millicores, like 500m)`},
		{"resources cpu too small", head + `environments:
  dev:
    branch: master
    runtime:
      local:
        listen: 127.0.0.1:8081
        resources: { cpu: 1m }
`, `ferry.yaml:12: environments.dev.runtime.local.resources.cpu: cpu "1m" is below the minimum of 10m`},
		{"resources pids too few", head + `environments:
  dev:
    branch: master
    runtime:
      local:
        listen: 127.0.0.1:8081
        resources: { pids: 3 }
`, `ferry.yaml:12: environments.dev.runtime.local.resources.pids: must be at least 16: the runtime and the app's own threads count too`},
		{"resources unknown key", head + `environments:
  dev:
    branch: master
    runtime:
      local:
        listen: 127.0.0.1:8081
        resources: { memroy: 1Gi }
`, `ferry.yaml:12: environments.dev.runtime.local.resources.memroy: unknown field (did you mean "memory"?)`},
		{"listen shared by environments", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    runtime: { local: { listen: ":8081" } }
`, `ferry.yaml:12: environments.prod.runtime.local.listen: :8081 is already taken by environments.dev.runtime.local.listen (127.0.0.1:8081)`},
		{"listen shared with server", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: "localhost:7070" } }
`, `ferry.yaml:9: environments.dev.runtime.local.listen: localhost:7070 is already taken by server.listen (127.0.0.1:7070)`},
		{"listen shared with embedded registry", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:5050 } }
`, `ferry.yaml:9: environments.dev.runtime.local.listen: 127.0.0.1:5050 is already taken by registry.listen (127.0.0.1:5050)`},
		{"port env name", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081, port: { env: 9PORT } } }
`, `ferry.yaml:9: environments.dev.runtime.local.port.env: invalid variable name "9PORT"`},
		{"args template", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081, args: ["-listen", "{{.Adress}}"] } }
`, `ferry.yaml:9: environments.dev.runtime.local.args[1]: bad template: executing "args" at <.Adress>: can't evaluate field Adress in type config.ReplicaData`},
		{"readiness path", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081, readiness: statusz } }
`, `ferry.yaml:9: environments.dev.runtime.local.readiness: want a path starting with /, got "statusz"`},
		{"kubernetes namespace missing", head + `environments:
  prod:
    branch: release
    runtime:
      kubernetes: { deployment: demo }
`, `ferry.yaml:10: environments.prod.runtime.kubernetes.namespace: required`},
		{"kubernetes verify without url", head + `environments:
  prod:
    branch: release
    runtime:
      kubernetes: { namespace: prod }
    verify: [ { http: GET /statusz } ]
`, `ferry.yaml:11: environments.prod.verify: checks need url: the address where ferry reaches this environment's Service or Ingress`},
		{"kubernetes namespace invalid", head + `environments:
  prod:
    branch: release
    runtime:
      kubernetes: { namespace: Prod_1 }
`, `ferry.yaml:10: environments.prod.runtime.kubernetes.namespace: invalid namespace "Prod_1" (want a DNS label: lowercase letters, digits, dashes)`},
		{"env var name", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    env:
      1DATABASE: x
`, `ferry.yaml:11: environments.dev.env.1DATABASE: invalid variable name (want letters, digits and underscores, not starting with a digit)`},
		{"env secret without kind", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    env:
      API_KEY: { secret: {} }
`, `ferry.yaml:11: environments.dev.env.API_KEY.secret: want { env: NAME } or { file: PATH }`},
		{"env secret literal", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    env:
      API_KEY: { secret: hunter2 }
`, `ferry.yaml:11: environments.dev.env.API_KEY.secret: want { env: NAME } or { file: PATH }, got "hunter2"`},
		{"env value mapping without secret", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    env:
      API_KEY: { secrte: { env: KEY } }
`, "ferry.yaml:11: environments.dev.env.API_KEY.secrte: unknown field (did you mean \"secret\"?)\n" +
			`ferry.yaml:11: environments.dev.env.API_KEY: want a string or { secret: { env: NAME } } / { secret: { file: PATH } }`},
		{"verify without path", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    verify:
      - http: "GET statusz"
`, `ferry.yaml:11: environments.dev.verify[0].http: path "statusz" must start with /`},
		{"verify unknown method", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    verify:
      - { http: "GTE /statusz" }
`, `ferry.yaml:11: environments.dev.verify[0].http: unknown method "GTE" (did you mean "GET"?)`},
		{"verify not method and path", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    verify:
      - { http: "/statusz" }
`, `ferry.yaml:11: environments.dev.verify[0].http: want "METHOD /path", got "/statusz"`},
		{"verify bad status", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    verify:
      - { http: "GET /statusz", expect: 200 }
      - { http: "GET /version", expect: 700 }
`, `ferry.yaml:12: environments.dev.verify[1].expect: 700 is not an HTTP status`},
		{"verify http missing", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    verify:
      - expect: 200
`, `ferry.yaml:11: environments.dev.verify[0].http: required`},
		{"rollout both zero", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    rollout: { maxSurge: 0, maxUnavailable: 0 }
`, `ferry.yaml:10: environments.dev.rollout: maxSurge and maxUnavailable are both 0: a rollout could never make progress`},
		{"rollout surge zero with the default unavailability", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    rollout:
      maxSurge: 0
`, `ferry.yaml:11: environments.dev.rollout: maxSurge and maxUnavailable are both 0: a rollout could never make progress`},
		{"rollout negative surge", head + `environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
    rollout:
      maxSurge: -1
`, `ferry.yaml:11: environments.dev.rollout.maxSurge: must not be negative`},
		{"url invalid", head + `environments:
  dev:
    branch: master
    url: localhost:8081
    runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: environments.dev.url: "localhost:8081" is not an absolute http:// or https:// URL`},
		{"merge keys", head + `environments:
  dev: &base
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    <<: *base
    from: dev
`, "ferry.yaml:10: environments.prod.runtime: required\n" +
			`ferry.yaml:11: environments.prod: merge keys (<<) are not supported; write the fields out`},
		{"syntax error", head + `environments:
  dev:
    branch: master
   runtime: { local: { listen: 127.0.0.1:8081 } }
`, `ferry.yaml:9: syntax error: did not find expected key`},
		{"tab indentation", "app: demo\n\tsource: x\n", `ferry.yaml:2: syntax error: found a tab character that violates indentation`},
		{"syntax error on the first line", "app: demo: x\n", `ferry.yaml:1: syntax error: mapping values are not allowed in this context`},
		{"unclosed quote", "app: demo\nsource:\n  repo: \"/srv/demo.git\nbuild: {}\n", `ferry.yaml:3: syntax error: found unexpected end of stream`},
		{"unclosed flow mapping after a multi-line list", head + `environments:
  dev:
    tags: [latest,
      stable]
    runtime: { local: { listen: 127.0.0.1:8081 }
    branch: master
`, `ferry.yaml:10: syntax error: did not find expected ',' or '}'`},
		{"not a mapping", "- app: demo\n", `ferry.yaml:1: want a mapping, got a list`},
		{"empty file", "# nothing here\n", `ferry.yaml: the file is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("ferry.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse(%s) = nil error, want\n%s", tt.name, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse(%s) error =\n%s\nwant\n%s", tt.name, got, tt.want)
			}
			if _, ok := errors.AsType[*Error](err); !ok {
				t.Errorf("Parse(%s) error is %T, want *config.Error", tt.name, err)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	yaml := `app: Demo
source:
  repo: /srv/demo.git
  pol: 30s
build:
  go: { main: ./cmd/demo }
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081, replicas: 0 } }
  prod:
    branch: master
    from: dve
    tags: [sha-1]
    runtime: { local: { listen: 127.0.0.1:8081 } }
    verify: [ { http: "GET /", expect: 1000 } ]
`
	_, err := Parse("conf/ferry.yaml", []byte(yaml))
	want := strings.Join([]string{
		`conf/ferry.yaml:1: app: invalid name "Demo" (want lowercase letters, digits and dashes, like "birthday-app")`,
		`conf/ferry.yaml:4: source.pol: unknown field (did you mean "poll"?)`,
		`conf/ferry.yaml:10: environments.dev.runtime.local.replicas: must be at least 1`,
		`conf/ferry.yaml:12: environments.prod.branch: branch "master" already drives environment "dev"`,
		`conf/ferry.yaml:13: environments.prod.from: unknown environment "dve" (did you mean "dev"?)`,
		`conf/ferry.yaml:14: environments.prod.tags[0]: "sha-1" is reserved: sha-… tags name builds`,
		`conf/ferry.yaml:15: environments.prod.runtime.local.listen: 127.0.0.1:8081 is already taken by environments.dev.runtime.local.listen (127.0.0.1:8081)`,
		`conf/ferry.yaml:16: environments.prod.verify[0].expect: 1000 is not an HTTP status`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("Parse(many problems) error =\n%v\nwant\n%s", err, want)
	}
	e, _ := errors.AsType[*Error](err)
	p := e.Problems[4]
	wantP := Problem{File: "conf/ferry.yaml", Line: 13, Column: 11, Field: "environments.prod.from", Message: `unknown environment "dve" (did you mean "dev"?)`}
	if p != wantP {
		t.Errorf("Problems[4] = %+v, want %+v", p, wantP)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := t.TempDir() + "/nope.yaml"
	_, err := Load(path)
	if err == nil || err.Error() != path+": no such file or directory" {
		t.Errorf("Load(missing) error = %v, want %q", err, path+": no such file or directory")
	}
}
