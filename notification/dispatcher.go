package notification

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// Ledger is what the dispatcher reads and writes: the audit events and
// the outbox (ledger.NotificationStore).
type Ledger interface {
	Events(ctx context.Context, f ledger.EventFilter) ([]ferry.Event, error)
	NotificationCursor(ctx context.Context, app string) (int64, error)
	EnqueueNotifications(ctx context.Context, app string, from, upTo int64, ns []*ferry.Notification) error
	DueNotifications(ctx context.Context, app string, now time.Time, limit int) ([]*ferry.Notification, error)
	RecordAttempt(ctx context.Context, id int64, to ferry.NotificationState, errMsg string, next, at time.Time) error
}

// Defaults of a Dispatcher.
const (
	DefaultMaxAttempts = 8
	DefaultBackoff     = 2 * time.Second // doubled at each attempt, at most 10 minutes
	DefaultPoll        = time.Second
	// attemptTimeout bounds one request to a receiver.
	attemptTimeout = 10 * time.Second
)

// Dispatcher moves audit events into the outbox and delivers the outbox.
// Run it in one goroutine; Scan and Deliver are its two steps, exported
// for tests that stop between them.
type Dispatcher struct {
	App       string
	Ledger    Ledger
	Receivers []Receiver
	// Client sends the requests; http.DefaultClient when nil.
	Client *http.Client
	// Now is the clock; After the timer between rounds.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Changed, when set, returns a channel closed at the next change of
	// the ledger (a new event), which starts a round at once.
	Changed func() <-chan struct{}
	// MaxAttempts, Backoff and Poll default to DefaultMaxAttempts,
	// DefaultBackoff and DefaultPoll.
	MaxAttempts int
	Backoff     time.Duration
	Poll        time.Duration
	Logger      *slog.Logger

	// settled is the newest event id seen one round ago: only events up
	// to it are read, so that one committed late with a lower id (two
	// writers) is not passed over.
	settled int64
}

func (d *Dispatcher) defaults() {
	if d.Client == nil {
		d.Client = http.DefaultClient
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.After == nil {
		d.After = time.After
	}
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = DefaultMaxAttempts
	}
	if d.Backoff <= 0 {
		d.Backoff = DefaultBackoff
	}
	if d.Poll <= 0 {
		d.Poll = DefaultPoll
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
}

// Run scans and delivers until ctx ends: at once, at every change and
// every Poll.
func (d *Dispatcher) Run(ctx context.Context) {
	d.defaults()
	for {
		var changed <-chan struct{}
		if d.Changed != nil {
			changed = d.Changed()
		}
		if err := d.Scan(ctx); err != nil && ctx.Err() == nil {
			d.Logger.Error("notifications: read events", "err", err)
		}
		if err := d.Deliver(ctx); err != nil && ctx.Err() == nil {
			d.Logger.Error("notifications: deliver", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-d.After(d.Poll):
		}
	}
}

// Scan records the notifications of the events after the cursor (up to
// the newest seen one round ago) and moves the cursor past them, in one
// ledger write.
func (d *Dispatcher) Scan(ctx context.Context) error {
	d.defaults()
	from, err := d.Ledger.NotificationCursor(ctx, d.App)
	if err != nil {
		return err
	}
	evs, newest, err := d.eventsAfter(ctx, from)
	if err != nil {
		return err
	}
	upTo := min(d.settled, newest)
	d.settled = newest
	if upTo <= from {
		return nil
	}
	var ns []*ferry.Notification
	now := d.Now()
	for _, e := range evs {
		if e.ID > upTo {
			break
		}
		topic, ok := TopicOf(e)
		if !ok {
			continue
		}
		for _, r := range d.Receivers {
			if !r.Wants(topic, e.Env) {
				continue
			}
			body, err := Render(r, d.App, topic, e)
			if err != nil {
				return fmt.Errorf("render event %d for %s: %w", e.ID, r.Name, err)
			}
			ns = append(ns, &ferry.Notification{Receiver: r.Name, EventID: e.ID, Topic: topic, Env: e.Env, Body: body, CreatedAt: now})
		}
	}
	if err := d.Ledger.EnqueueNotifications(ctx, d.App, from, upTo, ns); err != nil {
		return fmt.Errorf("record %d notifications: %w", len(ns), err)
	}
	return nil
}

// eventsAfter reads the app's events with an id above from, oldest
// first, and the newest id (from when there is none).
func (d *Dispatcher) eventsAfter(ctx context.Context, from int64) ([]ferry.Event, int64, error) {
	var out []ferry.Event
	before := int64(0)
	for {
		page, err := d.Ledger.Events(ctx, ledger.EventFilter{App: d.App, BeforeID: before, Limit: ledger.MaxLimit})
		if err != nil {
			return nil, 0, err
		}
		done := len(page) < ledger.MaxLimit
		for _, e := range page { // newest first
			if e.ID <= from {
				done = true
				break
			}
			out = append(out, e)
		}
		if done || len(page) == 0 {
			break
		}
		before = page[len(page)-1].ID
	}
	newest := from
	if len(out) > 0 {
		newest = out[0].ID
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, newest, nil
}

// Deliver sends every notification due now once, recording each attempt:
// delivered on a 2xx answer, else retried after a backoff, or failed
// after MaxAttempts.
func (d *Dispatcher) Deliver(ctx context.Context) error {
	d.defaults()
	due, err := d.Ledger.DueNotifications(ctx, d.App, d.Now(), 100)
	if err != nil {
		return err
	}
	byName := map[string]Receiver{}
	for _, r := range d.Receivers {
		byName[r.Name] = r
	}
	for _, n := range due {
		r, ok := byName[n.Receiver]
		sendErr := errors.New("no such receiver in ferry.yaml any more")
		if ok {
			sendErr = d.send(ctx, r, n)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := d.Now()
		to, msg, next := ferry.NotificationDelivered, "", time.Time{}
		if sendErr != nil {
			msg = sendErr.Error()
			to, next = ferry.NotificationPending, now.Add(d.backoff(n.Attempts+1))
			if n.Attempts+1 >= d.MaxAttempts || !ok {
				to, next = ferry.NotificationFailed, time.Time{}
				d.Logger.Warn("notification given up", "id", n.ID, "receiver", n.Receiver, "attempts", n.Attempts+1, "err", sendErr)
			}
		}
		if err := d.Ledger.RecordAttempt(ctx, n.ID, to, msg, next, now); err != nil {
			return fmt.Errorf("record an attempt of notification %d: %w", n.ID, err)
		}
	}
	return nil
}

// backoff is the wait after attempt n (1, 2, …): Backoff doubled each
// time, at most 10 minutes.
func (d *Dispatcher) backoff(n int) time.Duration {
	b := d.Backoff
	for i := 1; i < n && b < 10*time.Minute; i++ {
		b *= 2
	}
	return min(b, 10*time.Minute)
}

// send POSTs n to r, signed.
func (d *Dispatcher) send(ctx context.Context, r Receiver, n *ferry.Notification) error {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, strings.NewReader(n.Body))
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ferry-notifications")
	req.Header.Set("X-Ferry-Event", n.Topic)
	req.Header.Set("X-Ferry-Delivery", strconv.FormatInt(n.ID, 10))
	req.Header.Set("X-Ferry-Signature", Sign(r.Secret, n.Body))
	resp, err := d.Client.Do(req)
	if err != nil {
		// The receiver's URL may hold its credentials (Slack's do): the
		// error recorded names the receiver, not the URL.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %w", r.Name, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", r.Name, resp.Status)
	}
	return nil
}
