package ferry

import "testing"

func TestClosest(t *testing.T) {
	fields := []string{"branch", "from", "soak", "releaseTag", "tags", "runtime", "verify"}
	envs := []string{"dev", "staging", "prod"}
	for _, tt := range []struct {
		word       string
		candidates []string
		want       string
	}{
		{"brnch", fields, "branch"},
		{"frm", fields, "from"},
		{"releasetag", fields, "releaseTag"},
		{"relaseTags", fields, "releaseTag"},
		{"runtmie", fields, "runtime"},
		{"verfy", fields, "verify"},
		{"colour", fields, ""},
		{"x", fields, ""},
		{"prdo", envs, "prod"},
		{"Prod", envs, "prod"},
		{"dve", envs, "dev"},
		{"stagign", envs, "staging"},
		{"prod", envs, ""},
		{"qa", envs, ""},
	} {
		if got := Closest(tt.word, tt.candidates); got != tt.want {
			t.Errorf("Closest(%q, %v) = %q, want %q", tt.word, tt.candidates, got, tt.want)
		}
	}
	if got, want := DidYouMean("prdo", envs), ` (did you mean "prod"?)`; got != want {
		t.Errorf("DidYouMean(prdo) = %q, want %q", got, want)
	}
}

func TestUnknownEnvironment(t *testing.T) {
	names := []string{"dev", "prod"}
	for _, tt := range []struct{ name, want string }{
		{"prdo", `unknown environment "prdo" (did you mean "prod"?) (environments: dev, prod)`},
		{"staging", `unknown environment "staging" (environments: dev, prod)`},
	} {
		err := UnknownEnvironment(tt.name, names)
		if ErrorCode(err) != ENOTFOUND || ErrorMessage(err) != tt.want {
			t.Errorf("UnknownEnvironment(%q) = %v, want not found: %s", tt.name, err, tt.want)
		}
	}
}
