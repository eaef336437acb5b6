// Package chaos runs the fleet's chaos suite: under steady open-loop
// traffic through nginx it injects one fault at a time into the
// containers of one Compose project (a killed Redis master, an isolated
// one, a killed RabbitMQ node, the whole broker stopped, consumers killed,
// the database stopped, an API replica killed, the API scaled), heals it,
// waits for the fleet to converge, and checks every acknowledged write and
// each scenario's availability thresholds.
package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Scenario is one fault under load, with what the fleet must show.
type Scenario struct {
	Name        string
	Description string
	// Fault makes the fault to inject (a fresh one per run); nil for a run
	// without one.
	Fault func() Fault
	// Before is steady load before the fault; Hold the time between the
	// fault being in place and the heal; After the load that goes on once
	// the fleet is ready again.
	Before, Hold, After time.Duration
	Thresholds          Thresholds
}

// The schedules.
const (
	ScheduleFull = "full"
	ScheduleCI   = "ci"
)

// schedules lists the scenarios of each schedule, in the order they run.
// The CI schedule takes the cheapest ones, at the quick pace.
var schedules = map[string][]string{
	ScheduleFull: {
		"baseline", "redis-master-kill", "redis-master-isolate", "rabbitmq-node-kill", "rabbitmq-all-stop",
		"consumers-kill", "database-stop", "api-replica-kill", "api-scale",
	},
	ScheduleCI: {"baseline", "api-replica-kill", "consumers-kill", "redis-master-kill"},
}

// Schedules returns the names of the schedules.
func Schedules() []string {
	names := make([]string, 0, len(schedules))
	for n := range schedules {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Select returns the scenarios to run: those of the schedule, or, when
// names is not empty, those named (from every scenario there is), in the
// order of the full schedule and at the schedule's pace (the CI schedule's
// phases are shorter).
func Select(schedule string, names []string) ([]Scenario, error) {
	members, ok := schedules[schedule]
	if !ok {
		return nil, fmt.Errorf("chaos: unknown schedule %q (known: %s)", schedule, strings.Join(Schedules(), ", "))
	}
	all := catalogue(schedule == ScheduleCI)
	if len(names) > 0 {
		members = nil
		for _, n := range names {
			if !slices.ContainsFunc(all, func(s Scenario) bool { return s.Name == n }) {
				known := make([]string, len(all))
				for i, s := range all {
					known[i] = s.Name
				}
				return nil, fmt.Errorf("chaos: unknown scenario %q (known: %s)", n, strings.Join(known, ", "))
			}
			members = append(members, n)
		}
	}
	var out []Scenario
	for _, s := range all {
		if slices.Contains(members, s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

// catalogue is every scenario, at the quick pace or the full one.
func catalogue(quick bool) []Scenario {
	// pick returns the full or the quick value.
	pick := func(full, short time.Duration) time.Duration {
		if quick {
			return short
		}
		return full
	}
	s := time.Second
	before, after := pick(15*s, 10*s), pick(30*s, 15*s)
	// Done-when of issue 6: with a fault of the cache, of one broker node
	// or of one API replica, neither writes nor reads are under 50 % for
	// more than 10 s; while the database is down writes are accepted and
	// cached keys read. The same bound holds for every fault that leaves
	// the broker up.
	std := Thresholds{MinAvailability: 0.5, MaxWriteDown: 10 * s, MaxReadDown: 10 * s}
	baseline := std
	baseline.NoErrors = true
	return []Scenario{
		{
			Name:        "baseline",
			Description: "no fault: steady load only",
			Before:      pick(60*s, 20*s),
			Thresholds:  baseline,
		},
		{
			Name:        "redis-master-kill",
			Description: "SIGKILL of the Redis master (as Sentinel names it); Sentinel fails over, the old master comes back as a replica",
			Fault: func() Fault {
				return &killOne{what: "the Redis master", choose: func(ctx context.Context, f *Fleet) (Container, error) { return f.RedisMaster(ctx) }}
			},
			Before: before, Hold: pick(20*s, 15*s), After: after,
			Thresholds: std,
		},
		{
			Name:        "redis-master-isolate",
			Description: "the Redis master cut off the network inside its own network namespace (iptables DROP; name and address stay), then reconnected",
			Fault:       func() Fault { return &isolateRedisMaster{} },
			Before:      before, Hold: pick(30*s, 20*s), After: after,
			Thresholds: std,
		},
		{
			Name:        "rabbitmq-node-kill",
			Description: "SIGKILL of one RabbitMQ node (the write queue's leader); its restart policy brings it back",
			Fault: func() Fault {
				return &killOne{what: "the RabbitMQ node leading " + writeQueue, choose: func(ctx context.Context, f *Fleet) (Container, error) { return f.RabbitMQLeader(ctx) }}
			},
			Before: before, Hold: pick(20*s, 15*s), After: after,
			Thresholds: std,
		},
		{
			Name:        "rabbitmq-all-stop",
			Description: "every RabbitMQ node stopped for 20 s, then started",
			Fault:       func() Fault { return &stopAll{what: "every RabbitMQ node", service: serviceRabbitMQ} },
			Before:      before, Hold: 20 * s, After: after,
			// Writes are refused while the broker is down; reads must not
			// notice; writes must be accepted again within 30 s of the
			// nodes being started.
			Thresholds: Thresholds{MinAvailability: 0.5, MaxReadDown: 10 * s, WriteRecovery: 30 * s},
		},
		{
			Name:        "consumers-kill",
			Description: "SIGKILL of every consumer, three times, each time once all are running again (restart policy)",
			Fault: func() Fault {
				return &killEvery{what: "every consumer", service: serviceConsumer, times: 3, interval: pick(10*s, 5*s)}
			},
			Before: before, After: after,
			Thresholds: std,
		},
		{
			Name:        "database-stop",
			Description: "the database stopped for 60 s, then started: writes are still accepted and cached keys still read",
			Fault:       func() Fault { return &stopAll{what: "the database", service: serviceDatabase} },
			Before:      before, Hold: pick(60*s, 30*s), After: after,
			Thresholds: std,
		},
		{
			Name:        "api-replica-kill",
			Description: "SIGKILL of one API replica; its restart policy brings it back",
			Fault: func() Fault {
				return &killOne{what: "an API replica", choose: firstRunning(serviceAPI)}
			},
			Before: before, Hold: pick(20*s, 10*s), After: after,
			Thresholds: std,
		},
		{
			Name:        "api-scale",
			Description: "the API scaled from 3 to 6 replicas and back under load (compose up --scale, then nginx reload)",
			Fault:       func() Fault { return &scaleAPI{to: 6} },
			Before:      before, Hold: pick(30*s, 15*s), After: after,
			Thresholds: std,
		},
	}
}
