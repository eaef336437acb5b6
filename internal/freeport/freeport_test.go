package freeport

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestLoopbackPortsAreDistinctFreeAndBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	ports, err := Loopback(20)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 20 {
		t.Fatalf("got %d ports, want 20", len(ports))
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Errorf("port %d returned twice", p)
		}
		seen[p] = true
		if low-lowest >= 1000 && (p < lowest || p >= low) {
			t.Errorf("port %d outside [%d, %d)", p, lowest, low)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d is not free after Loopback returned: %v", p, err)
			continue
		}
		l.Close()
	}
}

func TestEphemeralLowReadsTheKernelRange(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          int
	}{
		{"tab separated", "40000\t60999\n", 40000},
		{"garbage", "not a range\n", defaultEphemeralLow},
		{"one field", "40000\n", defaultEphemeralLow},
		{"zero", "0 60999\n", defaultEphemeralLow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			old := rangeFile
			rangeFile = path
			t.Cleanup(func() { rangeFile = old })
			if got := ephemeralLow(); got != tc.want {
				t.Errorf("ephemeralLow() = %d, want %d", got, tc.want)
			}
		})
	}
	old := rangeFile
	rangeFile = filepath.Join(dir, "missing")
	t.Cleanup(func() { rangeFile = old })
	if got := ephemeralLow(); got != defaultEphemeralLow {
		t.Errorf("missing file: ephemeralLow() = %d, want %d", got, defaultEphemeralLow)
	}
}

func TestLoopbackFallsBackToTheKernelWhenTheRangeIsTooLow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "range")
	if err := os.WriteFile(path, []byte("20500 60999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := rangeFile
	rangeFile = path
	t.Cleanup(func() { rangeFile = old })
	ports, err := Loopback(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 3 || ports[0] == ports[1] || ports[1] == ports[2] || ports[0] == ports[2] {
		t.Errorf("ports = %v, want 3 distinct", ports)
	}
}
