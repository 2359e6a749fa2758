package ledger

import (
	"context"
	"time"

	"github.com/ferryhq/ferry"
)

// DeliveryStore remembers the webhook deliveries ferry acted on, so that a
// delivery sent again (a sender's retry or redelivery, a replay) is
// recognised by its id: after a restart, and by every ferry server sharing
// the ledger. A delivery is remembered for DeliveryRetention after it was
// received; older ones are pruned as new ones arrive, so the table holds
// one retention period of deliveries at most.
type DeliveryStore interface {
	// AddDelivery records the delivery id of provider received at at and
	// reports whether it is new: false when that (provider, id) is
	// already recorded, which is then left as it was. Provider and id are
	// keys (1 to MaxName bytes). Deliveries received before at minus
	// DeliveryRetention are pruned.
	AddDelivery(ctx context.Context, provider, id string, at time.Time) (bool, error)
	// ForgetDelivery removes a delivery, so that it is accepted again: for
	// a delivery that was recorded but could not be acted on. Forgetting
	// one that is not recorded is not an error.
	ForgetDelivery(ctx context.Context, provider, id string) error
}

// DeliveryRetention is how long a webhook delivery is remembered. Senders
// retry within hours (GitHub's redeliveries are possible for 3 days); a
// delivery replayed later than this is accepted again, which at worst
// asks the poller to fetch once more.
const DeliveryRetention = 7 * 24 * time.Hour

// CheckDelivery refuses a delivery that AddDelivery or ForgetDelivery
// cannot take.
func CheckDelivery(provider, id string) error {
	if provider == "" || id == "" {
		return ferry.Errorf(ferry.EINVALID, "a webhook delivery needs a provider and an id")
	}
	return CheckKeys(Key{"webhook provider", provider, MaxName}, Key{"webhook delivery id", id, MaxName})
}
