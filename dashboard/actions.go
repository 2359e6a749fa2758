package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/release"
)

// actionTimeout bounds one action; it does not end when the browser
// goes away, so a promotion is never cut off halfway by a closed tab.
const actionTimeout = 2 * time.Minute

// maxReason bounds the reason a person types.
const maxReason = 500

// action runs promote, rollback, lock or unlock on an environment — or
// queues an admin's promotion overriding its release windows and freezes — for a
// POST from the dashboard's own origin by a token whose role allows it,
// recording the token's name as the actor and the form's reason. A form
// sent by the script (X-Ferry-Async: 1) gets the outcome as an HTML
// fragment; a plain form gets a redirect to the dashboard, which shows it.
func (d *Dashboard) action(w http.ResponseWriter, r *http.Request) {
	if !d.sameOrigin(w, r) {
		return
	}
	user, ok := d.signedIn(w, r, false)
	if !ok {
		return
	}
	reply := func(status int, n notice) { d.reply(w, r, status, n) }
	name, act := r.PathValue("env"), r.PathValue("action")
	env, known := d.envs[name]
	switch {
	case !known:
		reply(http.StatusNotFound, notice{Text: fmt.Sprintf("There is no environment %q.", name)})
		return
	case act != "promote" && act != "rollback" && act != "lock" && act != "unlock" && (act != "override" || d.cfg.Queue == nil):
		reply(http.StatusNotFound, notice{Text: fmt.Sprintf("There is no action %q (promote, rollback, lock, unlock).", act)})
		return
	case auth.MayChange(user, env) != nil:
		need := auth.EnvRole(env)
		d.cfg.Logger.Warn("dashboard refused", "action", act, "env", name, "token", user.Name, "role", user.Role, "need", need)
		reply(http.StatusForbidden, notice{Text: fmt.Sprintf("Token %q has role %s; %s of %s needs %s.", user.Name, user.Role, act, name, need)})
		return
	case (act == "promote" || act == "rollback" || act == "override") && env.From == "":
		reply(http.StatusBadRequest, notice{Text: fmt.Sprintf("%s takes no promotions or rollbacks: it follows its branch.", name)})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		reply(http.StatusBadRequest, notice{Text: "The form could not be read; try again."})
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	ref := strings.TrimSpace(r.PostForm.Get("ref"))
	if len(reason) > maxReason {
		reply(http.StatusBadRequest, notice{Text: fmt.Sprintf("The reason is %d characters long; at most %d, please.", len(reason), maxReason)})
		return
	}
	if act == "lock" && reason == "" {
		reply(http.StatusBadRequest, notice{Text: fmt.Sprintf("Say why %s is locked: a lock needs a reason.", name)})
		return
	}
	if act == "override" {
		if err := release.MayOverride(user.Role, reason); err != nil {
			d.cfg.Logger.Warn("dashboard refused", "action", act, "env", name, "token", user.Name, "role", user.Role, "err", err)
			reply(ferry.HTTPStatus(err), notice{Text: fmt.Sprintf("Override of %s refused: %s.", name, ferry.ErrorMessage(err))})
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), actionTimeout)
	defer cancel()
	d.cfg.Logger.Info("dashboard action", "action", act, "env", name, "ref", ref, "token", user.Name, "reason", reason)
	var (
		msg string
		err error
	)
	switch act {
	case "promote":
		var dp *ferry.Deployment
		dp, err = d.cfg.Releases.Promote(ctx, name, ref, user.Name, reason)
		switch {
		case err == nil && dp == nil: // held back by env's approval rule
			msg = fmt.Sprintf("Promotion to %s recorded as a pending release: it waits for approval by someone else (Pending releases).", name)
		case err == nil:
			msg = fmt.Sprintf("Promotion of %s to %s queued as deployment %d.", name, describe(dp), dp.ID)
		}
	case "override":
		var a *ferry.Action
		a, err = d.cfg.Queue.Queue(ctx, ferry.Action{Env: name, Kind: ferry.ActionPromote, Ref: ref, Override: true, Actor: user.Name, Reason: reason})
		if err == nil {
			msg = fmt.Sprintf("Promotion to %s overriding its release windows and freezes queued as action %d; the history shows its deployment.", name, a.ID)
		}
	case "rollback":
		var dp *ferry.Deployment
		if dp, err = d.cfg.Releases.Rollback(ctx, name, ref, user.Name, reason); err == nil {
			msg = fmt.Sprintf("Rollback of %s to %s queued as deployment %d.", name, describe(dp), dp.ID)
		}
	case "lock":
		if _, err = d.cfg.Releases.Lock(ctx, name, user.Name, reason); err == nil {
			msg = fmt.Sprintf("%s is locked: promotions are refused until it is unlocked.", name)
		}
	case "unlock":
		var l *ferry.Lock
		if l, err = d.cfg.Releases.Unlock(ctx, name, user.Name, reason); err == nil {
			msg = fmt.Sprintf("%s is unlocked (locked by %s: %s).", name, l.Actor, l.Reason)
		}
	}
	if err != nil {
		reply(ferry.HTTPStatus(err), notice{Text: fmt.Sprintf("%s of %s refused: %s", capital(act), name, d.safe(act, err))})
		return
	}
	reply(http.StatusOK, notice{OK: true, Text: msg})
}

// describe names what a deployment rolls out: its release and commit.
func describe(dp *ferry.Deployment) string {
	if dp.Release != "" {
		return dp.Release + " (" + ferry.ShortSHA(dp.Commit) + ")"
	}
	return ferry.ShortSHA(dp.Commit)
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

type buildPageView struct {
	base
	Build buildView
	Err   string
}

// buildPage is one build with its steps and its whole log.
func (d *Dashboard) buildPage(w http.ResponseWriter, r *http.Request) {
	user, ok := d.signedIn(w, r, true)
	if !ok {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		d.errorPage(w, r, http.StatusNotFound, "Not found", "No such build.")
		return
	}
	b, err := d.cfg.Ledger.Build(r.Context(), id)
	if err != nil {
		d.errorPage(w, r, ferry.HTTPStatus(err), "No build", d.safe("build", err))
		return
	}
	v := buildPageView{base: d.base(user), Build: buildView{Build: b, Live: !b.State.Final()}}
	if v.Build.Lines, v.Build.LastSeq, v.Build.Cut, err = d.tail(r.Context(), id, buildPageLines); err != nil {
		v.Err = d.safe("build log", err)
	}
	d.html(w, http.StatusOK)
	d.render(w, r, "build.html", v)
}
