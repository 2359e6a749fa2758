package release

import (
	"fmt"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
)

// InWindow reports whether t falls in window w, on its zone's wall clock:
// on one of its days, From ≤ time of day < To.
func InWindow(w ferry.Window, t time.Time) bool {
	l := t.In(w.Location)
	if !w.Days[l.Weekday()] {
		return false
	}
	start, end := windowOn(w, l.Year(), l.Month(), l.Day())
	return !t.Before(start) && t.Before(end)
}

// windowOn is when w opens and closes on a date of its zone. Wall-clock
// times are built with time.Date, so that a day with a daylight saving
// change keeps 09:00 at 09:00.
func windowOn(w ferry.Window, y int, m time.Month, d int) (start, end time.Time) {
	at := func(off time.Duration) time.Time {
		return time.Date(y, m, d, int(off/time.Hour), int(off%time.Hour/time.Minute), 0, 0, w.Location)
	}
	return at(w.From), at(w.To)
}

// FreezeAt returns the freeze of freezes that holds at t, nil for none.
func FreezeAt(freezes []ferry.Freeze, t time.Time) *ferry.Freeze {
	for i, f := range freezes {
		if !t.Before(f.From) && t.Before(f.To) {
			return &freezes[i]
		}
	}
	return nil
}

// Open reports whether env takes promotions at t: in none of its freezes
// and, when it has windows, in one of them.
func Open(env ferry.Environment, t time.Time) bool {
	if FreezeAt(env.Freezes, t) != nil {
		return false
	}
	if len(env.Windows) == 0 {
		return true
	}
	for _, w := range env.Windows {
		if InWindow(w, t) {
			return true
		}
	}
	return false
}

// maxSteps bounds NextOpening's walk: each step leaves a freeze or jumps
// to a window's next start, so only a configuration whose windows all
// lie inside freezes for years would exhaust it.
const maxSteps = 10000

// NextOpening is the first instant at or after t when env takes
// promotions (Open), and the zone to show it in: the window's that opens
// then, or UTC. ok is false when none is found (every opening frozen for
// longer than maxSteps steps).
func NextOpening(env ferry.Environment, t time.Time) (at time.Time, zone *time.Location, ok bool) {
	cur := t
	for range maxSteps {
		if f := FreezeAt(env.Freezes, cur); f != nil {
			cur = f.To
			continue
		}
		if len(env.Windows) == 0 {
			return cur, time.UTC, true
		}
		var next time.Time
		var nextZone *time.Location
		for _, w := range env.Windows {
			if InWindow(w, cur) {
				return cur, w.Location, true
			}
			if s := nextStart(w, cur); next.IsZero() || s.Before(next) {
				next, nextZone = s, w.Location
			}
		}
		cur, zone = next, nextZone
		if FreezeAt(env.Freezes, cur) == nil {
			return cur, zone, true
		}
	}
	return time.Time{}, nil, false
}

// nextStart is w's first opening after t.
func nextStart(w ferry.Window, t time.Time) time.Time {
	l := t.In(w.Location)
	for d := 0; d <= 7; d++ {
		day := time.Date(l.Year(), l.Month(), l.Day()+d, 12, 0, 0, 0, w.Location)
		if !w.Days[day.Weekday()] {
			continue
		}
		if start, _ := windowOn(w, day.Year(), day.Month(), day.Day()); start.After(t) {
			return start
		}
	}
	panic("release: a window without days") // config refuses one
}

// Closed refuses a promotion to env at t outside its windows or during a
// freeze, naming the next opening; nil when env is open. A rollback is
// never asked.
func Closed(env ferry.Environment, t time.Time) error {
	if Open(env, t) {
		return nil
	}
	why := fmt.Sprintf("%s takes promotions only in its windows (%s)", env.Name, windowsText(env.Windows))
	if f := FreezeAt(env.Freezes, t); f != nil {
		why = fmt.Sprintf("%s is frozen from %s to %s: %s", env.Name, stamp(f.From, time.UTC), stamp(f.To, time.UTC), f.Reason)
	}
	next := "it never opens again in the configured windows and freezes"
	if at, zone, ok := NextOpening(env, t); ok {
		next = "next opening " + stamp(at, zone)
		if zone != time.UTC {
			next += " (" + at.UTC().Format("2006-01-02 15:04") + " UTC)"
		}
	}
	return ferry.Errorf(ferry.ECONFLICT, "%s; %s; wait for it with --when-open, or an admin may --override with --reason", why, next)
}

func windowsText(ws []ferry.Window) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.String()
	}
	return strings.Join(parts, "; ")
}

func stamp(t time.Time, zone *time.Location) string {
	return t.In(zone).Format("Mon 2006-01-02 15:04 MST")
}

// MayOverride refuses a window or freeze override unless role is admin
// and a reason is given.
func MayOverride(role ferry.Role, reason string) error {
	switch {
	case !role.Allows(ferry.RoleAdmin):
		return ferry.Errorf(ferry.EFORBIDDEN, "only an admin may override release windows and freezes (role %s)", role)
	case strings.TrimSpace(reason) == "":
		return ferry.Errorf(ferry.EINVALID, "an override of release windows and freezes needs a reason (--reason)")
	}
	return nil
}
