package config

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	// The time zones of release windows resolve on a machine without a
	// zoneinfo database too.
	_ "time/tzdata"

	"github.com/distribution/reference"
	"gopkg.in/yaml.v3"

	"github.com/ferryhq/ferry"
)

// Parse decodes and checks a configuration file's contents. name is used in
// problems and locates the file: relative paths inside it resolve against
// the directory of name. On failure the error is an *Error listing every
// problem found.
func Parse(name string, data []byte) (*Config, error) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	d := &decoder{file: name, dir: filepath.Dir(abs), nodes: map[string]*yaml.Node{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		d.syntax(data, err)
		return nil, &Error{Problems: d.problems}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{Problems: []Problem{{File: name, Message: "the file is empty"}}}
	}
	c := d.config(doc.Content[0])
	c.Path, c.Dir = abs, d.dir
	if len(d.problems) > 0 {
		return nil, &Error{Problems: d.sorted(d.problems), Warnings: d.sorted(d.warnings)}
	}
	c.Warnings = d.sorted(d.warnings)
	return c, nil
}

var topFields = []string{"app", "dataDir", "server", "ledger", "source", "registry", "signing", "build", "environments", "notifications"}

func (d *decoder) config(root *yaml.Node) *Config {
	c := &Config{}
	if root = deref(root); root.Kind != yaml.MappingNode {
		d.errorf(root, "", "want a mapping, got %s", describe(root))
		return c
	}
	o := d.object(root, root, "", topFields...)
	switch c.App = o.str("app"); {
	case !o.has("app"):
		o.missing("app")
	case !appName().MatchString(c.App):
		d.errorf(o.node("app"), "app", "invalid name %q (want lowercase letters, digits and dashes, like \"birthday-app\")", c.App)
	}
	c.DataDir = DefaultDataDir
	if o.has("dataDir") {
		c.DataDir = o.str("dataDir")
	}
	c.DataDir = d.abs(c.DataDir)
	c.Server = d.server(o)
	c.Ledger = d.ledger(o, c.DataDir)
	c.Source = d.source(o)
	c.Registry = d.registry(o)
	c.Signing = d.signing(o)
	c.Build = d.build(o)
	c.Environments = d.environments(o, c)
	c.Notifications = d.notifications(o, c)
	d.crossCheck(c)
	return c
}

// listen reads a host:port field; def applies when it is absent.
func (d *decoder) listen(o *object, name, def string) string {
	if !o.has(name) {
		return def
	}
	s := o.str(name)
	if msg := addrProblem(s); msg != "" {
		d.errorf(o.node(name), o.field(name), "%s", msg)
	}
	return s
}

func (d *decoder) server(top *object) Server {
	o := d.object(top.key("server"), top.node("server"), "server", "listen", "publicURL", "advertise")
	s := Server{Listen: d.listen(o, "listen", DefaultServerListen), PublicURL: o.str("publicURL"), Advertise: o.str("advertise")}
	if s.Advertise != "" {
		if host, port, err := net.SplitHostPort(s.Advertise); err != nil || host == "" || host == "0.0.0.0" || host == "::" || port == "0" {
			d.errorf(o.node("advertise"), o.field("advertise"), "%q: want the host:port other servers reach this one at, with a host and a port (not a wildcard or port 0)", s.Advertise)
		}
	}
	if s.PublicURL != "" {
		if msg := urlProblem(s.PublicURL); msg != "" {
			d.errorf(o.node("publicURL"), o.field("publicURL"), "%s", msg)
		}
		s.PublicURL = strings.TrimSuffix(s.PublicURL, "/")
	}
	return s
}

func (d *decoder) ledger(top *object, dataDir string) Ledger {
	if !top.has("ledger") {
		p := filepath.Join(dataDir, "ledger.db")
		return Ledger{URL: "sqlite://" + p, Engine: "sqlite", Path: p}
	}
	s, n := top.str("ledger"), top.node("ledger")
	scheme, rest, ok := strings.Cut(s, "://")
	switch {
	case ok && scheme == "sqlite":
		p, query, _ := strings.Cut(rest, "?")
		if p == "" {
			d.errorf(n, "ledger", "want sqlite://PATH with the database file's path")
			return Ledger{}
		}
		p = d.abs(p)
		u := "sqlite://" + p
		if query != "" {
			u += "?" + query
		}
		return Ledger{URL: u, Engine: "sqlite", Path: p}
	case ok && (scheme == "postgres" || scheme == "postgresql"):
		if _, err := url.Parse(s); err != nil {
			d.errorf(n, "ledger", "invalid postgres URL")
			return Ledger{}
		}
		return Ledger{URL: s, Engine: "postgres"}
	case ok:
		d.errorf(n, "ledger", "unsupported scheme %q (want sqlite://PATH or postgres://…)", scheme)
	default:
		d.errorf(n, "ledger", "want sqlite://PATH or postgres://…, got %q", s)
	}
	return Ledger{}
}

