// Package dashboard serves ferry's web dashboard: which release runs where
// (the environment matrix with the drift that `ferry status --check`
// finds), the commits upstream and not yet downstream, running pipelines
// with their steps and logs, each environment's deployment history, a
// chart per environment of deployments and failures per day (inline SVG
// drawn on the server), locks and quarantines, the DORA figures, the
// recent outgoing notifications, a running canary release live in its
// environment's row (step, weight, each version's figures, the last
// verdict), and — for a
// signed-in token whose role allows it — promote, roll back, lock and
// unlock, pause, resume, abort or promote a canary, and approve or cancel
// the pending releases an approval rule holds back.
//
// Pages are rendered on the server with html/template and read completely
// without JavaScript; actions are plain POST forms. A small script, like
// the templates and the stylesheet embedded in the binary (no build step,
// nothing from a CDN), keeps a page current without reloading it: it
// listens to /events (server-sent events emitted when the builder or the
// controller broadcast a change), fetches the changed parts as HTML
// fragments rendered on the server and swaps them in; running builds
// stream their log lines and step changes over /builds/{id}/log.
//
// Access follows the API's rules. A person signs in by pasting an API
// token (looked up by Config.Tokens), kept in an HttpOnly,
// SameSite=Strict cookie and looked up again on every request, so a revoked
// token ends its session at once; nothing but the sign-in page is shown to
// anyone else. An action button is shown only when the token's role allows
// that change of that environment, and the action checks it again, both
// by auth.MayChange, the API's own rule; the override of a closed
// environment's release windows and freezes is offered to admins only,
// and checked again, by release.MayOverride. Every POST must come from the
// dashboard's own origin (Sec-Fetch-Site or Origin), else it is refused
// with a 403 page.
package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Environments is what the dashboard asks of the controller about what
// runs where.
type Environments interface {
	Status(ctx context.Context) ([]controller.EnvStatus, error)
	// Check is `ferry status --check`: every disagreement between the
	// ledger, the runtimes, the registry tags and git.
	Check(ctx context.Context) ([]controller.Drift, error)
	// Changed returns a channel closed at the next change of any
	// deployment, lock or alert.
	Changed() <-chan struct{}
}

// Canaries is what the dashboard asks of the controller about canary
// releases (strategy.canary): the canaries that run now (from memory)
// and the rollout commands, as `ferry rollout` has them.
type Canaries interface {
	LiveCanaries() map[string]controller.CanaryStatus
	CanaryPause(ctx context.Context, env, actor, reason string) error
	CanaryResume(ctx context.Context, env, actor, reason string) error
	CanaryAbort(ctx context.Context, env, actor, reason string) error
	CanaryPromote(ctx context.Context, env, actor, reason string) error
}

// Releases is what the dashboard's actions ask of the controller.
type Releases interface {
	Promote(ctx context.Context, env, ref, actor, reason string) (*ferry.Deployment, error)
	Rollback(ctx context.Context, env, to, actor, reason string) (*ferry.Deployment, error)
	Lock(ctx context.Context, env, actor, reason string) (*ferry.Lock, error)
	Unlock(ctx context.Context, env, actor, reason string) (*ferry.Lock, error)
	Diff(ctx context.Context, from, to string) (*release.Comparison, error)
}

// Queue queues an action (controller.Queue): what the dashboard asks for
// an admin's promotion that overrides release windows and freezes, as the
// API's promote with override does.
type Queue interface {
	Queue(ctx context.Context, a ferry.Action) (*ferry.Action, error)
}

// Outbox reads the outgoing notifications (ledger.NotificationStore), as
// GET /api/v1/notifications does.
type Outbox interface {
	Notifications(ctx context.Context, f ledger.NotificationFilter) ([]*ferry.Notification, error)
}

// Builds is what the dashboard asks of the builder: a channel closed at
// the next change of any build, step or log.
type Builds interface {
	Changed() <-chan struct{}
}

// Ledger is what the dashboard reads of the ledger.
type Ledger interface {
	Build(ctx context.Context, id int64) (*ferry.Build, error)
	Builds(ctx context.Context, f ledger.BuildFilter) ([]*ferry.Build, error)
	Logs(ctx context.Context, buildID, afterSeq int64, limit int) ([]ferry.LogLine, error)
	Deployments(ctx context.Context, f ledger.DeploymentFilter) ([]*ferry.Deployment, error)
	Locks(ctx context.Context, app string) ([]*ferry.Lock, error)
	Quarantines(ctx context.Context, app string) ([]*ferry.Quarantine, error)
}

// Leases reads who leads the ledger.
type Leases interface {
	Leader(ctx context.Context, app string) (*ledger.Lease, error)
}

// Config is what the dashboard shows and where it gets it.
type Config struct {
	App     string
	Version string
	// Envs are the environments in configuration order.
	Envs         []ferry.Environment
	Environments Environments
	Releases     Releases
	Builds       Builds
	Ledger       Ledger
	// Tokens looks tokens up by their secret's hash (auth.Tokens.Lookup);
	// required, as every page but the sign-in page needs a signed-in token.
	Tokens auth.Lookup
	// Leases, when set, tells the page which server leads the ledger.
	Leases Leases
	// Approvals, when set, shows the pending releases with approve and
	// cancel buttons.
	Approvals Approvals
	// Queue, when set, offers an admin the override of a closed
	// environment: a promotion outside its release windows or in a
	// freeze, with a reason (release.MayOverride).
	Queue Queue
	// Outbox, when set, shows the recent outgoing notifications and how
	// their delivery went, to viewers and up (the API's rule).
	Outbox Outbox
	// DORA, when set, computes the DORA figures the dashboard shows
	// (normally dora.Reporter's of the production environments).
	DORA func(ctx context.Context) ([]dora.Report, error)
	// Canaries, when set, shows each running canary in its environment's
	// row: step, weight, each version's figures, the last verdict; and
	// pause or resume, promote and abort in its environment's actions,
	// for a token whose role may change it.
	Canaries Canaries
	Logger   *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Heartbeat is how often an idle event stream gets a comment, so
	// proxies keep it open; 15s when zero.
	Heartbeat time.Duration
	// Settle is how long a change stream waits after a change for more,
	// so that a burst becomes one event; 150ms when zero.
	Settle time.Duration
}

