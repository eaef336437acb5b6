package localserver

// Internals that the tests in package localserver_test check directly.
var (
	PGReady     = pgReady
	ErrNotReady = errNotReady
)
