package dashboard

import (
	"context"
	"fmt"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// The activity chart: per environment, the deployments and the failed
// ones of each of the last chartDays days (UTC), drawn as inline SVG on
// the server. A deployment counts on the day it finished; it counts when
// it was a change (a deploy or a promotion, as DORA counts them) that
// ended succeeded, failed or rolled back; failed and rolled back are its
// failures.
const (
	chartDays   = 14
	chartHeight = 40.0 // px of the tallest bar
	barStep     = 10   // px from one bar to the next
	barWidth    = 8
)

// activityView is the chart of every environment.
type activityView struct {
	// To is the last day shown, From the first.
	From, To time.Time
	Charts   []chartView
}

type chartView struct {
	Env                 string
	Deployments, Failed int
	// Max is the largest day's deployments, the height of a full bar.
	Max  int
	Days []dayBar
	Err  string
}

// dayBar is one day's bar: its whole height the deployments, the lower
// part of it the failed ones.
type dayBar struct {
	Day                 time.Time
	Deployments, Failed int
	X, W                int
	// Y and H place the deployments' bar, FY and FH the failures'.
	Y, H, FY, FH float64
}

// Width is the chart's width in px.
func (c chartView) Width() int { return chartDays * barStep }

// Height is the chart's height in px.
func (chartView) Height() float64 { return chartHeight }

// loadActivity is the charts for the controller's current state: read
// once per change (perChange), since each reads every deployment of the
// chart's days (thousands of rows at a deployment every few minutes).
func (d *Dashboard) loadActivity(ctx context.Context) *activityView {
	a, _ := d.activity.get(ctx, d.cfg.Environments.Changed(), d.cfg.Now(), d.readActivity)
	return a
}

// readActivity reads the charts; the error says a chart failed (its Err
// shows it), so that the view is not kept.
func (d *Dashboard) readActivity(ctx context.Context) (*activityView, error) {
	today := d.cfg.Now().UTC().Truncate(24 * time.Hour)
	from := today.AddDate(0, 0, -(chartDays - 1))
	a := &activityView{From: from, To: today}
	var failedRead error
	for _, e := range d.cfg.Envs {
		c := chartView{Env: e.Name}
		perDay, failed, err := d.countDays(ctx, e.Name, from)
		if err != nil {
			c.Err = d.safe("deployments "+e.Name, err)
			failedRead = err
		}
		for i := range chartDays {
			c.Deployments += perDay[i]
			c.Failed += failed[i]
			c.Max = max(c.Max, perDay[i])
		}
		for i := range chartDays {
			b := dayBar{Day: from.AddDate(0, 0, i), Deployments: perDay[i], Failed: failed[i], X: i * barStep, W: barWidth}
			if c.Max > 0 {
				b.H = chartHeight * float64(b.Deployments) / float64(c.Max)
				b.FH = chartHeight * float64(b.Failed) / float64(c.Max)
			}
			b.Y, b.FY = chartHeight-b.H, chartHeight-b.FH
			c.Days = append(c.Days, b)
		}
		a.Charts = append(a.Charts, c)
	}
	return a, failedRead
}

// countDays counts env's deployments and failed deployments per day
// since from, reading the history newest first until it is older.
func (d *Dashboard) countDays(ctx context.Context, env string, from time.Time) (perDay, failed [chartDays]int, err error) {
	f := ledger.DeploymentFilter{App: d.cfg.App, Env: env, Limit: ledger.MaxLimit}
	for {
		ds, err := d.cfg.Ledger.Deployments(ctx, f)
		if err != nil {
			return perDay, failed, fmt.Errorf("deployments of %s: %w", env, err)
		}
		for _, dp := range ds {
			if dp.CreatedAt.Before(from) && !dp.FinishedAt.IsZero() && dp.FinishedAt.Before(from) {
				return perDay, failed, nil
			}
			if dp.Kind != ferry.DeployDeploy && dp.Kind != ferry.DeployPromote || dp.FinishedAt.Before(from) {
				continue
			}
			i := int(dp.FinishedAt.UTC().Sub(from) / (24 * time.Hour))
			if i >= chartDays {
				continue
			}
			switch dp.State {
			case ferry.DeploymentSucceeded:
				perDay[i]++
			case ferry.DeploymentFailed, ferry.DeploymentRolledBack:
				perDay[i]++
				failed[i]++
			}
		}
		if len(ds) < f.PageSize() {
			return perDay, failed, nil
		}
		f.BeforeID = ds[len(ds)-1].ID
	}
}
