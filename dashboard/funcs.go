package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
)

// funcs are the templates' helpers: short forms of commits, digests,
// times and durations, each with the full form left to a title.
var funcs = template.FuncMap{
	"short":     ferry.ShortSHA,
	"digest":    shortDigest,
	"abbrev":    abbrev,
	"stamp":     stamp,
	"iso":       iso,
	"dash":      dash,
	"seconds":   seconds,
	"percent":   percent,
	"perDay":    func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"took":      took,
	"day":       func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"reachable": reachable,
	"days":      func(from, to time.Time) string { return fmt.Sprintf("%.0fd", to.Sub(from).Hours()/24) },
	"clock":     func(t time.Time) string { return t.UTC().Format("15:04:05Z") },
	"px":        func(f float64) string { return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64) },
	"mib":       func(b int64) string { return fmt.Sprintf("%.0f", float64(b)/(1<<20)) },
	"ms":        func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) },
}

// shortDigest is the first 12 hex of a sha256:… digest.
func shortDigest(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if !ok {
		hex = d
	}
	if len(hex) > 12 {
		return hex[:12]
	}
	return hex
}

// abbrev shortens a digest or a full commit id and leaves other text.
func abbrev(s string) string {
	switch {
	case strings.HasPrefix(s, "sha256:") && len(s) == 71:
		return shortDigest(s)
	case ferry.ValidCommit(s):
		return ferry.ShortSHA(s)
	}
	return s
}

// when reads a time.Time or an RFC 3339 string.
func when(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case string:
		p, err := time.Parse(time.RFC3339, t)
		return p, err == nil && !p.IsZero() && p.Year() > 1
	}
	return time.Time{}, false
}

// stamp is a time to the minute in UTC, "—" for none.
func stamp(v any) string {
	t, ok := when(v)
	if !ok {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

// iso is a time in RFC 3339, for datetime and title attributes.
func iso(v any) string {
	t, ok := when(v)
	if !ok {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// seconds is a duration given in seconds, in its two largest units.
func seconds(s float64) string {
	if s <= 0 || math.IsNaN(s) {
		return "—"
	}
	return human(time.Duration(s * float64(time.Second)))
}

func human(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%.1fd", d.Hours()/24)
}

func percent(f float64) string { return fmt.Sprintf("%.0f%%", f*100) }

// took is how long a step or build ran, "" while it runs or never ran.
func took(start, end time.Time) string {
	if start.IsZero() || end.IsZero() || end.Before(start) {
		return ""
	}
	return human(end.Sub(start))
}

// reachable is an environment's URL when it names a port a browser can
// reach, "" for none (a listen address such as 127.0.0.1:0).
func reachable(u string) string {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.Port() == "0" {
		return ""
	}
	return u
}
