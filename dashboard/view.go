package dashboard

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// The parts of the page, each a fragment the script can fetch again, and
// the change topic that makes it stale: "envs" when the controller
// broadcasts, "builds" when the builder does.
var fragments = map[string]string{
	"matrix":   "envs",
	"requests": "envs",
	"actions":  "envs",
	"diff":     "envs",
	"history":  "envs",
	"locks":    "envs",
	"dora":     "envs",
	"activity": "envs",
	// Deliveries are recorded without a broadcast: the list is read
	// again with the controller's next change.
	"notifications": "envs",
	"pipelines":     "builds",
}

// view is what the page shows; a fragment fills only its own part.
type view struct {
	base
	Flash     *notice
	Matrix    *matrixView
	Requests  *requestsView
	Actions   []actionView
	Diffs     []diffView
	Pipelines *pipelinesView
	History   []historyView
	Locks     *locksView
	DORA      *doraView
	Activity  *activityView
	// Notifications is nil when the dashboard has no outbox or the user
	// may not read it.
	Notifications *notificationsView
	// CanAct says whether the user may change any environment: the page
	// has an actions section only then.
	CanAct bool
}

// matrixView is which release runs where.
type matrixView struct {
	// At is when it was read.
	At   time.Time
	Rows []envRow
	Err  string
	// DriftErr says why the drift check failed; Checked whether it ran.
	DriftErr string
	Checked  bool
}

type envRow struct {
	controller.EnvStatus
	// Error says why the runtime's status could not be read.
	Error    string
	Upstream string
	// Latest is the environment's newest deployment when it is not the
	// one that runs: in progress, or failed.
	Latest *ferry.Deployment
	Drift  []controller.Drift
	// Canary is the canary that runs in the environment now, if any.
	Canary *canaryView
}

// canaryView is a running canary as its row shows it.
type canaryView struct {
	Step, Steps, Weight int
	State, Reason       string
	// Tracks are this step's figures per version, stable first.
	Tracks  []trackView
	Verdict string
	Reasons []string
}

// trackView is one version's figures over the canary's current step.
type trackView struct {
	Name               string
	Requests, Errors   int64
	Rate, ErrorPercent float64
	P50, P99           time.Duration
}

func canaryViewOf(st controller.CanaryStatus) *canaryView {
	r := st.Run
	v := &canaryView{Step: r.Step + 1, Steps: r.Steps, Weight: r.Weight, State: string(r.State), Reason: r.Reason}
	for _, name := range []string{ferry.TrackStable, ferry.TrackCanary, ferry.TrackBaseline} {
		f, ok := st.Tracks[name]
		if !ok {
			continue
		}
		t := trackView{Name: name, Requests: f.Requests, Errors: f.Errors, P50: f.Latency.Quantile(0.5), P99: f.Latency.Quantile(0.99)}
		if st.Span > 0 {
			t.Rate = float64(f.Requests) / st.Span.Seconds()
		}
		if f.Requests > 0 {
			t.ErrorPercent = 100 * float64(f.Errors) / float64(f.Requests)
		}
		v.Tracks = append(v.Tracks, t)
	}
	if st.Verdict != nil {
		v.Verdict, v.Reasons = string(st.Verdict.Outcome), st.Verdict.Reasons
	}
	return v
}

// actionView is one environment the user may change.
type actionView struct {
	Env      string
	Upstream string
	Lock     *ferry.Lock
	// Releases are earlier releases to offer as rollback targets.
	Releases []string
	// Closed says why a promotion is refused now (outside the release
	// windows or in a freeze, with the next opening), "" when open.
	Closed string
	// Override says the user may promote anyway, overriding the windows
	// and freezes with a reason: an admin, when Closed.
	Override bool
	// Approval quotes the environment's approval rule, "" for none.
	Approval string
	// Canary is the state of the canary that runs in the environment
	// (running or paused), "" when none does: its rollout buttons.
	Canary ferry.CanaryState
}

