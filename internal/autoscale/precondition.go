package autoscale

import (
	"context"
	"fmt"

	"github.com/kvfleet/kvfleet/internal/scaler"
)

// replicaLister is the part of the fleet the precondition reads.
type replicaLister interface {
	Replicas(ctx context.Context, service string) ([]scaler.Replica, error)
}

// scalerService is the fleet's own autoscaler (./start.sh --autoscale).
const scalerService = "scaler"

// checkStartsAtMinimum makes sure the run starts where its checks assume:
// each scaled service at its minimum, so that "scaled up within 30 s" and
// "back to the minimum" mean what they say, and no other scaler changing
// the same services (the fleet's scaler service would fight the test's
// own, and each would take the other's changes for load).
func checkStartsAtMinimum(ctx context.Context, fleet replicaLister, project string, mins map[string]int) error {
	others, err := fleet.Replicas(ctx, scalerService)
	if err != nil {
		return err
	}
	if len(others) > 0 {
		return fmt.Errorf("autoscale: project %s runs its own scaler service; stop it first (docker compose --project-name %s stop %s, or ./start.sh without --autoscale)", project, project, scalerService)
	}
	for _, svc := range []string{"api", "consumer"} {
		reps, err := fleet.Replicas(ctx, svc)
		if err != nil {
			return err
		}
		if want := mins[svc]; len(reps) != want {
			return fmt.Errorf("autoscale: project %s runs %d %s replicas, and the test starts from the scaler's minimum, %d; bring the fleet to it first (./start.sh does, with KVFLEET_API_REPLICAS and KVFLEET_CONSUMER_REPLICAS at the minimum)", project, len(reps), svc, want)
		}
	}
	return nil
}