var repoSchemes = []string{"file", "https", "http", "ssh", "git"}

func (d *decoder) source(top *object) Source {
	if !top.has("source") {
		top.missing("source")
		return Source{}
	}
	o := d.object(top.key("source"), top.node("source"), "source", "repo", "poll", "webhookSecret")
	s := Source{
		Repo: o.str("repo"),
		Poll: o.duration("poll", DefaultPoll, false),
	}
	if !o.has("repo") {
		o.missing("repo")
	} else {
		s.Repo = d.repo(o.node("repo"), o.field("repo"), s.Repo)
	}
	if o.has("webhookSecret") {
		s.WebhookSecret = d.secret(o.node("webhookSecret"), o.field("webhookSecret"), true)
	}
	return s
}

// repo checks a repository address and makes a local path absolute.
func (d *decoder) repo(n *yaml.Node, field, s string) string {
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			d.errorf(n, field, "invalid URL")
		case !slices.Contains(repoSchemes, scheme):
			d.errorf(n, field, "unsupported scheme %q (want a local path, file://, https://, ssh:// or git@host:path)", scheme)
		case scheme == "file" && u.Path == "":
			d.errorf(n, field, "file:// URL without a path")
		case scheme != "file" && u.Host == "":
			d.errorf(n, field, "URL without a host")
		}
		return s
	}
	// scp-like syntax: a colon before the first slash (git@host:team/app.git).
	if i := strings.Index(s, ":"); i > 0 && !strings.Contains(s[:i], "/") {
		host := s[:i]
		if at := strings.LastIndex(host, "@"); at >= 0 {
			host = host[at+1:]
		}
		if host == "" || s[i+1:] == "" {
			d.errorf(n, field, "%q is not a git address (want user@host:path)", s)
		}
		return s
	}
	return d.abs(s)
}

// secret reads a secret reference: { env: NAME }, { file: PATH }, or, when
// literal is allowed, a plain string (with a warning).
func (d *decoder) secret(n *yaml.Node, field string, literal bool) SecretRef {
	ref := SecretRef{Field: field}
	if n.Kind == yaml.ScalarNode {
		if !literal {
			d.errorf(n, field, "want { env: NAME } or { file: PATH }, got %s", describe(n))
			return ref
		}
		ref.Literal = n.Value
		d.warnf(n, field, "secret written into the file; prefer { env: NAME } or { file: PATH }")
		return ref
	}
	o := d.object(n, n, field, "env", "file")
	ref.Env, ref.File = o.str("env"), o.str("file")
	switch {
	case o.has("env") && o.has("file"):
		d.errorf(n, field, "set env or file, not both")
	case o.has("env"):
		if !varName().MatchString(ref.Env) {
			d.errorf(o.node("env"), o.field("env"), "invalid variable name %q", ref.Env)
		}
	case o.has("file"):
		ref.File = d.abs(ref.File)
	case n.Kind == yaml.MappingNode:
		d.errorf(n, field, "want { env: NAME } or { file: PATH }")
	}
	return ref
}

func (d *decoder) registry(top *object) Registry {
	o := d.object(top.key("registry"), top.node("registry"), "registry", "image", "listen", "insecure")
	r := Registry{
		Image:    o.str("image"),
		Listen:   d.listen(o, "listen", DefaultRegistryListen),
		Insecure: o.boolean("insecure"),
	}
	if r.Image != "" {
		named, err := reference.ParseNormalizedNamed(r.Image)
		switch {
		case err != nil:
			d.errorf(o.node("image"), o.field("image"), "invalid image repository %q: %v", r.Image, err)
		case !reference.IsNameOnly(named):
			d.errorf(o.node("image"), o.field("image"), "want a repository without tag or digest, got %q", r.Image)
		}
	}
	return r
}

// signing reads the signing key's block; the key file is read now, so a
// missing file or one that holds no PEM private key is reported at its line.
func (d *decoder) signing(top *object) Signing {
	o := d.object(top.key("signing"), top.node("signing"), "signing", "key", "password")
	var s Signing
	if o.has("password") {
		s.Password = d.secret(o.node("password"), o.field("password"), false)
	}
	if !o.has("key") {
		if o.has("password") {
			d.errorf(o.node("password"), o.field("password"), "a password without signing.key: it decrypts the key that file names")
		}
		return s
	}
	s.Key = d.abs(o.str("key"))
	n, field := o.node("key"), o.field("key")
	b, err := os.ReadFile(s.Key)
	if err != nil {
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			err = pe.Err
		}
		d.errorf(n, field, "cannot read %s: %v", s.Key, err)
		return s
	}
	block, _ := pem.Decode(b)
	if block == nil || !strings.HasSuffix(block.Type, "PRIVATE KEY") {
		d.errorf(n, field, "%s holds no PEM private key (want PKCS#8, EC or cosign's encrypted key; the public half goes nowhere in ferry.yaml)", s.Key)
	}
	return s
}