// diffView is the commits upstream and not yet in a gated environment.
type diffView struct {
	From, To  string
	FromSide  release.Side
	ToSide    release.Side
	Ahead     []release.Change
	More      int
	BehindLen int
	Err       string
}

// pipelinesView is the newest builds; running ones stream their logs.
type pipelinesView struct {
	Builds []buildView
	Err    string
}

type buildView struct {
	*ferry.Build
	// Lines are the log lines so far of a running build, LastSeq the
	// sequence number the live stream continues after.
	Lines   []ferry.LogLine
	LastSeq int64
	Live    bool
	// Cut says how many earlier lines were left out of Lines.
	Cut int
}

type historyView struct {
	Env         string
	Deployments []*ferry.Deployment
	Err         string
}

type locksView struct {
	Locks       []*ferry.Lock
	Quarantines []*ferry.Quarantine
	Err         string
}

type notificationsView struct {
	Notifications []*ferry.Notification
	Err           string
}

type doraView struct {
	Reports []dora.Report
	Err     string
}

// Bounds of what a page shows.
const (
	recentBuilds     = 6
	historyLen       = 10
	diffLen          = 50
	pageLogLines     = 200   // lines of a running build on the dashboard
	buildPageLines   = 20000 // lines of one build's own page
	releaseChoices   = 20
	notificationsLen = 20
	checkTimeout     = 10 * time.Second
	fragmentDeadline = 30 * time.Second
)

// load fills the parts of a view that are named (all when none is).
func (d *Dashboard) load(ctx context.Context, user *ferry.Token, parts ...string) *view {
	ctx, cancel := context.WithTimeout(ctx, fragmentDeadline)
	defer cancel()
	want := func(p string) bool { return len(parts) == 0 || slices.Contains(parts, p) }
	v := &view{base: d.base(user)}
	if d.cfg.Leases != nil {
		if l, err := d.cfg.Leases.Leader(ctx, d.cfg.App); err == nil {
			v.Leader = l
		}
	}
	for _, e := range d.cfg.Envs {
		if auth.MayChange(user, e) == nil {
			v.CanAct = true
		}
	}
	if want("matrix") {
		v.Matrix = d.loadMatrix(ctx)
	}
	if want("requests") && d.cfg.Approvals != nil {
		v.Requests = d.loadRequests(ctx, user)
	}
	if want("actions") && v.CanAct {
		v.Actions = d.loadActions(ctx, user)
	}
	if want("diff") {
		v.Diffs = d.loadDiffs(ctx)
	}
	if want("pipelines") {
		v.Pipelines = d.loadPipelines(ctx)
	}
	if want("history") {
		v.History = d.loadHistory(ctx)
	}
	if want("locks") {
		v.Locks = d.loadLocks(ctx)
	}
	if want("activity") {
		v.Activity = d.loadActivity(ctx)
	}
	if want("notifications") && d.cfg.Outbox != nil && auth.Allowed(user, ferry.RoleViewer) == nil {
		v.Notifications = d.loadNotifications(ctx)
	}
	if want("dora") && d.cfg.DORA != nil {
		v.DORA = d.loadDORA(ctx)
	}
	return v
}

func (d *Dashboard) loadMatrix(ctx context.Context) *matrixView {
	m := &matrixView{At: d.cfg.Now()}
	sts, err := d.cfg.Environments.Status(ctx)
	if err != nil {
		m.Err = d.safe("status", err)
		return m
	}
	drifts, err := d.drifts.get(ctx, d.cfg.Environments.Changed(), d.cfg.Now(), func(ctx context.Context) ([]controller.Drift, error) {
		ctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		return d.cfg.Environments.Check(ctx)
	})
	if err != nil {
		m.DriftErr = d.safe("check", err)
	} else {
		m.Checked = true
	}
	var live map[string]controller.CanaryStatus
	if d.cfg.Canaries != nil {
		live = d.cfg.Canaries.LiveCanaries()
	}
	for _, st := range sts {
		row := envRow{EnvStatus: st, Upstream: d.envs[st.Name].From}
		if c, ok := live[st.Name]; ok {
			row.Canary = canaryViewOf(c)
		}
		if st.Err != nil {
			row.Error = d.safe("runtime status "+st.Name, st.Err)
		}
		ds, err := d.cfg.Ledger.Deployments(ctx, ledger.DeploymentFilter{App: d.cfg.App, Env: st.Name, Limit: 1})
		if err == nil && len(ds) == 1 && ds[0].ID != st.DeploymentID {
			row.Latest = ds[0]
		}
		for _, dr := range drifts {
			if dr.Env == st.Name {
				row.Drift = append(row.Drift, dr)
			}
		}
		m.Rows = append(m.Rows, row)
	}
	return m
}

