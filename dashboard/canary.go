package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
)

// canaryCommands are the rollout commands, by the path's name.
var canaryCommands = map[string]string{"pause": "paused", "resume": "resumed", "abort": "aborted", "promote": "promoted"}

// canaryAction runs a rollout command (pause, resume, abort, promote) on
// an environment's canary, for a POST from the dashboard's own origin by
// a token whose role allows changing that environment — the API's rule
// (auth.MayChange), checked here as for the other actions.
func (d *Dashboard) canaryAction(w http.ResponseWriter, r *http.Request) {
	if !d.sameOrigin(w, r) {
		return
	}
	user, ok := d.signedIn(w, r, false)
	if !ok {
		return
	}
	name, cmd := r.PathValue("env"), r.PathValue("cmd")
	env, known := d.envs[name]
	done, isCmd := canaryCommands[cmd]
	switch {
	case !known || env.Canary == nil || d.cfg.Canaries == nil:
		d.reply(w, r, http.StatusNotFound, notice{Text: fmt.Sprintf("%q has no canary releases (strategy.canary in ferry.yaml).", name)})
		return
	case !isCmd:
		d.reply(w, r, http.StatusNotFound, notice{Text: fmt.Sprintf("There is no rollout command %q (pause, resume, abort, promote).", cmd)})
		return
	case auth.MayChange(user, env) != nil:
		need := auth.EnvRole(env)
		d.cfg.Logger.Warn("dashboard refused", "action", "rollout "+cmd, "env", name, "token", user.Name, "role", user.Role, "need", need)
		d.reply(w, r, http.StatusForbidden, notice{Text: fmt.Sprintf("Token %q has role %s; to %s the canary on %s needs %s.", user.Name, user.Role, cmd, name, need)})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		d.reply(w, r, http.StatusBadRequest, notice{Text: "The form could not be read; try again."})
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if len(reason) > maxReason {
		d.reply(w, r, http.StatusBadRequest, notice{Text: fmt.Sprintf("The reason is %d characters long; at most %d, please.", len(reason), maxReason)})
		return
	}
	do := map[string]func(ctx context.Context, env, actor, reason string) error{
		"pause": d.cfg.Canaries.CanaryPause, "resume": d.cfg.Canaries.CanaryResume,
		"abort": d.cfg.Canaries.CanaryAbort, "promote": d.cfg.Canaries.CanaryPromote,
	}[cmd]
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), actionTimeout)
	defer cancel()
	d.cfg.Logger.Info("dashboard action", "action", "rollout "+cmd, "env", name, "token", user.Name, "reason", reason)
	if err := do(ctx, name, user.Name, reason); err != nil {
		d.reply(w, r, ferry.HTTPStatus(err), notice{Text: fmt.Sprintf("Rollout %s on %s refused: %s", cmd, name, d.safe("rollout "+cmd, err))})
		return
	}
	d.reply(w, r, http.StatusOK, notice{OK: true, Text: fmt.Sprintf("The canary on %s is %s.", name, done)})
}

// reply answers an action: a form sent by the script (X-Ferry-Async: 1)
// gets the outcome as an HTML fragment, a plain form a redirect to the
// dashboard, which shows it.
func (d *Dashboard) reply(w http.ResponseWriter, r *http.Request, status int, n notice) {
	if r.Header.Get("X-Ferry-Async") == "1" {
		d.html(w, status)
		d.render(w, r, "notice", n)
		return
	}
	setFlash(w, r, n)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
