package ferry

import "fmt"

// AlertKind names what an alert is about.
type AlertKind string

// The alerts plain `ferry status` shows: what an operator should look at
// without asking for a full check.
const (
	// AlertMainlineRed: the newest finished build of the mainline failed.
	AlertMainlineRed AlertKind = "mainline-red"
	// AlertRelease: a head of a gated environment's branch that is not
	// deployed (pushed behind ferry's back, or refused), and why.
	AlertRelease AlertKind = "release"
	// AlertLagging: a branch-fed environment does not run its branch
	// head's build (the controller's convergence verdict).
	AlertLagging AlertKind = "lagging"
)

// Alert is one thing wrong with an environment, in a sentence.
type Alert struct {
	Kind    AlertKind `json:"kind"`
	Message string    `json:"message"`
}

// MainlineRed is the alert for env when its branch is the mainline and the
// newest finished build of it (newest, nil when there is none) failed.
// Only the mainline turns red: a failed feature branch is nobody's alarm.
func MainlineRed(env Environment, mainline string, newest *Build) (Alert, bool) {
	if env.Branch == "" || env.Branch != mainline || env.From != "" || newest == nil || newest.State != BuildFailed {
		return Alert{}, false
	}
	msg := fmt.Sprintf("%s is red: build %d of %s failed", mainline, newest.ID, newest.ShortCommit())
	if newest.Reason != "" {
		msg += " (" + newest.Reason + ")"
	}
	return Alert{Kind: AlertMainlineRed, Message: msg + fmt.Sprintf("; see ferry logs build %d", newest.ID)}, true
}
