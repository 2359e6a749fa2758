package release

import (
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
)

// NeedsApproval reports whether a promotion to env waits for approvals.
func NeedsApproval(env ferry.Environment) bool {
	return env.Approval != nil && env.Approval.Required > 0
}

// PushNeedsApproval refuses a push that would promote commit to env while
// env has an approval rule: a push would release it without the
// approvals. A rollback by push is not a promotion and is not refused.
func PushNeedsApproval(env ferry.Environment, commit string) error {
	if !NeedsApproval(env) {
		return nil
	}
	return ferry.Errorf(ferry.ECONFLICT, "%s needs %d approval(s) (%s): a push to %s is not released; ask with ferry promote --to %s %s",
		env.Name, env.Approval.Required, RuleText(*env.Approval), env.Branch, env.Name, short(commit))
}

// RuleText quotes an approval rule as ferry.yaml writes it, for the
// refusals that name it.
func RuleText(a ferry.Approval) string {
	return fmt.Sprintf("approval: { required: %d, role: %s, selfApproval: %t, expires: %s }", a.Required, a.Role, a.SelfApproval, a.Expires)
}

// NewRequest is the release request a promotion to env becomes at now:
// pending, waiting for env's approvals until now plus its expiry.
func NewRequest(env ferry.Environment, commit, digest string, buildID int64, author, requester, reason, ref string, now time.Time) *ferry.ReleaseRequest {
	a := env.Approval
	return &ferry.ReleaseRequest{
		Env: env.Name, Ref: ref, Commit: commit, Digest: digest, BuildID: buildID, Author: author,
		Requester: requester, Reason: reason, State: ferry.RequestPending, Required: a.Required,
		Approvals: []ferry.Approver{}, CreatedAt: now, ExpiresAt: now.Add(a.Expires),
	}
}

// Expired reports whether the pending request r has outlived its expiry at
// now.
func Expired(r *ferry.ReleaseRequest, now time.Time) bool {
	return r.State == ferry.RequestPending && !now.Before(r.ExpiresAt)
}

// ApprovalFacts is what an approval is decided on.
type ApprovalFacts struct {
	// Rule is the environment's approval rule.
	Rule ferry.Approval
	// Request is the request approved, as the ledger holds it.
	Request *ferry.ReleaseRequest
	// Approver is the token that approves, and its role.
	Approver string
	Role     ferry.Role
	Now      time.Time
}

// Approve decides an approval: the request must be pending and not
// expired; the approver's token must have the rule's role, must not have
// approved it already and, unless the rule allows self-approval, must be
// neither the requester nor the commit's author (when known: SamePerson).
// complete says this approval is the last one the request needed. A
// refusal is a *ferry.Error that quotes the rule broken.
func Approve(f ApprovalFacts) (complete bool, err error) {
	r := f.Request
	id := r.ID
	switch r.State {
	case ferry.RequestApproved:
		return false, ferry.Errorf(ferry.ECONFLICT, "release request %d is approved already (by %s): it needs no more approvals", id, strings.Join(r.Approvers(), ", "))
	case ferry.RequestCancelled:
		return false, ferry.Errorf(ferry.ECONFLICT, "release request %d was cancelled (%s): it cannot be approved; ask again with ferry promote", id, r.Result)
	case ferry.RequestExpired:
		return false, ferry.Errorf(ferry.ECONFLICT, "release request %d expired at %s UTC: it cannot be approved; ask again with ferry promote --to %s", id, r.ExpiresAt.UTC().Format(time.DateTime), r.Env)
	}
	if Expired(r, f.Now) {
		return false, ferry.Errorf(ferry.ECONFLICT, "release request %d expired at %s UTC (%s): it cannot be approved; ask again with ferry promote --to %s",
			id, r.ExpiresAt.UTC().Format(time.DateTime), "expires: "+f.Rule.Expires.String(), r.Env)
	}
	if !f.Role.Allows(f.Rule.Role) {
		return false, ferry.Errorf(ferry.EFORBIDDEN, "%s (role %s) may not approve a release to %s: %s needs role %s", f.Approver, f.Role, r.Env, RuleText(f.Rule), f.Rule.Role)
	}
	for _, a := range r.Approvals {
		if a.Actor == f.Approver {
			return false, ferry.Errorf(ferry.ECONFLICT, "%s approved release request %d already: each approval is by a different person (%d of %d)", f.Approver, id, len(r.Approvals), r.Required)
		}
	}
	if !f.Rule.SelfApproval {
		if f.Approver == r.Requester {
			return false, ferry.Errorf(ferry.EFORBIDDEN, "self-approval is refused: %s asked for release request %d, and %s in %s needs someone else", f.Approver, id, RuleText(f.Rule), r.Env)
		}
		if SamePerson(f.Approver, r.Author) {
			return false, ferry.Errorf(ferry.EFORBIDDEN, "self-approval is refused: %s wrote %s (author %s), and %s in %s needs someone else", f.Approver, ferry.ShortSHA(r.Commit), r.Author, RuleText(f.Rule), r.Env)
		}
	}
	return len(r.Approvals)+1 >= r.Required, nil
}

// Cancel decides a cancellation of request r by actor with role: only a
// pending request is cancelled, by its requester or by a token with the
// rule's role.
func Cancel(rule ferry.Approval, r *ferry.ReleaseRequest, actor string, role ferry.Role, now time.Time) error {
	switch {
	case r.State != ferry.RequestPending:
		return ferry.Errorf(ferry.ECONFLICT, "release request %d is %s, not pending: nothing to cancel", r.ID, r.State)
	case Expired(r, now):
		return ferry.Errorf(ferry.ECONFLICT, "release request %d expired at %s UTC: nothing to cancel", r.ID, r.ExpiresAt.UTC().Format(time.DateTime))
	case actor != r.Requester && !role.Allows(rule.Role):
		return ferry.Errorf(ferry.EFORBIDDEN, "%s (role %s) may not cancel release request %d: only its requester (%s) or a %s may", actor, role, r.ID, r.Requester, rule.Role)
	}
	return nil
}

// SamePerson reports whether token name actor is the commit author author
// ("Name <email>", as a build records it): the same name, the same email,
// or the email's local part, compared without case. An empty author is
// nobody.
func SamePerson(actor, author string) bool {
	actor, author = strings.TrimSpace(actor), strings.TrimSpace(author)
	if actor == "" || author == "" {
		return false
	}
	names := []string{author}
	if a, err := mail.ParseAddress(author); err == nil {
		names = []string{a.Name, a.Address}
		if local, _, ok := strings.Cut(a.Address, "@"); ok {
			names = append(names, local)
		}
	}
	for _, n := range names {
		if n != "" && strings.EqualFold(n, actor) {
			return true
		}
	}
	return false
}
