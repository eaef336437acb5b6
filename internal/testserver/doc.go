// Package testserver starts real Redis (with Sentinel), PostgreSQL and
// RabbitMQ servers on loopback ports for integration tests, and stops them.
//
// Every server gets its own temporary directory, its own dynamically chosen
// ports and, for RabbitMQ, its own Erlang node name and cookie, so test
// packages that `go test ./...` runs at the same time cannot see each other.
// Processes run in their own process groups so that Close kills helpers they
// fork as well; the only thing shared is Erlang's epmd on port 4369, which is
// meant to be shared and is left running.
//
// The server binaries come from Debian packages; scripts/install-test-deps.sh
// installs them. Tests call Require (or the Must* helpers, which call it) so
// that a missing binary skips the test on a developer machine and fails it
// in CI.
package testserver