func (d *Dashboard) loadActions(ctx context.Context, user *ferry.Token) []actionView {
	locks := map[string]*ferry.Lock{}
	if ls, err := d.cfg.Ledger.Locks(ctx, d.cfg.App); err == nil {
		for _, l := range ls {
			locks[l.Env] = l
		}
	}
	var live map[string]controller.CanaryStatus
	if d.cfg.Canaries != nil {
		live = d.cfg.Canaries.LiveCanaries()
	}
	var out []actionView
	for _, e := range d.cfg.Envs {
		if auth.MayChange(user, e) != nil {
			continue
		}
		a := actionView{Env: e.Name, Upstream: e.From, Lock: locks[e.Name]}
		if c, ok := live[e.Name]; ok && c.Run != nil {
			a.Canary = c.Run.State
		}
		if err := release.Closed(e, d.cfg.Now()); e.From != "" && err != nil {
			a.Closed = ferry.ErrorMessage(err)
			a.Override = d.cfg.Queue != nil && mayOverride(user.Role)
		}
		if release.NeedsApproval(e) {
			a.Approval = release.RuleText(*e.Approval)
		}
		if e.From != "" {
			ds, err := d.cfg.Ledger.Deployments(ctx, ledger.DeploymentFilter{
				App: d.cfg.App, Env: e.Name, States: []ferry.DeploymentState{ferry.DeploymentSucceeded}, Limit: 100,
			})
			if err == nil {
				for _, dp := range ds {
					if dp.Release != "" && !slices.Contains(a.Releases, dp.Release) && len(a.Releases) < releaseChoices {
						a.Releases = append(a.Releases, dp.Release)
					}
				}
			}
		}
		out = append(out, a)
	}
	return out
}

func (d *Dashboard) loadDiffs(ctx context.Context) []diffView {
	// A diff that failed is shown with its error and read again next time.
	out, _ := d.diffs.get(ctx, d.cfg.Environments.Changed(), d.cfg.Now(), d.readDiffs)
	return out
}

// readDiffs compares every gated environment with its upstream; the error
// is the first comparison's that failed.
func (d *Dashboard) readDiffs(ctx context.Context) (out []diffView, firstErr error) {
	for _, e := range d.cfg.Envs {
		if e.From == "" {
			continue
		}
		dv := diffView{From: e.From, To: e.Name}
		c, err := d.cfg.Releases.Diff(ctx, e.From, e.Name)
		if err != nil {
			dv.Err = d.safe("diff", err)
			firstErr = cmp.Or(firstErr, err)
		} else {
			dv.FromSide, dv.ToSide, dv.BehindLen = c.From, c.To, len(c.Behind)
			dv.Ahead = c.Ahead
			if len(dv.Ahead) > diffLen {
				dv.More = len(dv.Ahead) - diffLen
				dv.Ahead = dv.Ahead[:diffLen]
			}
		}
		out = append(out, dv)
	}
	return out, firstErr
}

func (d *Dashboard) loadPipelines(ctx context.Context) *pipelinesView {
	p := &pipelinesView{}
	bs, err := d.cfg.Ledger.Builds(ctx, ledger.BuildFilter{App: d.cfg.App, Limit: recentBuilds})
	if err != nil {
		p.Err = d.safe("builds", err)
		return p
	}
	for _, b := range bs {
		full, err := d.cfg.Ledger.Build(ctx, b.ID)
		if err != nil {
			p.Err = d.safe("build", err)
			return p
		}
		bv := buildView{Build: full, Live: !full.State.Final()}
		if bv.Live {
			if bv.Lines, bv.LastSeq, bv.Cut, err = d.tail(ctx, full.ID, pageLogLines); err != nil {
				p.Err = d.safe("build log", err)
				return p
			}
		}
		p.Builds = append(p.Builds, bv)
	}
	return p
}