func (d *decoder) build(top *object) Build {
	if !top.has("build") {
		top.missing("build")
		return Build{}
	}
	o := d.object(top.key("build"), top.node("build"), "build", "dir", "test", "timeout", "go", "command", "integration")
	b := Build{
		Dir:     ".",
		Test:    o.str("test"),
		Timeout: o.duration("timeout", DefaultBuildTimeout, true),
		Command: o.str("command"),
	}
	if o.has("dir") {
		dir := o.str("dir")
		clean := path.Clean(dir)
		if path.IsAbs(dir) || clean == ".." || strings.HasPrefix(clean, "../") {
			d.errorf(o.node("dir"), o.field("dir"), "want a path inside the repository, got %q", dir)
		}
		b.Dir = clean
	}
	hasGo, hasCmd := o.has("go"), o.has("command")
	switch {
	case hasGo && hasCmd:
		d.errorf(o.key("command"), "build", "set go or command, not both")
	case !hasGo && !hasCmd && !o.bad:
		d.errorf(o.at, "build", "one of go or command is required")
	}
	if hasGo {
		b.Go = d.goBuild(o)
	}
	if o.has("integration") {
		b.Integration = d.integration(o)
	}
	return b
}

func (d *decoder) integration(build *object) *Integration {
	o := d.object(build.key("integration"), build.node("integration"), "build.integration", "env", "checks", "command", "timeout")
	in := &Integration{
		Env:     d.envVars(o),
		Checks:  d.checks(o, "checks"),
		Command: o.str("command"),
		Timeout: o.duration("timeout", DefaultIntegrationTimeout, true),
	}
	if len(in.Checks) == 0 && in.Command == "" && !o.bad {
		d.errorf(o.at, o.path, "needs checks, a command, or both: the trial run of the image must be asked something")
	}
	return in
}

func (d *decoder) goBuild(top *object) *GoBuild {
	o := d.object(top.key("go"), top.node("go"), "build.go", "main", "ldflags", "env")
	g := &GoBuild{Main: o.str("main"), Ldflags: o.str("ldflags")}
	if !o.has("main") {
		o.missing("main")
	}
	if g.Ldflags != "" {
		if _, err := ferry.Render("ldflags", g.Ldflags, sampleData); err != nil {
			d.errorf(o.node("ldflags"), o.field("ldflags"), "%v", err)
		}
	}
	env, items := o.strings("env")
	for i, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || !varName().MatchString(name) {
			d.errorf(items[i].val, items[i].path, "want NAME=VALUE, got %q", kv)
		}
	}
	g.Env = env
	return g
}

var envFields = []string{"branch", "from", "soak", "releaseTag", "tags", "role", "runtime", "env", "url", "verify", "rollout", "approval", "windows", "freeze", "auto", "wait", "strategy"}

func (d *decoder) environments(top *object, c *Config) []*Environment {
	if !top.has("environments") {
		d.errorf(top.key("environments"), "environments", "at least one environment is required")
		return nil
	}
	ps := d.pairs(top.node("environments"), "environments")
	if len(ps) == 0 && top.node("environments").Kind == yaml.MappingNode {
		d.errorf(top.node("environments"), "environments", "at least one environment is required")
	}
	var out []*Environment
	for _, p := range ps {
		if !envName().MatchString(p.name) {
			d.errorf(p.key, p.path, "invalid environment name (want a lowercase letter, then lowercase letters, digits or dashes)")
		}
		d.nodes[p.path] = p.key
		out = append(out, d.environment(p, c))
	}
	return out
}

