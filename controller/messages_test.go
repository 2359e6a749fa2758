package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ferryhq/ferry"
)

// TestRefusalsSayWhatToDo: a refused promotion or quarantine names what is
// wrong in the operator's terms: a misspelled environment gets the closest
// name, a too-short prefix the number of digits needed, a commit whose
// build still runs says so instead of "never ran".
func TestRefusalsSayWhatToDo(t *testing.T) {
	f := newRelFixture(t, 0)
	good := f.commit("master", "good")
	f.inDev(good)
	building := f.commit("master", "still building")
	building.State = ferry.BuildRunning
	if err := f.ledger.UpdateBuild(context.Background(), building); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, env, ref string
		wantCode       string
		wantMsg        string
	}{
		{"misspelled environment", "prdo", "", ferry.ENOTFOUND, `unknown environment "prdo" (did you mean "prod"?) (environments: dev, prod)`},
		{"far from any environment", "qa", "", ferry.ENOTFOUND, `unknown environment "qa" (environments: dev, prod)`},
		{"six hex digits", "prod", good.Commit[:6], ferry.EINVALID, "commit prefix " + good.Commit[:6] + " is too short: give at least 7 hex digits"},
		{"one hex digit", "prod", good.Commit[:1], ferry.EINVALID, "give at least 7 hex digits"},
		{"build still running", "prod", building.Commit[:12], ferry.ECONFLICT,
			fmt.Sprintf("commit %s is still being built (build %d, running): it has not run in dev yet", building.Commit[:12], building.ID)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.ctrl.Promote(context.Background(), tt.env, tt.ref, "ada", "")
			if ferry.ErrorCode(err) != tt.wantCode || !strings.Contains(ferry.ErrorMessage(err), tt.wantMsg) {
				t.Errorf("Promote(%s, %q) = %v, want %s containing %q", tt.env, tt.ref, err, tt.wantCode, tt.wantMsg)
			}
		})
	}
	_, err := f.ctrl.Quarantine(context.Background(), good.Commit[:5], "ada", "bad")
	if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(ferry.ErrorMessage(err), "give at least 7 hex digits") {
		t.Errorf("Quarantine(%s) = %v, want invalid: give at least 7 hex digits", good.Commit[:5], err)
	}
}
