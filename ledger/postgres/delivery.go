package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// AddDelivery implements ledger.DeliveryStore: prune and insert in one
// transaction. The primary key decides between servers receiving the same
// delivery at once: one insert wins, the other finds the row.
func (s *Store) AddDelivery(ctx context.Context, provider, id string, at time.Time) (bool, error) {
	if err := ledger.CheckDelivery(provider, id); err != nil {
		return false, err
	}
	if at.IsZero() {
		return false, ferry.Errorf(ferry.EINVALID, "webhook delivery %s needs a time", id)
	}
	var added bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE received_at < $1`,
			at.Add(-ledger.DeliveryRetention).UTC()); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO webhook_deliveries (provider, delivery_id, received_at) VALUES ($1, $2, $3)
			ON CONFLICT (provider, delivery_id) DO NOTHING`, provider, id, at.UTC())
		added = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", id, err)
	}
	return added, nil
}

// ForgetDelivery implements ledger.DeliveryStore.
func (s *Store) ForgetDelivery(ctx context.Context, provider, id string) error {
	if err := ledger.CheckDelivery(provider, id); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM webhook_deliveries WHERE provider = $1 AND delivery_id = $2`, provider, id); err != nil {
		return fmt.Errorf("forget delivery %s: %w", id, err)
	}
	return nil
}