// tail reads a build's log and returns its last n lines, the sequence
// number of the last line and how many lines were left out.
func (d *Dashboard) tail(ctx context.Context, id int64, n int) ([]ferry.LogLine, int64, int, error) {
	var (
		lines []ferry.LogLine
		after int64
		cut   int
	)
	for {
		page, err := d.cfg.Ledger.Logs(ctx, id, after, ledger.MaxLogLimit)
		if err != nil {
			return nil, 0, 0, err
		}
		if len(page) == 0 {
			break
		}
		lines = append(lines, page...)
		after = page[len(page)-1].Seq
		if len(lines) > n {
			cut += len(lines) - n
			lines = slices.Clone(lines[len(lines)-n:])
		}
		if len(page) < ledger.MaxLogLimit {
			break
		}
	}
	return lines, after, cut, nil
}

func (d *Dashboard) loadHistory(ctx context.Context) []historyView {
	var out []historyView
	for _, e := range d.cfg.Envs {
		h := historyView{Env: e.Name}
		ds, err := d.cfg.Ledger.Deployments(ctx, ledger.DeploymentFilter{App: d.cfg.App, Env: e.Name, Limit: historyLen})
		if err != nil {
			h.Err = d.safe("deployments", err)
		}
		h.Deployments = ds
		out = append(out, h)
	}
	return out
}

func (d *Dashboard) loadLocks(ctx context.Context) *locksView {
	l := &locksView{}
	var err error
	if l.Locks, err = d.cfg.Ledger.Locks(ctx, d.cfg.App); err != nil {
		l.Err = d.safe("locks", err)
		return l
	}
	if l.Quarantines, err = d.cfg.Ledger.Quarantines(ctx, d.cfg.App); err != nil {
		l.Err = d.safe("quarantines", err)
	}
	return l
}

func (d *Dashboard) loadNotifications(ctx context.Context) *notificationsView {
	ns, err := d.cfg.Outbox.Notifications(ctx, ledger.NotificationFilter{App: d.cfg.App, Limit: notificationsLen})
	if err != nil {
		return &notificationsView{Err: d.safe("notifications", err)}
	}
	return &notificationsView{Notifications: ns}
}

func (d *Dashboard) loadDORA(ctx context.Context) *doraView {
	rs, err := d.dora.get(ctx, d.cfg.Environments.Changed(), d.cfg.Now(), d.cfg.DORA)
	if err != nil {
		return &doraView{Err: d.safe("dora", err)}
	}
	return &doraView{Reports: rs}
}

// page is the whole dashboard.
func (d *Dashboard) page(w http.ResponseWriter, r *http.Request) {
	user, ok := d.signedIn(w, r, true)
	if !ok {
		return
	}
	v := d.load(r.Context(), user)
	v.Flash = takeFlash(w, r)
	d.html(w, http.StatusOK)
	d.render(w, r, "page.html", v)
}

// fragment is one part of the page, for the script to swap in.
func (d *Dashboard) fragment(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := fragments[name]; !ok {
		d.errorPage(w, r, http.StatusNotFound, "Not found", "The dashboard has no part "+name+".")
		return
	}
	user, ok := d.signedIn(w, r, false)
	if !ok {
		return
	}
	v := d.load(r.Context(), user, name)
	d.html(w, http.StatusOK)
	d.render(w, r, name, v)
}

// mayOverride says whether role may override release windows and freezes
// (given a reason): release.MayOverride's rule about roles.
func mayOverride(role ferry.Role) bool {
	return ferry.ErrorCode(release.MayOverride(role, "reason")) != ferry.EFORBIDDEN
}
