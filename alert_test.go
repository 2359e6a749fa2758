package ferry

import "testing"

func TestAlertRules(t *testing.T) {
	dev := Environment{Name: "dev", Branch: "master"}
	prod := Environment{Name: "prod", Branch: "release", From: "dev"}
	a, b := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
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
	for _, tt := range []struct {
		name    string
		env     Environment
		running string
		rolling bool
		newest  *Build
		want    string
	}{
		{"runs the newest", dev, b, false, green, ""},
		{"lags", dev, a, false, green, "dev runs aaaaaaaaaaaa, not master's newest succeeded build 8 (bbbbbbbbbbbb); see ferry history dev"},
		{"runs nothing", dev, "", false, green, "dev runs nothing, not master's newest succeeded build 8 (bbbbbbbbbbbb); see ferry history dev"},
		{"rolling out", dev, a, true, green, ""},
		{"nothing built", dev, a, false, nil, ""},
		{"a gated environment follows releases, not its branch", prod, a, false, green, ""},
	} {
		got, ok := Lagging(tt.env, tt.running, tt.rolling, tt.newest)
		if ok != (tt.want != "") || got.Message != tt.want || (ok && got.Kind != AlertLagging) {
			t.Errorf("%s: Lagging = %+v, %v; want %q", tt.name, got, ok, tt.want)
		}
	}
}
