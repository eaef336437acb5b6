// Package freeport picks free TCP ports on 127.0.0.1 for servers that a test
// or a measurement starts on loopback.
//
// Asking the kernel for port 0 returns a port from the ephemeral range, the
// same range the kernel draws from for every outgoing connection on the
// machine. Between the moment we learn such a port and the moment a server
// binds it, any client connection (another test package's, or the server's
// own Erlang distribution) may take it as its local port: a RabbitMQ node in
// CI once failed to start with dist_port_already_used on exactly such a
// port. Ports below the ephemeral range are never handed out implicitly, so
// the only way to lose one is another process picking the same one on
// purpose, which the bind check below makes rare.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

const (
	// lowest is the first port we consider: above the well-known and most
	// registered service ports people run on a development machine.
	lowest = 20000
	// defaultEphemeralLow is Linux's default first ephemeral port, used when
	// /proc cannot be read.
	defaultEphemeralLow = 32768
	// attempts bounds the search for one port; a busy range fails with an
	// error instead of spinning.
	attempts = 200
)

// rangeFile is where Linux keeps its ephemeral port range ("low high").
var rangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// Loopback returns n distinct ports that are free on 127.0.0.1 right now and
// lie outside the kernel's ephemeral range. Each port was bound once to check
// it; all listeners stay open until every port is chosen, so none repeats.
func Loopback(n int) ([]int, error) {
	low, high := lowest, ephemeralLow()
	if high-low < 1000 {
		// The ephemeral range starts unusually low: fall back to the
		// kernel's choice rather than fail.
		return fromKernel(n)
	}
	ports := make([]int, 0, n)
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := bindInRange(low, high)
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// bindInRange binds a random port in [low, high) on loopback.
func bindInRange(low, high int) (net.Listener, error) {
	var lastErr error
	for range attempts {
		port := low + rand.IntN(high-low)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return l, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("freeport: no free port in %d-%d after %d tries: %w", low, high-1, attempts, lastErr)
}

// fromKernel asks the kernel for n ephemeral ports.
func fromKernel(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("freeport: find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile(rangeFile)
	if err != nil {
		return defaultEphemeralLow
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return defaultEphemeralLow
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low <= 0 {
		return defaultEphemeralLow
	}
	return low
}
