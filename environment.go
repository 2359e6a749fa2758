package ferry

import (
	"bytes"
	"cmp"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"text/template"
	"time"
)

// Defaults of an environment's settings. The configuration applies them
// once, when it is read; Rollout.WithDefaults is the runtimes' guard for a
// spec that did not come from it.
const (
	DefaultReadyTimeout = 60 * time.Second
	DefaultGrace        = 30 * time.Second
	DefaultCheckTimeout = 10 * time.Second
	// DefaultReadiness is the path a local replica is probed on before it
	// gets traffic.
	DefaultReadiness = "/"
	// DefaultReleaseTag names a release by the minute it was made:
	// RCyyyyMMdd_HHmm (DESIGN §4).
	DefaultReleaseTag = `RC{{ .Time.UTC.Format "20060102_1504" }}`
)

// Environment is one place the app runs, as every part of ferry sees it:
// the configuration decodes into it, the controller drives it, the API,
// the dashboard and the DORA report describe it.
type Environment struct {
	Name string
	// Branch drives the environment: its new commits are built (when there
	// is no From) or promoted (when there is). Empty for an environment
	// reached only by `ferry promote`.
	Branch string
	// From is the upstream environment whose succeeded digests alone may
	// be promoted here; "" for an environment that follows its branch.
	From string
	// Soak is how long a digest must have run upstream before promotion.
	Soak time.Duration
	// Auto makes ferry promote, by itself, the newest digest that
	// succeeded upstream, Wait after that success (and once soaked),
	// through every gate; with an approval rule it becomes a release
	// request like any promotion.
	Auto bool
	Wait time.Duration
	// ReleaseTag is a text/template over TemplateData naming the permanent
	// tag of each release; empty means DefaultReleaseTag.
	ReleaseTag string
	// Tags are the moving registry tags that follow this environment.
	Tags []string
	// Role is the token role needed to change the environment.
	Role Role
	// Replicas is the count used until a scale changes it. Zero leaves
	// the count to the runtime: a Kubernetes Deployment keeps its own
	// replicas (or its HorizontalPodAutoscaler's) until `ferry scale`.
	Replicas int
	// URL is the base URL verification checks go to; for the local
	// runtime, the load balancer's address unless set.
	URL     string
	Verify  []Check
	Rollout Rollout
	// Canary, when set, takes each release through canary steps
	// (canary.go) instead of straight to every replica.
	Canary *Canary
	// Approval, when set, makes every promotion a release request that
	// waits for approvals by other people (approval.go).
	Approval *Approval
	// Windows are the recurring times promotions are taken (none: any
	// time); Freezes the dated periods they are not (window.go). Neither
	// stops a rollback.
	Windows []Window
	Freezes []Freeze
}

// Gated reports whether the environment only takes releases: digests that
// succeeded upstream, promoted or rolled back to by a person.
func (e *Environment) Gated() bool { return e.From != "" }

// ReleaseName renders the release tag of a release made at t. The caller
// adds "_2", "_3", … on a collision.
func (e *Environment) ReleaseName(t time.Time) (string, error) {
	s, err := Render("releaseTag", cmp.Or(e.ReleaseTag, DefaultReleaseTag), TemplateData{Time: t})
	if err != nil {
		return "", fmt.Errorf("environment %s: %w", e.Name, err)
	}
	if !ValidTag(s) {
		return "", fmt.Errorf("environment %s: release tag %q is not a valid tag", e.Name, s)
	}
	return s, nil
}

// releaseTagPattern is the shape of a release tag (DESIGN §4):
// RCyyyyMMdd_HHmm in UTC, with _2, _3 … for more releases in one minute.
var releaseTagPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^RC[0-9]{8}_[0-9]{4}(_[0-9]+)?$`) })

// IsReleaseTag reports whether name (without refs/tags/) has the shape of
// a release tag, the tags a git server keeps permanent.
func IsReleaseTag(name string) bool { return releaseTagPattern().MatchString(name) }

var tagName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`) })

// ValidTag reports whether s may name an OCI tag.
func ValidTag(s string) bool { return tagName().MatchString(s) }

