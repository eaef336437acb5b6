package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Transient reports whether an error may go away if the same statement is
// tried again later: a serialization failure (40001), a deadlock, a commit
// whose outcome is unknown (CockroachDB's 40003), the server shutting down
// or refusing connections, a lost connection or a timeout. Because every
// write is a conditional upsert, retrying one whose first attempt did in
// fact commit is harmless. Anything else (bad data, a missing table) will
// fail the same way every time.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"40", // transaction rollback: 40001 serialization, 40P01 deadlock, 40003 ambiguous
			"53", // insufficient resources
			"57", // operator intervention: shutdown, cannot connect now
			"58": // system error
			return true
		}
		return false
	}
	// Not a server-reported error: the network, the pool or a deadline.
	return true
}
