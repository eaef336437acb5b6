// Package testserver gives integration tests real Redis (with Sentinel),
// PostgreSQL and RabbitMQ servers on loopback ports. It is a thin layer over
// internal/localserver, which starts and stops the servers, and adds what a
// test needs: a temporary directory, closing the server when the test ends,
// and the decision to skip or fail when a server cannot run.
//
// Tests call Require (or the Must* helpers, which do the same) so that a
// missing binary skips the test on a developer machine and fails it in CI
// (CI=true), because CI must run every integration test.
package testserver
