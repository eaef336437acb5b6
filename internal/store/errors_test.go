package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvfleet/kvfleet/internal/store"
)

// TestRowError pins which failures may dead-letter a write: only those that
// belong to the row. Everything that belongs to the database or the
// network must be retried, or an outage would empty the queue into the
// dead-letter queue.
func TestRowError(t *testing.T) {
	pg := func(code string) error {
		return fmt.Errorf("store: apply 3 items: %w", &pgconn.PgError{Code: code, Message: "m"})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"string too long (22001)", pg("22001"), true},
		{"invalid byte sequence (22021)", pg("22021"), true},
		{"not-null violation (23502)", pg("23502"), true},
		{"unique violation (23505)", pg("23505"), true},
		{"index row too large (54000)", pg("54000"), true},
		{"serialization failure (40001)", pg("40001"), false},
		{"ambiguous commit, CockroachDB (40003)", pg("40003"), false},
		{"wrong password after a rotation (28P01)", pg("28P01"), false},
		{"missing table after a volume was recreated (42P01)", pg("42P01"), false},
		{"privilege revoked (42501)", pg("42501"), false},
		{"read-only after a failover (25006)", pg("25006"), false},
		{"admin shutdown (57P01)", pg("57P01"), false},
		{"CockroachDB internal error (XX000)", pg("XX000"), false},
		{"statement timeout (57014)", pg("57014"), false},
		{"lost connection", fmt.Errorf("store: apply: %w", io.ErrUnexpectedEOF), false},
		{"deadline", context.DeadlineExceeded, false},
		{"cancelled", context.Canceled, false},
		{"a server error without a code", &pgconn.PgError{}, false},
		{"nil", nil, false},
		{"anything else", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.RowError(tt.err); got != tt.want {
				t.Errorf("RowError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
