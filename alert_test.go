package ferry

import "testing"

func TestAlertRules(t *testing.T) {
	dev := Environment{Name: "dev", Branch: "master"}
	prod := Environment{Name: "prod", Branch: "release", From: "dev"}
	b := "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	failed := &Build{ID: 7, Commit: b, State: BuildFailed, Reason: "step test: exit status 1"}
	green := &Build{ID: 8, Commit: b, State: BuildSucceeded}
	for _, tt := range []struct {
		name     string
		env      Environment
		mainline string
		newest   *Build
		want     string // "" for no alert
	}{
		{"master red", dev, "master", failed, "master is red: build 7 of bbbbbbbbbbbb failed (step test: exit status 1); see ferry logs build 7"},
		{"master green", dev, "master", green, ""},
		{"no build yet", dev, "master", nil, ""},
		{"not the mainline", Environment{Name: "qa", Branch: "feature"}, "master", failed, ""},
		{"a gated environment is not the mainline's", prod, "master", failed, ""},
	} {
		got, ok := MainlineRed(tt.env, tt.mainline, tt.newest)
		if ok != (tt.want != "") || got.Message != tt.want || (ok && got.Kind != AlertMainlineRed) {
			t.Errorf("%s: MainlineRed = %+v, %v; want %q", tt.name, got, ok, tt.want)
		}
	}
}
