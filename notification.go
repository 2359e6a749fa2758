package ferry

import "time"

// NotificationState is where an outgoing notification is in its life.
type NotificationState string

// Notification states: pending (waiting for its next attempt) →
// delivered | failed (given up after its attempts).
const (
	NotificationPending   NotificationState = "pending"
	NotificationDelivered NotificationState = "delivered"
	NotificationFailed    NotificationState = "failed"
)

// NotificationStates returns every notification state.
func NotificationStates() []NotificationState {
	return []NotificationState{NotificationPending, NotificationDelivered, NotificationFailed}
}

// Notification is one audit event to be delivered to one receiver (an
// outgoing webhook), recorded in the ledger before any attempt: the
// outbox a crash cannot empty.
type Notification struct {
	ID  int64  `json:"id"`
	App string `json:"app"`
	// Receiver names the receiver in ferry.yaml's notifications.
	Receiver string `json:"receiver"`
	// EventID is the audit event it tells of; Topic what kind of news
	// it is (pending-approval, approved, released, failed, rolled-back,
	// locked).
	EventID int64  `json:"eventId"`
	Topic   string `json:"topic"`
	Env     string `json:"env,omitempty"`
	// Body is the request body sent, rendered once when it was recorded.
	Body        string            `json:"body"`
	State       NotificationState `json:"state"`
	Attempts    int               `json:"attempts"`
	LastError   string            `json:"lastError,omitempty"`
	NextAt      time.Time         `json:"nextAt,omitzero"`
	CreatedAt   time.Time         `json:"createdAt"`
	DeliveredAt time.Time         `json:"deliveredAt,omitzero"`
}

// Notification topics: the news an outgoing notification tells, and what
// ferry.yaml's notifications[].topics select.
const (
	TopicPendingApproval = "pending-approval"
	TopicApproved        = "approved"
	TopicReleased        = "released"
	TopicFailed          = "failed"
	TopicRolledBack      = "rolled-back"
	TopicLocked          = "locked"
	// TopicCanaryPaused is a canary that waits for a person (too little
	// traffic to judge it, for too long).
	TopicCanaryPaused = "canary-paused"
	// TopicDrift is the periodic drift check's news: a drift found, and
	// one resolved.
	TopicDrift = "drift"
)

// NotificationTopics returns every topic, in the order of a release, then
// the drift check's.
func NotificationTopics() []string {
	return []string{TopicPendingApproval, TopicApproved, TopicReleased, TopicFailed, TopicRolledBack, TopicLocked, TopicCanaryPaused, TopicDrift}
}
