// Package localserver runs real Redis (a master, a replica and three
// Sentinels), PostgreSQL and RabbitMQ servers on loopback ports, for
// development (cmd/kvfleet-local) and for integration tests (through
// internal/testserver, which adds what a *testing.T needs), and stops them.
//
// Every server gets its own directory, its own dynamically chosen ports and,
// for RabbitMQ, its own Erlang node name and cookie, so that several sets
// (the test packages that `go test ./...` runs at the same time, a local
// fleet) cannot see each other. Processes run in their own process groups so
// that stopping a server kills the helpers it forks as well; the only thing
// shared is Erlang's epmd on port 4369, which is meant to be shared and is
// left running.
//
// A server counts as started once a real client (go-redis, pgx, amqp091-go)
// can use it as kvfleet does.
//
// The server binaries come from Debian packages;
// scripts/install-test-deps.sh installs them. A missing one is reported
// with an error wrapping ErrNotInstalled.
//
// The package must not import testing: it is linked into kvfleet-local.
package localserver
