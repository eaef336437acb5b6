package autoscale

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kvfleet/kvfleet/internal/scaler"
)

// listedFleet answers Replicas from a table of replica counts.
type listedFleet struct {
	counts map[string]int
	err    error
}

func (f listedFleet) Replicas(_ context.Context, service string) ([]scaler.Replica, error) {
	if f.err != nil {
		return nil, f.err
	}
	reps := make([]scaler.Replica, f.counts[service])
	for i := range reps {
		reps[i] = scaler.Replica{ID: service + "-id", Number: i + 1, Healthy: true}
	}
	return reps, nil
}

func TestCheckStartsAtMinimum(t *testing.T) {
	mins := map[string]int{"api": 3, "consumer": 2}
	for _, tc := range []struct {
		name    string
		fleet   listedFleet
		wantErr string // empty: no error
	}{
		{"at the minimum", listedFleet{counts: map[string]int{"api": 3, "consumer": 2}}, ""},
		{"API above the minimum", listedFleet{counts: map[string]int{"api": 4, "consumer": 2}}, "runs 4 api replicas"},
		{"consumers below the minimum", listedFleet{counts: map[string]int{"api": 3, "consumer": 1}}, "runs 1 consumer replicas"},
		{"the fleet's own scaler runs", listedFleet{counts: map[string]int{"api": 3, "consumer": 2, "scaler": 1}}, "runs its own scaler service"},
		{"docker fails", listedFleet{err: errors.New("docker: not found")}, "docker: not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkStartsAtMinimum(context.Background(), tc.fleet, "kvfleet", mins)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