func (d *decoder) environment(p pair, c *Config) *Environment {
	o := d.object(p.key, p.val, p.path, envFields...)
	e := &Environment{Environment: ferry.Environment{
		Name:       p.name,
		Branch:     o.str("branch"),
		From:       o.str("from"),
		Soak:       o.duration("soak", 0, false),
		ReleaseTag: o.str("releaseTag"),
		Role:       ferry.Role(o.str("role")),
		URL:        o.str("url"),
	}}
	if o.has("branch") {
		if msg := branchProblem(e.Branch); msg != "" {
			d.errorf(o.node("branch"), o.field("branch"), "%s", msg)
		}
	}
	if !o.has("branch") && !o.has("from") {
		d.errorf(p.key, p.path, "needs a branch, a from, or both")
	}
	if o.has("soak") && e.From == "" {
		d.errorf(o.node("soak"), o.field("soak"), "needs from: soak is how long a digest ran in the upstream environment")
	}
	if e.ReleaseTag != "" {
		tag, err := ferry.Render("releaseTag", e.ReleaseTag, sampleData)
		switch {
		case err != nil:
			d.errorf(o.node("releaseTag"), o.field("releaseTag"), "%v", err)
		case !ferry.ValidTag(tag):
			d.errorf(o.node("releaseTag"), o.field("releaseTag"), "renders %q, not a valid tag (want [A-Za-z0-9_][A-Za-z0-9._-]{0,127})", tag)
		case reservedTag(tag) != "":
			d.errorf(o.node("releaseTag"), o.field("releaseTag"), "renders %q, which %s", tag, reservedTag(tag))
		}
	}
	tags, items := o.strings("tags")
	for i, t := range tags {
		switch {
		case !ferry.ValidTag(t):
			d.errorf(items[i].val, items[i].path, "%q is not a valid tag (want [A-Za-z0-9_][A-Za-z0-9._-]{0,127})", t)
		case reservedTag(t) != "":
			d.errorf(items[i].val, items[i].path, "%q %s", t, reservedTag(t))
		}
	}
	e.Tags = tags
	roles := []string{string(ferry.RoleDeployer), string(ferry.RoleReleaser), string(ferry.RoleAdmin)}
	switch {
	case !o.has("role") && e.From != "":
		e.Role = ferry.RoleReleaser
	case !o.has("role"):
		e.Role = ferry.RoleDeployer
	case !slices.Contains(roles, string(e.Role)):
		d.errorf(o.node("role"), o.field("role"), "unknown role %q (want one of %s)%s", e.Role, quoteList(roles), ferry.DidYouMean(string(e.Role), roles))
	}
	e.Runtime = d.runtime(o, e, c)
	e.Env = d.envVars(o)
	if e.URL != "" {
		if msg := urlProblem(e.URL); msg != "" {
			d.errorf(o.node("url"), o.field("url"), "%s", msg)
		}
		e.URL = strings.TrimSuffix(e.URL, "/")
	} else if l := e.Runtime.Local; l != nil && l.Listen != "" && !strings.HasSuffix(l.Listen, ":0") {
		// With port 0 the balancer's port is known only once it listens:
		// the server takes the URL from it then.
		e.URL = "http://" + dialAddr(l.Listen)
	}
	e.Verify = d.checks(o, "verify")
	if len(e.Verify) > 0 && e.URL == "" && e.Runtime.Kubernetes != nil {
		d.errorf(o.node("verify"), o.field("verify"), "checks need url: the address where ferry reaches this environment's Service or Ingress")
	}
	e.Rollout = d.rollout(o)
	e.Canary = d.strategy(o, e)
	e.Approval = d.approval(o, e)
	e.Auto, e.Wait = o.boolean("auto"), o.duration("wait", 0, false)
	for _, f := range []string{"auto", "wait"} {
		if o.has(f) && e.From == "" {
			d.errorf(o.node(f), o.field(f), "needs from: %s is about promotions from the upstream environment", f)
		}
	}
	if o.has("wait") && !e.Auto {
		d.errorf(o.node("wait"), o.field("wait"), "needs auto: true: wait is how long ferry waits before it promotes by itself (soak holds back every promotion)")
	}
	e.Windows = d.windows(o, e)
	e.Freezes = d.freezes(o, e)
	return e
}

// clockTime reads "HH:MM" (00:00 to 24:00) as an offset from midnight.
func clockTime(s string) (time.Duration, bool) {
	t, err := time.Parse("15:04", s)
	if err == nil {
		return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, true
	}
	if s == "24:00" {
		return 24 * time.Hour, true
	}
	return 0, false
}

// zone reads an IANA time zone name (default UTC).
func (d *decoder) zone(o *object, name string) *time.Location {
	if !o.has(name) {
		return time.UTC
	}
	tz := o.str(name)
	l, err := time.LoadLocation(tz)
	if err != nil || tz == "" || tz == "Local" {
		d.errorf(o.node(name), o.field(name), "unknown time zone %q (want an IANA name like Europe/Berlin or UTC)", tz)
		return time.UTC
	}
	return l
}

// windows decodes an environment's release windows: only a gated
// environment has them.
func (d *decoder) windows(env *object, e *Environment) []ferry.Window {
	items := env.list("windows")
	if len(items) > 0 && e.From == "" {
		d.errorf(env.key("windows"), env.field("windows"), "needs from: release windows govern promotions")
	}
	var out []ferry.Window
	for _, it := range items {
		o := d.object(it.val, it.val, it.path, "days", "from", "to", "timezone")
		w := ferry.Window{Location: d.zone(o, "timezone")}
		if !o.has("days") {
			o.missing("days")
		} else if days, err := ferry.ParseDays(o.str("days")); err != nil {
			d.errorf(o.node("days"), o.field("days"), "%v", err)
		} else {
			w.Days = days
		}
		bounds := [2]*time.Duration{&w.From, &w.To}
		for i, name := range []string{"from", "to"} {
			if !o.has(name) {
				o.missing(name)
				continue
			}
			v, ok := clockTime(o.str(name))
			if !ok {
				d.errorf(o.node(name), o.field(name), "want a time of day HH:MM like \"09:00\" (quoted), got %q", o.str(name))
				continue
			}
			*bounds[i] = v
		}
		if o.has("from") && o.has("to") && w.From >= w.To && w.To != 0 {
			d.errorf(o.node("to"), o.field("to"), "must be after from (%s); for a window over midnight use two windows", o.str("from"))
		}
		out = append(out, w)
	}
	return out
}

