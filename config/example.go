package config

// Example returns a complete, valid, commented ferry.yaml: birthday-app
// with dev following master and prod promoted from dev, both on the local
// runtime, every optional field shown with its default. docs/config.md
// explains each field.
func Example() string { return example }

const example = `# ferry.yaml — how ferry delivers birthday-app from git to its environments.
# Every field is described in docs/config.md. Relative paths are resolved
# against the directory of this file.

app: birthday-app                 # names the image repository and the Deployment

dataDir: ferry-data               # ledger, embedded registry, unpacked images, logs

server:
  listen: 127.0.0.1:7070          # API, dashboard, webhooks, /metrics
  # publicURL: https://ferry.example.com
  # advertise: 10.0.0.7:7070      # where other servers on this ledger reach this one

# ledger: sqlite://ferry-data/ledger.db   # the default; or postgres://user@host/db

source:
  repo: ./birthday-app.git        # local path, file://, https://, ssh:// or git@host:path
  poll: 30s                       # 0 turns polling off (webhooks only)
  webhookSecret: { env: FERRY_WEBHOOK_SECRET }

registry:
  image: ""                       # empty: the embedded registry at <listen>/<app>
  listen: 127.0.0.1:5050
  # image: registry.example.com/team/birthday-app   # any OCI registry; docker credentials apply

build:
  test: go test ./...             # runs in a clean worktree of the commit
  timeout: 10m                    # per step
  go:
    main: ./cmd/birthday-app
    ldflags: -s -w -X main.commit={{.Commit}} -X main.buildTime={{.Time.UTC.Format "2006-01-02T15:04:05Z"}}
  # command: docker build -t "$FERRY_IMAGE" . && docker push "$FERRY_IMAGE"   # instead of go
  integration:                    # each image on trial (own database, own port) before dev
    env: { DATABASE_URL: sqlite://trial.db }
    checks:
      - { http: PUT /hello/ada, headers: { Content-Type: application/json }, body: '{"dateOfBirth":"1990-05-17"}', expect: 204 }
      - { http: GET /hello/ada, expect: 200, json: { field: message, contains: "Hello, ada" } }
    # command: go test ./e2e/...  # FERRY_URL is the trial's address
    timeout: 2m

environments:                     # in order: dev first, then what is promoted from it
  dev:
    branch: master                # every commit on master is built and rolled out here
    tags: [latest]                # registry tags that follow this environment
    runtime:
      local:
        replicas: 2
        listen: 127.0.0.1:8081    # load balancer; dev stays on loopback
        args: ["-listen", "{{.Addr}}"]
        readiness: /statusz
        resources: { memory: 256Mi, cpu: 500m, pids: 256 }   # per replica, as root (runc); default 512Mi, 1, 512
    env:
      DATABASE_URL: sqlite://dev.db   # in the environment's own /data; dev and prod never share a database
    verify:
      - { http: "GET /statusz", expect: 200 }
    rollout: { maxSurge: 1, maxUnavailable: 0, readyTimeout: 60s, grace: 30s }

  prod:
    branch: release               # moves only fast-forward along master (or back, on rollback)
    from: dev                     # only digests that succeeded in dev…
    soak: 10m                     # …and ran there at least this long
    releaseTag: RC{{ .Time.UTC.Format "20060102_1504" }}
    tags: [live]
    role: releaser                # token role needed to promote, roll back or scale
    runtime:
      local:
        replicas: 2
        listen: 127.0.0.1:8082
        args: ["-listen", "{{.Addr}}"]
        readiness: /statusz
      # kubernetes: { namespace: prod, deployment: birthday-app, container: app }
    env:
      DATABASE_URL: { secret: { env: PROD_DATABASE_URL } }
    verify:
      - { http: "GET /statusz", expect: 200 }
      - { http: "GET /version", expect: 200, contains: "commit" }
    rollout: { maxSurge: 1, maxUnavailable: 0, readyTimeout: 60s, grace: 30s }
`
