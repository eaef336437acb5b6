package telemetry_test

import (
	"net"
	"net/http"
	"testing"

	"github.com/kvfleet/kvfleet/internal/telemetry"
)

func TestLocalAddrToward(t *testing.T) {
	tests := []struct {
		addr, want string
		wantErr    bool
	}{
		{addr: ":9100", want: ":9100"},
		{addr: "0.0.0.0:9100", want: "0.0.0.0:9100"},
		// Toward a loopback address the route leaves from loopback.
		{addr: "@127.0.0.1:9100", want: "127.0.0.1:9100"},
		{addr: "@localhost-no-port", wantErr: true},
		{addr: "@no-such-host.invalid:9100", wantErr: true},
	}
	for _, tt := range tests {
		got, err := telemetry.LocalAddrToward(tt.addr)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("LocalAddrToward(%q) = %q, %v; want %q (error %v)", tt.addr, got, err, tt.want, tt.wantErr)
		}
	}
}

// A server given "@host:port" listens on the local address toward host
// only, not on every interface.
func TestListenTowardBindsOneAddress(t *testing.T) {
	lns, err := telemetry.Listen(&http.Server{Addr: "@127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer lns[0].Close()
	addr := lns[0].Addr().(*net.TCPAddr)
	if !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("listening on %v, want 127.0.0.1 only", addr)
	}
}

// When one server cannot listen, the ones already listening are closed.
func TestListenClosesOnError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	first := free.Addr().String()
	free.Close()
	if _, err := telemetry.Listen(&http.Server{Addr: first}, &http.Server{Addr: busy.Addr().String()}); err == nil {
		t.Fatal("Listen on a busy port succeeded")
	}
	again, err := net.Listen("tcp", first)
	if err != nil {
		t.Fatalf("the first listener was left open: %v", err)
	}
	again.Close()
}