// freezeLayouts are the forms a freeze's from and to take.
var freezeLayouts = []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"}

// freezes decodes an environment's dated freezes.
func (d *decoder) freezes(env *object, e *Environment) []ferry.Freeze {
	items := env.list("freeze")
	if len(items) > 0 && e.From == "" {
		d.errorf(env.key("freeze"), env.field("freeze"), "needs from: a freeze stops promotions")
	}
	var out []ferry.Freeze
	for _, it := range items {
		o := d.object(it.val, it.val, it.path, "from", "to", "reason", "timezone")
		zone := d.zone(o, "timezone")
		f := ferry.Freeze{Reason: o.str("reason")}
		if !o.has("reason") {
			o.missing("reason")
		}
		bounds := [2]*time.Time{&f.From, &f.To}
		for i, name := range []string{"from", "to"} {
			n := o.node(name)
			if n == nil {
				o.missing(name)
				continue
			}
			var parsed bool
			for _, layout := range freezeLayouts {
				if t, err := time.ParseInLocation(layout, n.Value, zone); err == nil {
					*bounds[i], parsed = t, true
					break
				}
			}
			if !parsed {
				d.errorf(n, o.field(name), "want a date or time like 2026-12-20, \"2026-12-20 18:00\" or 2026-12-20T18:00:00Z, got %q", n.Value)
			}
		}
		if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
			d.errorf(o.node("to"), o.field("to"), "must be after from")
		}
		out = append(out, f)
	}
	return out
}

// approval decodes an environment's approval rule: only a gated
// environment (with from) takes one.
func (d *decoder) approval(env *object, e *Environment) *ferry.Approval {
	if !env.has("approval") {
		return nil
	}
	o := d.object(env.key("approval"), env.node("approval"), env.field("approval"), "required", "role", "selfApproval", "expires")
	if e.From == "" {
		d.errorf(env.key("approval"), env.field("approval"), "needs from: only an environment that takes promotions waits for approvals")
	}
	a := &ferry.Approval{
		Required:     o.integer("required", 1),
		Role:         ferry.DefaultApprovalRole,
		SelfApproval: o.boolean("selfApproval"),
		Expires:      o.duration("expires", ferry.DefaultApprovalExpires, true),
	}
	if a.Required < 1 || a.Required > 10 {
		d.errorf(o.node("required"), o.field("required"), "must be between 1 and 10, not %d", a.Required)
	}
	if o.has("role") {
		a.Role = ferry.Role(o.str("role"))
		roles := []string{string(ferry.RoleDeployer), string(ferry.RoleReleaser), string(ferry.RoleAdmin)}
		if !slices.Contains(roles, string(a.Role)) {
			d.errorf(o.node("role"), o.field("role"), "unknown approver role %q (want one of %s)%s", a.Role, quoteList(roles), ferry.DidYouMean(string(a.Role), roles))
		}
	}
	return a
}

func (d *decoder) runtime(env *object, e *Environment, c *Config) Runtime {
	if !env.has("runtime") {
		env.missing("runtime")
		return Runtime{}
	}
	o := d.object(env.key("runtime"), env.node("runtime"), env.field("runtime"), "local", "kubernetes")
	var r Runtime
	hasLocal, hasKube := o.has("local"), o.has("kubernetes")
	switch {
	case hasLocal && hasKube:
		d.errorf(o.key("kubernetes"), o.path, "set local or kubernetes, not both")
	case !hasLocal && !hasKube && !o.bad:
		d.errorf(o.at, o.path, "one of local or kubernetes is required")
	}
	if hasLocal {
		r.Local = d.local(o, e)
	}
	if hasKube {
		r.Kubernetes = d.kubernetes(o, c)
	}
	return r
}

