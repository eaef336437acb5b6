// Package refsystem measures reference systems on this machine for the
// test report: etcd (put and range through its v3 JSON gateway) and one
// Redis (SET and GET), each started on a loopback port with a directory
// of its own and stopped afterwards, and loaded with the benchmark's own
// closed loop (internal/bench), so that the fleet's figures can be read
// against what a single well-known store does on the same cores.
//
// It names go-redis itself rather than going through internal/cache: it
// measures the server, not the application's use of it.
package refsystem