// Mainline returns the branch at the root of env's upstream chain in envs:
// only its history is released. It is "" when the chain names an unknown
// environment or loops.
func Mainline(envs []Environment, env string) string {
	byName := map[string]Environment{}
	for _, e := range envs {
		byName[e.Name] = e
	}
	e, ok := byName[env]
	for seen := 0; ok && e.From != "" && seen <= len(envs); seen++ {
		e, ok = byName[e.From]
	}
	if !ok || e.From != "" {
		return ""
	}
	return e.Branch
}

// Production names the production environments of envs, in their order:
// those gated behind another that no other environment is promoted from,
// the end of each promotion chain.
func Production(envs []Environment) []string {
	upstream := map[string]bool{}
	for _, e := range envs {
		upstream[e.From] = true
	}
	out := []string{}
	for _, e := range envs {
		if e.Gated() && !upstream[e.Name] {
			out = append(out, e.Name)
		}
	}
	return out
}

// Check is one HTTP check against an environment (verify, after a rollout)
// or a build's trial run (the integration step): a request, and what the
// answer must be.
type Check struct {
	Method  string
	Path    string // starts with "/", may carry a query
	Headers []Header
	Body    string
	Expect  int // status wanted
	// Contains is an optional substring of the body.
	Contains string
	// JSON, when set, checks one field of a JSON body.
	JSON    *JSONCheck
	Timeout time.Duration
}

// Header is one request header of a Check.
type Header struct{ Name, Value string }

// JSONCheck checks one field of a JSON answer: Field is a dotted path
// ("user.name", "items.0.id"); the field's value, as JSON renders a string
// without quotes or anything else as written, must equal Equals when set
// and contain Contains when set.
type JSONCheck struct {
	Field    string
	Equals   string
	Contains string
}

// String renders the check as "GET /statusz → 200".
func (c Check) String() string { return fmt.Sprintf("%s %s → %d", c.Method, c.Path, c.Expect) }

// Rollout bounds a rolling update.
type Rollout struct {
	MaxSurge       int           // extra replicas during a rollout
	MaxUnavailable int           // replicas that may be missing
	ReadyTimeout   time.Duration // deadline for a new replica to become ready
	Grace          time.Duration // SIGTERM to SIGKILL; 0 kills at once after draining
}

// WithDefaults fills a rollout's missing bounds: one surge replica when
// neither surge nor unavailability is allowed, DefaultReadyTimeout when
// none is set. A grace period of 0 is a choice (SIGKILL at once, after the
// replica drained), not a missing one.
func (r Rollout) WithDefaults() Rollout {
	r.MaxSurge = max(r.MaxSurge, 0)
	r.MaxUnavailable = max(r.MaxUnavailable, 0)
	if r.MaxSurge == 0 && r.MaxUnavailable == 0 {
		r.MaxSurge = 1
	}
	if r.ReadyTimeout <= 0 {
		r.ReadyTimeout = DefaultReadyTimeout
	}
	r.Grace = max(r.Grace, 0)
	return r
}

// TemplateData is what the templates of a configuration see: build ldflags
// and release tags.
type TemplateData struct {
	Commit      string    // full 40-hex commit
	ShortCommit string    // 12-hex prefix
	Branch      string    // branch the commit was built from
	Time        time.Time // commit time for ldflags, release time for releaseTag
}

// Render executes a text/template over data; a missing field is an error.
// Errors read "bad template: …", without text/template's prefix.
func Render(name, text string, data any) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", templateError(err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", templateError(err)
	}
	return b.String(), nil
}

// templateError drops text/template's "template: NAME:" prefix, which
// repeats the field the problem already names.
func templateError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	if i := strings.Index(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return fmt.Errorf("bad template: %s", msg)
}

// Commit is one commit of the app's repository.
type Commit struct {
	SHA         string
	Subject     string
	Author      string
	AuthorEmail string
	Time        time.Time // committer time, UTC
}

// UnknownEnvironment is the ENOTFOUND error for an environment name that is
// none of names: it suggests the closest (`--to prdo` → "did you mean
// "prod"?") and lists them all.
func UnknownEnvironment(name string, names []string) error {
	return Errorf(ENOTFOUND, "unknown environment %q%s (environments: %s)", name, DidYouMean(name, names), strings.Join(names, ", "))
}