func (d *decoder) local(rt *object, e *Environment) *Local {
	o := d.object(rt.key("local"), rt.node("local"), rt.field("local"), "replicas", "listen", "port", "args", "readiness", "resources")
	l := &Local{Readiness: ferry.DefaultReadiness}
	// The count is the environment's; only the local runtime names it.
	e.Replicas = o.integer("replicas", 1)
	if e.Replicas < 1 {
		d.errorf(o.node("replicas"), o.field("replicas"), "must be at least 1")
	}
	if !o.has("listen") {
		o.missing("listen")
	} else {
		l.Listen = o.str("listen")
		if msg := addrProblem(l.Listen); msg != "" {
			d.errorf(o.node("listen"), o.field("listen"), "%s", msg)
		} else if e.From == "" {
			// dev-like environments stay on loopback unless told otherwise.
			if strings.HasPrefix(l.Listen, ":") {
				l.Listen = "127.0.0.1" + l.Listen
			} else if !loopback(l.Listen) {
				d.warnf(o.node("listen"), o.field("listen"), "%s is reachable beyond this machine; an environment without from (like dev) usually listens on loopback only", l.Listen)
			}
		}
	}
	if o.has("port") {
		po := d.object(o.key("port"), o.node("port"), o.field("port"), "env")
		l.PortEnv = po.str("env")
		switch {
		case !po.has("env"):
			po.missing("env")
		case !varName().MatchString(l.PortEnv):
			d.errorf(po.node("env"), po.field("env"), "invalid variable name %q", l.PortEnv)
		}
	}
	args, items := o.strings("args")
	l.Args = args
	usesPort := false
	for i, a := range args {
		one, err := ferry.Render("args", a, ReplicaData{Env: e.Name, Host: "127.0.0.1", Port: 40001, Addr: "127.0.0.1:40001"})
		if err != nil {
			d.errorf(items[i].val, items[i].path, "%v", err)
			continue
		}
		two, _ := ferry.Render("args", a, ReplicaData{Env: e.Name, Host: "127.0.0.1", Port: 40002, Addr: "127.0.0.1:40002"})
		usesPort = usesPort || one != two
	}
	if !o.has("port") && !usesPort {
		l.PortEnv = DefaultPortEnv
	}
	if o.has("readiness") {
		l.Readiness = o.str("readiness")
		if !strings.HasPrefix(l.Readiness, "/") {
			d.errorf(o.node("readiness"), o.field("readiness"), "want a path starting with /, got %q", l.Readiness)
		}
	}
	l.Resources = d.resources(o)
	return l
}

// resources reads the limits of each replica (memory, cpu, pids); what is
// not set keeps ferry's default.
func (d *decoder) resources(local *object) ferry.Resources {
	var r ferry.Resources
	if !local.has("resources") {
		return r
	}
	o := d.object(local.key("resources"), local.node("resources"), local.field("resources"), "memory", "cpu", "pids")
	if o.has("memory") {
		m, err := ferry.ParseMemory(o.str("memory"))
		if err != nil {
			d.errorf(o.node("memory"), o.field("memory"), "%v", err)
		}
		r.Memory = m
	}
	if o.has("cpu") {
		c, err := ferry.ParseMilliCPU(o.str("cpu"))
		if err != nil {
			d.errorf(o.node("cpu"), o.field("cpu"), "%v", err)
		}
		r.MilliCPU = c
	}
	if o.has("pids") {
		r.Pids = o.integer("pids", 0)
		if r.Pids < ferry.MinPids {
			d.errorf(o.node("pids"), o.field("pids"), "must be at least %d: the runtime and the app's own threads count too", ferry.MinPids)
			r.Pids = 0
		}
	}
	return r
}

func (d *decoder) kubernetes(rt *object, c *Config) *Kubernetes {
	o := d.object(rt.key("kubernetes"), rt.node("kubernetes"), rt.field("kubernetes"),
		"namespace", "deployment", "container", "kubeconfig", "context", "hpa")
	k := &Kubernetes{
		Namespace:  o.str("namespace"),
		Deployment: o.str("deployment"),
		Container:  o.str("container"),
		Kubeconfig: o.str("kubeconfig"),
		Context:    o.str("context"),
		HPA:        o.str("hpa"),
	}
	if !o.has("namespace") {
		o.missing("namespace")
	} else if !dnsLabel().MatchString(k.Namespace) {
		d.errorf(o.node("namespace"), o.field("namespace"), "invalid namespace %q (want a DNS label: lowercase letters, digits, dashes)", k.Namespace)
	}
	if k.Deployment == "" {
		k.Deployment = c.App
	} else if !dnsSubdomain(k.Deployment) {
		d.errorf(o.node("deployment"), o.field("deployment"), "invalid Deployment name %q", k.Deployment)
	}
	if k.Container != "" && !dnsLabel().MatchString(k.Container) {
		d.errorf(o.node("container"), o.field("container"), "invalid container name %q", k.Container)
	}
	if k.HPA != "" && !dnsSubdomain(k.HPA) {
		d.errorf(o.node("hpa"), o.field("hpa"), "invalid HorizontalPodAutoscaler name %q", k.HPA)
	}
	if k.Kubeconfig != "" {
		k.Kubeconfig = d.abs(k.Kubeconfig)
	}
	return k
}

func (d *decoder) envVars(env *object) []EnvVar {
	var out []EnvVar
	for _, p := range d.pairs(env.node("env"), env.field("env")) {
		if !varName().MatchString(p.name) {
			d.errorf(p.key, p.path, "invalid variable name (want letters, digits and underscores, not starting with a digit)")
		}
		v := EnvVar{Name: p.name}
		switch {
		case isNull(p.val):
		case p.val.Kind == yaml.ScalarNode:
			v.Value = p.val.Value
		case p.val.Kind == yaml.MappingNode:
			o := d.object(p.key, p.val, p.path, "secret")
			if !o.has("secret") {
				d.errorf(p.val, p.path, "want a string or { secret: { env: NAME } } / { secret: { file: PATH } }")
				continue
			}
			ref := d.secret(o.node("secret"), o.field("secret"), false)
			ref.Field = p.path
			v.Secret = &ref
		default:
			d.errorf(p.val, p.path, "want a string or { secret: … }, got %s", describe(p.val))
		}
		out = append(out, v)
	}
	return out
}