// Dashboard is the dashboard's HTTP handler.
type Dashboard struct {
	cfg    Config
	envs   map[string]ferry.Environment
	tmpl   *template.Template
	assets fs.FS
	// assetVersion changes with the assets, so browsers fetch new ones.
	assetVersion string
	mux          *http.ServeMux
	// Reads shared by the pages rendered for one controller state.
	drifts   perChange[[]controller.Drift]
	diffs    perChange[[]diffView]
	dora     perChange[[]dora.Report]
	activity perChange[*activityView]
}

// New checks cfg and parses the templates.
func New(cfg Config) (*Dashboard, error) {
	switch {
	case cfg.Environments == nil:
		return nil, errors.New("dashboard: Environments is required")
	case cfg.Releases == nil:
		return nil, errors.New("dashboard: Releases is required")
	case cfg.Builds == nil:
		return nil, errors.New("dashboard: Builds is required")
	case cfg.Ledger == nil:
		return nil, errors.New("dashboard: Ledger is required")
	case cfg.Tokens == nil:
		return nil, errors.New("dashboard: Tokens is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 150 * time.Millisecond
	}
	d := &Dashboard{cfg: cfg, envs: map[string]ferry.Environment{}}
	for _, e := range cfg.Envs {
		if e.From != "" && !cfg.hasEnv(e.From) {
			return nil, fmt.Errorf("dashboard: environment %s: unknown upstream %q", e.Name, e.From)
		}
		d.envs[e.Name] = e
	}
	tmpl, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard templates: %w", err)
	}
	d.tmpl = tmpl
	if d.assets, err = fs.Sub(assetFS, "assets"); err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, name := range []string{"dashboard.css", "dashboard.js"} {
		b, err := fs.ReadFile(d.assets, name)
		if err != nil {
			return nil, fmt.Errorf("dashboard assets: %w", err)
		}
		h.Write(b)
	}
	d.assetVersion = hex.EncodeToString(h.Sum(nil))[:12]
	d.mux = d.routes()
	return d, nil
}

func (c *Config) hasEnv(name string) bool {
	for _, e := range c.Envs {
		if e.Name == name {
			return true
		}
	}
	return false
}

// routes registers every route in one place. Each handler checks the
// session itself: the sign-in page and the assets need none.
func (d *Dashboard) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.page)
	mux.HandleFunc("GET /signin", d.signInPage)
	mux.HandleFunc("POST /signin", d.signIn)
	mux.HandleFunc("POST /signout", d.signOut)
	mux.HandleFunc("GET /fragments/{name}", d.fragment)
	mux.HandleFunc("GET /events", d.changes)
	mux.HandleFunc("GET /builds/{id}", d.buildPage)
	mux.HandleFunc("GET /builds/{id}/log", d.buildLog)
	mux.HandleFunc("POST /envs/{env}/{action}", d.action)
	mux.HandleFunc("POST /envs/{env}/rollout/{cmd}", d.canaryAction)
	mux.HandleFunc("POST /requests/{id}/{action}", d.requestAction)
	mux.HandleFunc("GET /assets/{name}", d.asset)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.errorPage(w, r, http.StatusNotFound, "Not found", fmt.Sprintf("The dashboard has no page %s %s.", r.Method, r.URL.Path))
	})
	return mux
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	d.mux.ServeHTTP(w, r)
}

// asset serves the embedded stylesheet and script.
func (d *Dashboard) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	b, err := fs.ReadFile(d.assets, name)
	if err != nil {
		d.errorPage(w, r, http.StatusNotFound, "Not found", "No such asset.")
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", `"`+d.assetVersion+`"`)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// errorPage answers with a whole page saying what went wrong.
func (d *Dashboard) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	d.render(w, r, "error.html", errorView{base: d.base(nil), Status: status, Title: title, Message: msg})
}

type errorView struct {
	base
	Status         int
	Title, Message string
}

// base is what every page's frame shows.
type base struct {
	App, Version, Asset string
	// User is the signed-in token.
	User *ferry.Token
	// Leader is the server that leads the ledger, on the main page.
	Leader *ledger.Lease
}

func (d *Dashboard) base(user *ferry.Token) base {
	return base{App: d.cfg.App, Version: d.cfg.Version, Asset: d.assetVersion, User: user}
}

// render executes a template; a failure midway is logged (the status is
// already written).
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	if err := d.tmpl.ExecuteTemplate(w, name, data); err != nil && r.Context().Err() == nil {
		d.cfg.Logger.Error("render dashboard", "template", name, "path", r.URL.Path, "err", err)
	}
}

// safe is the message of err a person may see; what it leaves out
// (ferry.ErrorHidden: an internal error, a cause) is logged.
func (d *Dashboard) safe(what string, err error) string {
	if ferry.ErrorHidden(err) {
		d.cfg.Logger.Error("dashboard", "what", what, "err", err)
	}
	return ferry.ErrorMessage(err)
}
