package store

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// RowError reports whether err is the database refusing a row for what it
// holds: a data exception (SQLSTATE class 22: a value out of range, bad
// encoding), an integrity violation (23) or a program limit a row exceeds
// (54: an index entry too large). Such a write will fail the same way
// every time, and only such a write may be dead-lettered.
//
// Every other error is retried, however permanent it looks: a lost
// connection, a timeout, a serialization failure, but also a wrong password
// after a rotation, a missing table after a volume was recreated, a
// read-only database after a failover or CockroachDB's internal XX000. They
// belong to the database, not to the write, and an operator can fix them;
// dead-lettering every write while they last would lose acknowledged data
// from the system of record.
func RowError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}
