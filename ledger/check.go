package ledger

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferryhq/ferry"
)

// The helpers below are what every engine does the same way before and
// after its SQL: check and normalise input, and name errors. Keeping them
// here keeps the engines' answers identical.

// BuildNotFound is the error for a missing build.
func BuildNotFound(id int64) error {
	return ferry.Errorf(ferry.ENOTFOUND, "build %d not found", id)
}

// CommitNotFound is the error for a commit of an app that has no build.
func CommitNotFound(app, commit string) error {
	return ferry.Errorf(ferry.ENOTFOUND, "no build of %s at commit %s", app, ferry.ShortSHA(commit))
}

// DuplicateBuild is the error for a second build of the same commit.
func DuplicateBuild(app, commit string) error {
	return ferry.Errorf(ferry.ECONFLICT, "%s commit %s already has a build", app, ferry.ShortSHA(commit))
}

// PrepareCreate checks a build about to be created and normalises it in
// place: an empty State becomes queued and free text is made storable.
func PrepareCreate(b *ferry.Build) error {
	if b.App == "" {
		return ferry.Errorf(ferry.EINVALID, "build needs an app")
	}
	if !ferry.ValidCommit(b.Commit) {
		return ferry.Errorf(ferry.EINVALID, "build commit %q is not a full 40-hex commit id", b.Commit)
	}
	if b.CreatedAt.IsZero() {
		return ferry.Errorf(ferry.EINVALID, "build of %s needs a creation time", ferry.ShortSHA(b.Commit))
	}
	if b.State == "" {
		b.State = ferry.BuildQueued
	}
	if !validBuildState(b.State) {
		return ferry.Errorf(ferry.EINVALID, "unknown build state %q", b.State)
	}
	if err := CheckKeys(Key{"app", b.App, MaxName}, Key{"branch", b.Branch, MaxRef}, Key{"trigger", b.Trigger, MaxName}); err != nil {
		return err
	}
	return prepareBuildText(b)
}

// PrepareUpdate checks a build about to be updated and makes its free text
// storable.
func PrepareUpdate(b *ferry.Build) error {
	if !validBuildState(b.State) {
		return ferry.Errorf(ferry.EINVALID, "unknown build state %q", b.State)
	}
	return prepareBuildText(b)
}

// prepareBuildText checks the image and digest a build names and caps its
// free text: what both create and update write.
func prepareBuildText(b *ferry.Build) error {
	if err := CheckKeys(Key{"build image", b.Image, MaxRef}, Key{"build digest", b.Digest, MaxRef}); err != nil {
		return err
	}
	b.Subject = StoreText(b.Subject, MaxSubject)
	b.Author = StoreText(b.Author, MaxPerson)
	b.Reason = StoreText(b.Reason, MaxText)
	return nil
}

// Transition applies a compare-and-set state change to b as
// Store.TransitionBuild documents: ECONFLICT if b is no longer in from.
func Transition(b *ferry.Build, from, to ferry.BuildState, reason string, at time.Time) error {
	for _, s := range []ferry.BuildState{from, to} {
		if !validBuildState(s) {
			return ferry.Errorf(ferry.EINVALID, "unknown build state %q", s)
		}
	}
	if at.IsZero() && (to == ferry.BuildRunning || to.Final()) {
		return ferry.Errorf(ferry.EINVALID, "moving build %d to %s needs a time", b.ID, to)
	}
	if b.State != from {
		return ferry.Errorf(ferry.ECONFLICT, "build %d is %s, not %s", b.ID, b.State, from)
	}
	b.State = to
	b.Reason = StoreText(reason, MaxText)
	switch {
	case to == ferry.BuildRunning:
		b.StartedAt, b.FinishedAt = at, time.Time{}
	case to == ferry.BuildQueued:
		b.StartedAt, b.FinishedAt = time.Time{}, time.Time{}
	case to.Final():
		b.FinishedAt = at
	}
	return nil
}

// PrepareStep checks a step about to be saved and makes its error text
// storable.
func PrepareStep(s *ferry.Step) error {
	if s.Name == "" {
		return ferry.Errorf(ferry.EINVALID, "step of build %d needs a name", s.BuildID)
	}
	if err := CheckKey("step name", s.Name, MaxName); err != nil {
		return err
	}
	if !validStepState(s.State) {
		return ferry.Errorf(ferry.EINVALID, "step %s: unknown state %q", s.Name, s.State)
	}
	if s.Attempts < 0 {
		return ferry.Errorf(ferry.EINVALID, "step %s: negative attempts %d", s.Name, s.Attempts)
	}
	s.Error = StoreText(s.Error, MaxText)
	return nil
}

// PrepareLines checks log lines about to be appended to build buildID and
// normalises them in place: BuildID is set and text made storable. Nothing
// is changed when a line is refused.
func PrepareLines(buildID int64, lines []ferry.LogLine) error {
	for i, l := range lines {
		if l.Time.IsZero() {
			return ferry.Errorf(ferry.EINVALID, "log line %d of build %d needs a time", i, buildID)
		}
		if err := CheckKey(fmt.Sprintf("step of log line %d of build %d", i, buildID), l.Step, MaxName); err != nil {
			return err
		}
	}
	for i := range lines {
		lines[i].BuildID = buildID
		lines[i].Text = StoreText(lines[i].Text, MaxLogLine)
	}
	return nil
}

// PrepareEvent checks an event about to be added and makes its text
// storable.
func PrepareEvent(e *ferry.Event) error {
	if e.Kind == "" {
		return ferry.Errorf(ferry.EINVALID, "event needs a kind")
	}
	if e.Time.IsZero() {
		return ferry.Errorf(ferry.EINVALID, "event %s needs a time", e.Kind)
	}
	if err := CheckKeys(Key{"event kind", e.Kind, MaxName}, Key{"event app", e.App, MaxName},
		Key{"event environment", e.Env, MaxName}, Key{"event commit", e.Commit, MaxRef}); err != nil {
		return err
	}
	e.Actor = StoreText(e.Actor, MaxPerson)
	e.Message = StoreText(e.Message, MaxText)
	e.Reason = StoreText(e.Reason, MaxText)
	return nil
}

// CleanText returns s as valid UTF-8 without NUL bytes, replacing anything
// else by U+FFFD: PostgreSQL refuses both, and both engines must store the
// same text.
func CleanText(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func validBuildState(s ferry.BuildState) bool {
	switch s {
	case ferry.BuildQueued, ferry.BuildRunning, ferry.BuildSucceeded,
		ferry.BuildFailed, ferry.BuildSuperseded, ferry.BuildCanceled:
		return true
	}
	return false
}

func validStepState(s ferry.StepState) bool {
	switch s {
	case ferry.StepPending, ferry.StepRunning, ferry.StepSucceeded,
		ferry.StepFailed, ferry.StepSkipped, ferry.StepCanceled:
		return true
	}
	return false
}