// checks decodes the list of HTTP checks under name (verify, or
// build.integration.checks).
func (d *decoder) checks(parent *object, name string) []ferry.Check {
	var out []ferry.Check
	for _, it := range parent.list(name) {
		o := d.object(it.val, it.val, it.path, "http", "headers", "body", "expect", "contains", "json", "timeout")
		c := ferry.Check{
			Body:     o.str("body"),
			Expect:   o.integer("expect", 200),
			Contains: o.str("contains"),
			Timeout:  o.duration("timeout", ferry.DefaultCheckTimeout, true),
		}
		for _, p := range d.pairs(o.node("headers"), o.field("headers")) {
			if !headerName().MatchString(p.name) {
				d.errorf(p.key, p.path, "invalid header name")
			}
			if p.val.Kind != yaml.ScalarNode || strings.ContainsAny(p.val.Value, "\r\n") {
				d.errorf(p.val, p.path, "want a one-line string")
				continue
			}
			c.Headers = append(c.Headers, ferry.Header{Name: p.name, Value: p.val.Value})
		}
		if o.has("json") {
			j := d.object(o.key("json"), o.node("json"), o.field("json"), "field", "equals", "contains")
			c.JSON = &ferry.JSONCheck{Field: j.str("field"), Equals: j.str("equals"), Contains: j.str("contains")}
			switch {
			case !j.has("field"):
				j.missing("field")
			case !jsonField().MatchString(c.JSON.Field):
				d.errorf(j.node("field"), j.field("field"), "want a dotted path of names or indexes (user.name, items.0.id), got %q", c.JSON.Field)
			}
		}
		if !o.has("http") {
			o.missing("http")
		} else {
			spec := o.str("http")
			method, target, ok := strings.Cut(strings.TrimSpace(spec), " ")
			target = strings.TrimSpace(target)
			switch {
			case !ok || strings.ContainsAny(target, " \t"):
				d.errorf(o.node("http"), o.field("http"), "want \"METHOD /path\", got %q", spec)
			case !slices.Contains(httpMethods, method):
				d.errorf(o.node("http"), o.field("http"), "unknown method %q%s", method, ferry.DidYouMean(method, httpMethods))
			case !strings.HasPrefix(target, "/"):
				d.errorf(o.node("http"), o.field("http"), "path %q must start with /", target)
			}
			c.Method, c.Path = method, target
		}
		if c.Expect < 100 || c.Expect > 599 {
			d.errorf(o.node("expect"), o.field("expect"), "%d is not an HTTP status", c.Expect)
		}
		out = append(out, c)
	}
	return out
}

func (d *decoder) rollout(env *object) ferry.Rollout {
	o := d.object(env.key("rollout"), env.node("rollout"), env.field("rollout"), "maxSurge", "maxUnavailable", "readyTimeout", "grace")
	r := ferry.Rollout{
		MaxSurge:       o.integer("maxSurge", 1),
		MaxUnavailable: o.integer("maxUnavailable", 0),
		ReadyTimeout:   o.duration("readyTimeout", ferry.DefaultReadyTimeout, true),
		Grace:          o.duration("grace", ferry.DefaultGrace, false),
	}
	if r.MaxSurge < 0 {
		d.errorf(o.node("maxSurge"), o.field("maxSurge"), "must not be negative")
	}
	if r.MaxUnavailable < 0 {
		d.errorf(o.node("maxUnavailable"), o.field("maxUnavailable"), "must not be negative")
	}
	if r.MaxSurge == 0 && r.MaxUnavailable == 0 {
		d.errorf(o.node("maxSurge"), o.path, "maxSurge and maxUnavailable are both 0: a rollout could never make progress")
	}
	return r
}

