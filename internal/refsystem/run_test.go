package refsystem

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/localserver"
)

func TestSampleClassifiesErrorsLikeTheBenchmark(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("http_503"), "http_503"},
		{errors.New("not_found"), "not_found"},
		{errors.New("Post \"http://x\": context deadline exceeded"), "timeout"},
		{errors.New("dial tcp: connection refused"), "transport"},
	} {
		if got := sample("GET", tc.err).Err; got != tc.want {
			t.Errorf("sample(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestRunMeasuresEveryInstalledSystem starts the real servers for a
// moment: each op must have answered, without errors, and the servers
// must be gone afterwards.
func TestRunMeasuresEveryInstalledSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and redis-server")
	}
	o := Options{Conns: 4, Duration: 300 * time.Millisecond, Keys: 20, ValueBytes: 16, TempDir: t.TempDir()}
	r := Run(t.Context(), o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, sys := range r.Systems {
		bin := map[string]string{"etcd": "etcd", "redis": "redis-server"}[sys.Name]
		if _, err := localserver.FindBinary(bin); err != nil {
			if sys.Error == "" {
				t.Errorf("%s is not installed, yet no error was recorded", sys.Name)
			}
			if os.Getenv("CI") == "true" {
				t.Errorf("%s is not installed; CI installs it (scripts/install-test-deps.sh): %s", sys.Name, sys.Error)
			} else {
				t.Logf("%s not installed, not measured: %s", sys.Name, sys.Error)
			}
			continue
		}
		if sys.Error != "" || len(sys.Ops) != 2 || sys.Version == "" {
			t.Errorf("%s: %+v", sys.Name, sys)
			continue
		}
		for _, op := range sys.Ops {
			if op.Phase.OK == 0 || op.Phase.Errors != 0 {
				t.Errorf("%s %s: %d ok, %d errors (%v)", sys.Name, op.Name, op.Phase.OK, op.Phase.Errors, op.Phase.ErrorKinds)
			}
		}
	}
}
