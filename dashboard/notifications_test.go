package dashboard

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// TestNotifications: with the ledger as its outbox the page lists the
// outgoing notifications newest first with receiver, topic, environment,
// state, attempts and last error, read from the ledger's records of each
// attempt; every role from viewer up sees them; a dashboard without an
// outbox has no such part.
func TestNotifications(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Outbox = c.Ledger.(Outbox) })
	ctx := t.Context()
	at := func(m int) time.Time { return f.now.Add(time.Duration(m) * time.Minute) }
	slack := &ferry.Notification{Receiver: "slack", EventID: 3, Topic: ferry.TopicReleased, Env: "prod", Body: `{"text":"RC1"}`, CreatedAt: at(0)}
	pager := &ferry.Notification{Receiver: "pager", EventID: 4, Topic: ferry.TopicFailed, Env: "prod", Body: `{}`, CreatedAt: at(1)}
	audit := &ferry.Notification{Receiver: "audit", EventID: 5, Topic: ferry.TopicLocked, Env: "dev", Body: `{}`, CreatedAt: at(2)}
	if err := f.store.EnqueueNotifications(ctx, app, 0, 5, []*ferry.Notification{slack, pager, audit}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		id       int64
		to       ferry.NotificationState
		err      string
		next, at time.Time
	}{
		{slack.ID, ferry.NotificationPending, "503 Service Unavailable", at(3), at(1)},
		{slack.ID, ferry.NotificationDelivered, "", time.Time{}, at(3)},
		{pager.ID, ferry.NotificationPending, "dial tcp 127.0.0.1:9: connection refused", at(4), at(2)},
		{pager.ID, ferry.NotificationPending, "dial tcp 127.0.0.1:9: connection refused", at(8), at(4)},
		{pager.ID, ferry.NotificationFailed, "dial tcp 127.0.0.1:9: connection refused", time.Time{}, at(8)},
	} {
		if err := f.store.RecordAttempt(ctx, a.id, a.to, a.err, a.next, a.at); err != nil {
			t.Fatal(err)
		}
	}
	row := regexp.MustCompile(`(?s)<tr data-notification="(\d+)" data-state="([a-z]+)"><th scope="row" data-label="Receiver">([^<]*)</th>\s*<td data-label="Topic"[^>]*>([^<]*)</td><td data-label="Environment">([^<]*)</td>.*?<td data-label="Attempts">(\d+)</td><td data-label="Last error">([^<]*)</td>`)
	for _, role := range ferry.Roles() {
		_, body := f.do(role, "GET", "/", nil, nil)
		if !strings.Contains(body, `id="notifications"`) {
			t.Errorf("%s does not see the notifications", role)
			continue
		}
		var got []string
		for _, m := range row.FindAllStringSubmatch(body, -1) {
			got = append(got, strings.Join(m[2:], " | "))
		}
		want := []string{
			"pending | audit | locked | dev | 0 | —",
			"failed | pager | failed | prod | 3 | dial tcp 127.0.0.1:9: connection refused",
			"delivered | slack | released | prod | 2 | —",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s sees the notifications\n%s\nwant\n%s", role, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	_, frag := f.do(ferry.RoleViewer, "GET", "/fragments/notifications", nil, nil)
	if !strings.Contains(frag, `next <time datetime="2026-01-02T03:06:05Z">`) {
		t.Errorf("the pending notification does not say when it is tried next:\n%s", frag)
	}
	if _, body := newFixture(t).do(ferry.RoleAdmin, "GET", "/", nil, nil); strings.Contains(body, `id="notifications"`) {
		t.Error("a dashboard without an outbox shows notifications")
	}
}