// crossCheck validates what spans several fields: upstreams, branches,
// tags and listen addresses.
func (d *decoder) crossCheck(c *Config) {
	names := c.EnvNames()
	byName := map[string]*Environment{}
	order := map[string]int{}
	for i, e := range c.Environments {
		byName[e.Name] = e
		order[e.Name] = i
	}
	for _, e := range c.Environments {
		f := "environments." + e.Name + ".from"
		switch {
		case e.From == "":
		case e.From == e.Name:
			d.errorf(d.at(f), f, "an environment cannot follow itself")
		case byName[e.From] == nil:
			d.errorf(d.at(f), f, "unknown environment %q%s", e.From, ferry.DidYouMean(e.From, names))
		default:
			cycle := cycleFrom(e, byName)
			if cycle != nil && !slices.ContainsFunc(cycle, func(n string) bool { return order[n] < order[e.Name] }) {
				d.errorf(d.at(f), f, "cycle %s", strings.Join(cycle, " → "))
			}
		}
	}

	branchOf := map[string]string{}
	tagOf := map[string]string{}
	for _, e := range c.Environments {
		if e.Branch != "" {
			f := "environments." + e.Name + ".branch"
			if other, dup := branchOf[e.Branch]; dup {
				d.errorf(d.at(f), f, "branch %q already drives environment %q", e.Branch, other)
			} else {
				branchOf[e.Branch] = e.Name
			}
		}
		for i, t := range e.Tags {
			f := index("environments."+e.Name+".tags", i)
			if other, dup := tagOf[t]; dup {
				if other != e.Name {
					d.errorf(d.at(f), f, "tag %q already follows environment %q", t, other)
				} else {
					d.errorf(d.at(f), f, "tag %q is listed twice", t)
				}
			} else {
				tagOf[t] = e.Name
			}
		}
		if e.Runtime.Kubernetes != nil && len(e.Env) > 0 {
			f := "environments." + e.Name + ".env"
			d.warnf(d.at(f), f, "ignored by the kubernetes runtime: the Deployment's manifest owns the container's environment")
		}
	}

	// Listen addresses: the server, the embedded registry, then each local
	// environment, each checked against all before it.
	type addr struct{ field, value string }
	var taken []addr
	claim := func(field, value string) {
		if addrProblem(value) != "" {
			return
		}
		for _, a := range taken {
			if overlap(a.value, value) {
				d.errorf(d.at(field), field, "%s is already taken by %s (%s)", value, a.field, a.value)
				return
			}
		}
		taken = append(taken, addr{field, value})
	}
	claim("server.listen", c.Server.Listen)
	if c.RegistryEmbedded() {
		claim("registry.listen", c.Registry.Listen)
	}
	for _, e := range c.Environments {
		if e.Runtime.Local != nil && e.Runtime.Local.Listen != "" {
			claim("environments."+e.Name+".runtime.local.listen", e.Runtime.Local.Listen)
		}
	}
}

// cycleFrom follows from-links starting at e and returns the cycle through
// e (e first and last), or nil.
func cycleFrom(e *Environment, byName map[string]*Environment) []string {
	path := []string{e.Name}
	seen := map[string]bool{e.Name: true}
	for cur := byName[e.From]; cur != nil; cur = byName[cur.From] {
		path = append(path, cur.Name)
		if cur.Name == e.Name {
			return path
		}
		if seen[cur.Name] || cur.From == cur.Name {
			return nil // a cycle not through e, or a self-loop reported elsewhere
		}
		seen[cur.Name] = true
	}
	return nil
}

var receiverName = envName

// notifications decodes the receivers of outgoing notifications.
func (d *decoder) notifications(top *object, c *Config) []Receiver {
	var out []Receiver
	names := map[string]bool{}
	envs := c.EnvNames()
	topics := ferry.NotificationTopics()
	for _, it := range top.list("notifications") {
		o := d.object(it.val, it.val, it.path, "name", "url", "format", "secret", "envs", "topics")
		r := Receiver{Name: o.str("name"), URL: o.str("url"), Format: "json"}
		switch {
		case !o.has("name"):
			o.missing("name")
		case !receiverName().MatchString(r.Name):
			d.errorf(o.node("name"), o.field("name"), "invalid name %q (want a lowercase letter, then lowercase letters, digits or dashes)", r.Name)
		case names[r.Name]:
			d.errorf(o.node("name"), o.field("name"), "receiver %q is named twice", r.Name)
		}
		names[r.Name] = true
		if !o.has("url") {
			o.missing("url")
		} else if msg := urlProblem(r.URL); msg != "" {
			d.errorf(o.node("url"), o.field("url"), "%s", msg)
		}
		if o.has("format") {
			r.Format = o.str("format")
			if r.Format != "json" && r.Format != "slack" {
				d.errorf(o.node("format"), o.field("format"), "unknown format %q (want json or slack)%s", r.Format, ferry.DidYouMean(r.Format, []string{"json", "slack"}))
			}
		}
		if !o.has("secret") {
			d.errorf(o.at, o.field("secret"), "required: every notification is signed (X-Ferry-Signature); give { env: NAME } or { file: PATH }")
		} else {
			r.Secret = d.secret(o.node("secret"), o.field("secret"), false)
		}
		var items []pair
		r.Envs, items = o.strings("envs")
		for i, e := range r.Envs {
			if !slices.Contains(envs, e) {
				d.errorf(items[i].val, items[i].path, "%s", ferry.ErrorMessage(ferry.UnknownEnvironment(e, envs)))
			}
		}
		r.Topics, items = o.strings("topics")
		for i, tp := range r.Topics {
			if !slices.Contains(topics, tp) {
				d.errorf(items[i].val, items[i].path, "unknown topic %q (want one of %s)%s", tp, quoteList(topics), ferry.DidYouMean(tp, topics))
			}
		}
		out = append(out, r)
	}
	return out
}
