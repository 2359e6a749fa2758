package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// AddDelivery implements ledger.DeliveryStore: prune and insert in one
// write transaction; the primary key makes the second insert of a delivery
// a no-op.
func (s *Store) AddDelivery(ctx context.Context, provider, id string, at time.Time) (bool, error) {
	if err := ledger.CheckDelivery(provider, id); err != nil {
		return false, err
	}
	if at.IsZero() {
		return false, ferry.Errorf(ferry.EINVALID, "webhook delivery %s needs a time", id)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE received_at < ?`,
		encTime(at.Add(-ledger.DeliveryRetention))); err != nil {
		return false, fmt.Errorf("record delivery %s: prune: %w", id, err)
	}
	res, err := tx.ExecContext(ctx, `
		INSERT INTO webhook_deliveries (provider, delivery_id, received_at) VALUES (?, ?, ?)
		ON CONFLICT (provider, delivery_id) DO NOTHING`, provider, id, encTime(at))
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("record delivery %s: %w", id, err)
	}
	return n == 1, nil
}

// ForgetDelivery implements ledger.DeliveryStore.
func (s *Store) ForgetDelivery(ctx context.Context, provider, id string) error {
	if err := ledger.CheckDelivery(provider, id); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE provider = ? AND delivery_id = ?`, provider, id); err != nil {
		return fmt.Errorf("forget delivery %s: %w", id, err)
	}
	return nil
}
