// Package notification sends ferry's outgoing webhooks: release events
// (pending approval, approved, released, failed, rolled back, environment
// locked) and the drift check's findings (drift found, drift resolved) POSTed to the receivers of ferry.yaml's notifications, routed by
// environment and topic, in ferry's JSON or Slack's incoming-webhook
// format, each signed like the incoming webhooks (X-Ferry-Signature:
// sha256=<hex HMAC-SHA256 of the body>, see package webhook).
//
// Delivery goes through the ledger, an outbox: the Dispatcher reads the
// audit events after its cursor, records one notification per matching
// receiver together with the cursor's move (one transaction), and only
// then sends them, each attempt recorded, retried with exponential
// backoff until MaxAttempts, then given up as failed. A crash between an
// event and its delivery loses nothing: the event is in the ledger, and
// so is the notification once recorded. No release waits for a receiver.
package notification

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
)

// Receiver is one outgoing webhook.
type Receiver struct {
	Name   string
	URL    string
	Format string // "json" (default) or "slack"
	Secret []byte
	// Envs and Topics select what it is sent (all when empty).
	Envs   []string
	Topics []string
}

// Wants reports whether r is sent news of topic about env.
func (r Receiver) Wants(topic, env string) bool {
	return (len(r.Topics) == 0 || slices.Contains(r.Topics, topic)) && (len(r.Envs) == 0 || slices.Contains(r.Envs, env))
}

// TopicOf classifies an audit event: the topic it is news of, or false
// when it is none.
func TopicOf(e ferry.Event) (string, bool) {
	kindOf := func() ferry.DeploymentKind { // the controller's message starts with the deployment's kind
		k, _, _ := strings.Cut(e.Message, " ")
		return ferry.DeploymentKind(k)
	}
	switch e.Kind {
	case "release.pending":
		return ferry.TopicPendingApproval, true
	case "release.approved":
		return ferry.TopicApproved, true
	case "env.locked":
		return ferry.TopicLocked, true
	case "canary.paused":
		return ferry.TopicCanaryPaused, true
	case "drift.found", "drift.resolved": // the controller's periodic drift check
		return ferry.TopicDrift, true
	case "deployment.failed", "deployment.rolled-back", "deployment.refused":
		return ferry.TopicFailed, true
	case "deployment.succeeded":
		switch kindOf() {
		case ferry.DeployPromote:
			return ferry.TopicReleased, true
		case ferry.DeployRollback, ferry.DeployAutoRollback:
			return ferry.TopicRolledBack, true
		}
	}
	return "", false
}

// Payload is the JSON body of a notification in ferry's format.
type Payload struct {
	App     string    `json:"app"`
	Topic   string    `json:"topic"`
	Event   string    `json:"event"`
	EventID int64     `json:"eventId"`
	Env     string    `json:"env,omitempty"`
	Commit  string    `json:"commit,omitempty"`
	Actor   string    `json:"actor"`
	Message string    `json:"message"`
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
}

// Render is the body r is sent about event e of topic in app.
func Render(r Receiver, app, topic string, e ferry.Event) (string, error) {
	if r.Format == "slack" {
		text := fmt.Sprintf("*%s* %s: %s", app, topicTitle(topic), e.Message)
		if e.Reason != "" {
			text += "\n> " + e.Reason
		}
		if e.Actor != "" {
			text += "\n_by " + e.Actor + "_"
		}
		b, err := json.Marshal(map[string]string{"text": text})
		return string(b), err
	}
	b, err := json.Marshal(Payload{App: app, Topic: topic, Event: e.Kind, EventID: e.ID, Env: e.Env, Commit: e.Commit,
		Actor: e.Actor, Message: e.Message, Reason: e.Reason, Time: e.Time.UTC()})
	return string(b), err
}

func topicTitle(topic string) string {
	switch topic {
	case ferry.TopicPendingApproval:
		return "release waiting for approval"
	case ferry.TopicRolledBack:
		return "rolled back"
	case ferry.TopicLocked:
		return "environment locked"
	case ferry.TopicDrift:
		return "drift check"
	}
	return topic
}

// Sign is the X-Ferry-Signature of body under secret, as the incoming
// generic webhook checks it: "sha256=<hex HMAC-SHA256 of the body>".
func Sign(secret []byte, body string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
