package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// Approvals is what the dashboard asks of the controller about release
// requests: promotions waiting for approvals by other people.
type Approvals interface {
	ReleaseRequests(ctx context.Context, f ledger.RequestFilter) ([]*ferry.ReleaseRequest, error)
	Approve(ctx context.Context, id int64, approver string, role ferry.Role, reason string) (*ferry.ReleaseRequest, *ferry.Action, error)
	CancelRequest(ctx context.Context, id int64, actor string, role ferry.Role, reason string) (*ferry.ReleaseRequest, error)
}

// requestsView is the pending releases.
type requestsView struct {
	Pending []requestView
	Err     string
}

// requestView is one pending release, with the buttons the signed-in
// token may press: the API's rules (release.Approve, release.Cancel)
// decide, and decide again when it is pressed.
type requestView struct {
	*ferry.ReleaseRequest
	CanApprove, CanCancel bool
	// Why says why the token may not approve it.
	Why string
}

func (d *Dashboard) loadRequests(ctx context.Context, user *ferry.Token) *requestsView {
	v := &requestsView{}
	rs, err := d.cfg.Approvals.ReleaseRequests(ctx, ledger.RequestFilter{App: d.cfg.App, States: []ferry.RequestState{ferry.RequestPending}, Limit: 20})
	if err != nil {
		v.Err = d.safe("release requests", err)
		return v
	}
	now := d.cfg.Now()
	for _, q := range rs {
		rule := ferry.Approval{Required: q.Required, Role: ferry.DefaultApprovalRole}
		if a := d.envs[q.Env].Approval; a != nil {
			rule = *a
		}
		rv := requestView{ReleaseRequest: q}
		_, err := release.Approve(release.ApprovalFacts{Rule: rule, Request: q, Approver: user.Name, Role: user.Role, Now: now})
		rv.CanApprove = err == nil
		if err != nil {
			rv.Why = ferry.ErrorMessage(err)
		}
		rv.CanCancel = release.Cancel(rule, q, user.Name, user.Role, now) == nil
		v.Pending = append(v.Pending, rv)
	}
	return v
}

// requestAction approves or cancels release request {id} for a POST from
// the dashboard's own origin, as the API's routes do.
func (d *Dashboard) requestAction(w http.ResponseWriter, r *http.Request) {
	if !d.sameOrigin(w, r) {
		return
	}
	user, ok := d.signedIn(w, r, false)
	if !ok {
		return
	}
	reply := func(status int, n notice) { d.reply(w, r, status, n) }
	act := r.PathValue("action")
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	switch {
	case d.cfg.Approvals == nil:
		reply(http.StatusNotFound, notice{Text: "This server has no release requests."})
		return
	case err != nil || id <= 0:
		reply(http.StatusNotFound, notice{Text: fmt.Sprintf("There is no release request %q.", r.PathValue("id"))})
		return
	case act != "approve" && act != "cancel":
		reply(http.StatusNotFound, notice{Text: fmt.Sprintf("There is no action %q for a release request (approve, cancel).", act)})
		return
	case !user.Role.Allows(ferry.RoleDeployer):
		reply(http.StatusForbidden, notice{Text: fmt.Sprintf("Token %q has role %s; to %s a release request needs deployer.", user.Name, user.Role, act)})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		reply(http.StatusBadRequest, notice{Text: "The form could not be read; try again."})
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if len(reason) > maxReason {
		reply(http.StatusBadRequest, notice{Text: fmt.Sprintf("The reason is %d characters long; at most %d, please.", len(reason), maxReason)})
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), actionTimeout)
	defer cancel()
	d.cfg.Logger.Info("dashboard release request", "action", act, "id", id, "token", user.Name, "reason", reason)
	var msg string
	if act == "approve" {
		var (
			q *ferry.ReleaseRequest
			a *ferry.Action
		)
		if q, a, err = d.cfg.Approvals.Approve(ctx, id, user.Name, user.Role, reason); err == nil {
			msg = fmt.Sprintf("Release request %d approved (%d of %d).", id, len(q.Approvals), q.Required)
			if a != nil {
				msg = fmt.Sprintf("Release request %d approved: promotion of %s to %s queued as action %d.", id, ferry.ShortSHA(q.Commit), q.Env, a.ID)
			}
		}
	} else if _, err = d.cfg.Approvals.CancelRequest(ctx, id, user.Name, user.Role, reason); err == nil {
		msg = fmt.Sprintf("Release request %d cancelled.", id)
	}
	if err != nil {
		reply(ferry.HTTPStatus(err), notice{Text: fmt.Sprintf("%s of release request %d refused: %s", capital(act), id, d.safe(act, err))})
		return
	}
	reply(http.StatusOK, notice{OK: true, Text: msg})
}
