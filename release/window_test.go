package release

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has

	"github.com/ferryhq/ferry"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestNextOpening(t *testing.T) {
	berlin, ny := mustZone(t, "Europe/Berlin"), mustZone(t, "America/New_York")
	days := func(s string) [7]bool {
		d, err := ferry.ParseDays(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	office := ferry.Window{Days: days("Mon-Thu"), From: 9 * time.Hour, To: 16 * time.Hour, Location: berlin}
	nyMornings := ferry.Window{Days: days("Fri"), From: 8 * time.Hour, To: 10 * time.Hour, Location: ny}
	weekend := ferry.Window{Days: days("Fri-Mon"), From: 22 * time.Hour, To: 24 * time.Hour, Location: time.UTC}
	utc := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	holidays := ferry.Freeze{From: utc("2026-12-21 00:00"), To: utc("2026-12-22 11:00"), Reason: "holidays"}
	long := ferry.Freeze{From: utc("2026-12-24 00:00"), To: utc("2027-01-02 00:00"), Reason: "year end"}
	tests := []struct {
		name     string
		windows  []ferry.Window
		freezes  []ferry.Freeze
		at       string // UTC
		wantOpen bool
		want     string // UTC
	}{
		{"inside the window", []ferry.Window{office}, nil, "2026-12-03 10:00", true, "2026-12-03 10:00"},              // Thu 11:00 CET
		{"before it opens, same day", []ferry.Window{office}, nil, "2026-12-03 07:59", false, "2026-12-03 08:00"},     // Thu 08:59 CET
		{"as it closes (To is excluded)", []ferry.Window{office}, nil, "2026-12-03 15:00", false, "2026-12-07 08:00"}, // Thu 16:00 CET → Mon
		{"at the weekend", []ferry.Window{office}, nil, "2026-12-05 12:00", false, "2026-12-07 08:00"},                // Sat → Mon 09:00 CET
		{"spring forward: Monday 09:00 CEST", []ferry.Window{office}, nil, "2026-03-27 17:00", false, "2026-03-30 07:00"},
		{"fall back: Monday 09:00 CET", []ferry.Window{office}, nil, "2026-10-23 17:00", false, "2026-10-26 08:00"},
		{"the Berlin date, not UTC's", []ferry.Window{office}, nil, "2026-12-06 23:30", false, "2026-12-07 08:00"},              // Mon 00:30 CET
		{"New York's DST starts earlier", []ferry.Window{nyMornings}, nil, "2026-03-12 12:00", false, "2026-03-13 12:00"},       // Fri 08:00 EDT
		{"the earliest of two windows", []ferry.Window{office, nyMornings}, nil, "2026-12-03 16:00", false, "2026-12-04 13:00"}, // Fri 08:00 EST
		{"days wrap over the weekend", []ferry.Window{weekend}, nil, "2026-12-08 12:00", false, "2026-12-11 22:00"},             // Tue → Fri
		{"window to midnight", []ferry.Window{weekend}, nil, "2026-12-07 23:59", true, "2026-12-07 23:59"},                      // Mon
		{"a freeze inside the window", []ferry.Window{office}, []ferry.Freeze{holidays}, "2026-12-21 09:00", false, "2026-12-22 11:00"},
		{"a freeze ending outside the window", []ferry.Window{office}, []ferry.Freeze{long}, "2026-12-28 09:00", false, "2027-01-04 08:00"},
		{"no windows: the freeze's end", nil, []ferry.Freeze{long}, "2026-12-28 09:00", false, "2027-01-02 00:00"},
		{"no windows, no freeze: always", nil, nil, "2026-12-05 03:00", true, "2026-12-05 03:00"},
		{"back-to-back freezes", nil, []ferry.Freeze{{From: utc("2026-12-01 00:00"), To: utc("2026-12-02 00:00")}, {From: utc("2026-12-02 00:00"), To: utc("2026-12-03 00:00")}}, "2026-12-01 12:00", false, "2026-12-03 00:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := ferry.Environment{Name: "prod", Windows: tt.windows, Freezes: tt.freezes}
			at := utc(tt.at)
			if got := Open(env, at); got != tt.wantOpen {
				t.Errorf("Open(%s) = %v, want %v", tt.at, got, tt.wantOpen)
			}
			got, _, ok := NextOpening(env, at)
			if !ok || !got.Equal(utc(tt.want)) {
				t.Errorf("NextOpening(%s) = %s (%v), want %s UTC", tt.at, got.UTC().Format("2006-01-02 15:04 Mon"), ok, tt.want)
			}
			if err := Closed(env, at); (err == nil) != tt.wantOpen {
				t.Errorf("Closed(%s) = %v, want refused: %v", tt.at, err, !tt.wantOpen)
			}
		})
	}
}

func TestClosedNamesTheOpening(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	days, _ := ferry.ParseDays("Mon-Thu")
	env := ferry.Environment{Name: "prod", Windows: []ferry.Window{{Days: days, From: 9 * time.Hour, To: 16 * time.Hour, Location: berlin}},
		Freezes: []ferry.Freeze{{From: time.Date(2026, 12, 21, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 22, 11, 0, 0, 0, time.UTC), Reason: "holidays"}}}
	for _, tt := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC),
			"prod takes promotions only in its windows (Mon-Thu 09:00-16:00 Europe/Berlin); next opening Mon 2026-12-07 09:00 CET (2026-12-07 08:00 UTC); wait for it with --when-open, or an admin may --override with --reason"},
		{time.Date(2026, 12, 21, 9, 0, 0, 0, time.UTC),
			"prod is frozen from Mon 2026-12-21 00:00 UTC to Tue 2026-12-22 11:00 UTC: holidays; next opening Tue 2026-12-22 12:00 CET (2026-12-22 11:00 UTC)"},
	} {
		err := Closed(env, tt.at)
		if ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), tt.want) {
			t.Errorf("Closed(%s) = %v, want ECONFLICT containing %q", tt.at, err, tt.want)
		}
	}
}

func TestParseDays(t *testing.T) {
	for _, tt := range []struct {
		in, want, err string
	}{
		{"Mon-Thu", "Mon-Thu", ""},
		{"mon,wed,fri", "Mon,Wed,Fri", ""},
		{"Fri-Mon", "Mon,Fri-Sun", ""},
		{"Sun", "Sun", ""},
		{"Mon-Sun", "Mon-Sun", ""},
		{"Mon-Frday", "", `unknown day "Frday"`},
		{"", "", "no days"},
	} {
		got, err := ferry.ParseDays(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseDays(%q) = %v, want error %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || ferry.DaysString(got) != tt.want {
			t.Errorf("ParseDays(%q) = %s, %v; want %s", tt.in, ferry.DaysString(got), err, tt.want)
		}
	}
}

func TestMayOverride(t *testing.T) {
	if err := MayOverride(ferry.RoleReleaser, "hotfix"); ferry.ErrorCode(err) != ferry.EFORBIDDEN {
		t.Errorf("MayOverride(releaser) = %v, want EFORBIDDEN", err)
	}
	if err := MayOverride(ferry.RoleAdmin, " "); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("MayOverride(admin, no reason) = %v, want EINVALID", err)
	}
	if err := MayOverride(ferry.RoleAdmin, "hotfix for #12"); err != nil {
		t.Errorf("MayOverride(admin, reason) = %v", err)
	}
}
