package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Schema names the layout of Result; it changes when a field changes
// meaning or goes away (adding one does not).
const Schema = "kvfleet-bench/1"

// Result is everything one run measured: what `make bench-fleet` writes
// as JSON for the report. Rates are per second, latencies in
// milliseconds, CPU in cores (1.0 = one core busy), memory in bytes.
type Result struct {
	Schema     string     `json:"schema"`
	Started    time.Time  `json:"started"`
	Finished   time.Time  `json:"finished"`
	Mode       string     `json:"mode"` // quick or full
	Target     string     `json:"target"`
	Project    string     `json:"project"`
	Method     []string   `json:"method"` // how each number was measured
	Machine    Machine    `json:"machine"`
	Conditions Conditions `json:"conditions"`
	Reference  Reference  `json:"reference"`
	Fleet      Fleet      `json:"fleet"`
	Ratios     []Ratio    `json:"ratios"`
	Goals      []Goal     `json:"goals"`
	// IdleCPU is the fleet's CPU with no traffic, when measured.
	IdleCPU *CPUWindow `json:"idle_cpu,omitempty"`
	// Memory is the largest resident memory seen per service while the
	// benchmark ran (the largest replica).
	Memory map[string]Memory `json:"memory,omitempty"`
	// IdleMemory is the resident memory per service at the end of the
	// idle window, when there was one.
	IdleMemory map[string]Memory `json:"idle_memory,omitempty"`
	Profiles   []string          `json:"profiles,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
}

// Machine describes the host the run was made on.
type Machine struct {
	Cores         int    `json:"cores"`
	CPUModel      string `json:"cpu_model"`
	MemoryBytes   uint64 `json:"memory_bytes"`
	Kernel        string `json:"kernel"`
	DockerVersion string `json:"docker_version"`
	StorageDriver string `json:"docker_storage_driver"`
	CgroupVersion string `json:"cgroup_version"`
	GoVersion     string `json:"go_version"`
}

// Conditions describe what else was going on.
type Conditions struct {
	LoadAvgBefore [3]float64 `json:"load_avg_before"`
	LoadAvgAfter  [3]float64 `json:"load_avg_after"`
	// HostBusyBefore is the CPU the host used, in cores, over a few
	// seconds before the first phase.
	HostBusyBefore   float64  `json:"host_busy_cores_before"`
	OtherProjects    []string `json:"other_compose_projects,omitempty"`
	APIReplicas      int      `json:"api_replicas"`
	ConsumerReplicas int      `json:"consumer_replicas"`
	Database         string   `json:"database,omitempty"`
	Warnings         []string `json:"warnings,omitempty"`
}

// OpResult is the outcome of the requests of one kind in a phase.
type OpResult struct {
	Requests uint64 `json:"requests"`
	OK       uint64 `json:"ok"`
	Errors   uint64 `json:"errors"`
	// ErrorKinds counts the errors by class (http_503_queue_unavailable,
	// timeout, client_limit, ...).
	ErrorKinds map[string]uint64 `json:"error_kinds,omitempty"`
	// PerSecond is successful requests per second of the measured window.
	PerSecond float64 `json:"per_second"`
	// CachedFraction is the share of successful reads answered by Redis.
	CachedFraction float64 `json:"cached_fraction,omitempty"`
	// Latency is of the successful requests; in an open-loop phase it is
	// counted from when the request was due.
	Latency Summary `json:"latency"`
}

// ErrorRatio is the share of requests that failed.
func (o OpResult) ErrorRatio() float64 {
	if o.Requests == 0 {
		return 0
	}
	return float64(o.Errors) / float64(o.Requests)
}

// Phase is one stretch of traffic.
type Phase struct {
	Name        string  `json:"name"`
	Loop        string  `json:"loop"` // "closed" or "open"
	Connections int     `json:"connections,omitempty"`
	TargetRate  int     `json:"target_rate,omitempty"`
	Seconds     float64 `json:"seconds"`
	OpResult
	ByOp map[string]OpResult `json:"by_op,omitempty"`
	// StartDelay (open loop) is how late requests started after they were
	// due: the client's own scheduling delay, or all workers busy. Service
	// is the latency from the actual start. Latency = StartDelay + Service.
	StartDelay *Summary `json:"start_delay,omitempty"`
	Service    *Summary `json:"service_latency,omitempty"`
	// QueuedForWorker counts the open-loop requests that fell due while
	// all Workers were busy: the target's latency times the rate exceeded
	// what the client keeps in flight, so they started late.
	QueuedForWorker uint64      `json:"queued_for_worker,omitempty"`
	Workers         int         `json:"workers,omitempty"`
	Queue           *QueueTrend `json:"queue,omitempty"`
	Lag             *LagResult  `json:"write_visible_lag,omitempty"`
	CPU             *CPUWindow  `json:"cpu,omitempty"`
	// Verdict is, for a step of a rate search, "pass" or why it failed.
	Verdict string `json:"verdict,omitempty"`
	// Limit says what bounded the phase, from the CPU and queue figures.
	Limit string `json:"limit,omitempty"`
}

// QueueTrend is the backlog of the write queue during a phase.
type QueueTrend struct {
	Source  string `json:"source"`
	Samples int    `json:"samples"`
	Start   int    `json:"start"`
	End     int    `json:"end"`
	Max     int    `json:"max"`
	// GrowthPerSecond is the slope of a least-squares line through the
	// samples: how much faster writes were accepted than applied.
	GrowthPerSecond float64 `json:"growth_per_second"`
	Growing         bool    `json:"growing"`
}

// LagResult is the write → visible lag of the sampled writes: from the
// 202 to the first read that returned the write's version or a newer one.
type LagResult struct {
	Sampled    int     `json:"sampled"`
	Visible    int     `json:"visible"`
	NotVisible int     `json:"not_visible"` // within the sampler's bound
	Skipped    int     `json:"skipped"`     // sampler busy
	Latency    Summary `json:"latency"`
	// SamplesMS are the lags of the visible writes, in milliseconds, in
	// the order they became visible: the distribution behind Latency.
	SamplesMS []float64 `json:"samples_ms,omitempty"`
}

// CPUWindow is the CPU used over a window, in cores.
type CPUWindow struct {
	Seconds float64 `json:"seconds"`
	// HostBusy is what the whole machine used (from /proc/stat), Steal
	// included: the time a virtual machine's CPUs were runnable but the
	// hypervisor ran something else.
	HostBusy float64 `json:"host_busy_cores"`
	Steal    float64 `json:"steal_cores"`
	Cores    int     `json:"cores"`
	// ByService sums the containers of each service of the project (the
	// reference containers appear as bench-*).
	ByService map[string]float64 `json:"by_service"`
	// Fleet sums ByService over the project's own services.
	Fleet float64 `json:"fleet_cores"`
	// Client is this benchmark process; DockerProxy the userland proxies
	// behind the published ports.
	Client      float64 `json:"client_cores"`
	DockerProxy float64 `json:"docker_proxy_cores"`
	// Other is what the host used beyond all of the above: the kernel's
	// network work outside the containers' cgroups, Docker, other
	// programs.
	Other float64 `json:"other_cores"`
	// HostProcesses names the processes outside the containers that used
	// at least 0.02 cores, by command name (dockerd, containerd, other
	// programs); their children count once reaped.
	HostProcesses map[string]float64 `json:"host_processes,omitempty"`
	// StartedProcesses is the part of ByService (the fleet's services
	// only) used by processes that started during the window: Docker's
	// exec healthchecks, a database's backend forks. Measured at idle.
	StartedProcesses map[string]float64 `json:"started_processes,omitempty"`
	// Healthchecks describes the exec healthchecks Docker ran in the
	// fleet's containers, as configured. Measured at idle.
	Healthchecks *Healthchecks `json:"healthchecks,omitempty"`
}

// Healthchecks are the fleet's Docker healthchecks as configured: every
// one is a program that Docker starts in the container (runc exec) at
// each interval.
type Healthchecks struct {
	Containers int `json:"containers"`
	// PerSecond sums 1/interval over those containers.
	PerSecond float64 `json:"per_second"`
}

// Memory is the largest resident memory of one service's containers.
type Memory struct {
	Containers int    `json:"containers"`
	MaxRSS     uint64 `json:"max_rss_bytes"`
	MaxUsage   uint64 `json:"max_usage_bytes"`
}

// Reference holds the ceilings the fleet is compared with.
type Reference struct {
	Get     *Phase        `json:"get,omitempty"`
	GetHalf *Phase        `json:"get_half,omitempty"`
	Broker  *BrokerResult `json:"broker,omitempty"`
}

// BrokerResult is RabbitMQ's own rate in the fleet's cluster, measured
// by a client on the back network on a queue of its own.
type BrokerResult struct {
	Queue            string  `json:"queue"`
	Messages         int     `json:"messages"`
	BodyBytes        int     `json:"body_bytes"`
	Channels         int     `json:"channels"`
	Window           int     `json:"window"`
	Consumers        int     `json:"consumers"`
	Prefetch         int     `json:"prefetch"`
	AckEvery         int     `json:"ack_every"`
	PublishSeconds   float64 `json:"publish_seconds"`
	PublishPerSecond float64 `json:"publish_per_second"`
	DrainSeconds     float64 `json:"drain_seconds"`
	DrainPerSecond   float64 `json:"drain_per_second"`
	// CPU covers the whole helper run, publish and drain.
	CPU *CPUWindow `json:"cpu,omitempty"`
}

// Fleet holds the fleet's own phases.
type Fleet struct {
	CachedGet      *Phase         `json:"cached_get,omitempty"`
	CachedGetHalf  *Phase         `json:"cached_get_half,omitempty"`
	CachedGetSteps []Phase        `json:"cached_get_steps,omitempty"`
	UncachedGet    *Phase         `json:"uncached_get,omitempty"`
	Writes         *Writes        `json:"writes,omitempty"`
	Mixed          *Phase         `json:"mixed_90_10,omitempty"`
	Backlog        *BacklogResult `json:"backlog,omitempty"`
	// Curves are the throughput-against-offered-load searches, one per
	// operation.
	Curves []Curve `json:"curves,omitempty"`
}

// Curve is one operation on an open loop, stepped up until a step failed
// its bound, or, when its first step already failed, down until one
// passed: what the fleet answered at each offered rate.
type Curve struct {
	Op    string `json:"op"`    // cached GET, uncached GET, PUT, mixed 90/10
	Bound string `json:"bound"` // what a step had to meet
	// P99MS is the bound's p99 latency.
	P99MS float64 `json:"p99_bound_ms"`
	// Steps are in ascending rate, whichever way they were run.
	Steps []Phase `json:"steps"`
	// Saturation is the index in Steps of the highest step that passed
	// (-1: none did): the most the fleet serves within the bound.
	Saturation int `json:"saturation"`
}

// Saturated returns the highest step that passed, or nil.
func (c Curve) Saturated() *Phase {
	if c.Saturation < 0 || c.Saturation >= len(c.Steps) {
		return nil
	}
	return &c.Steps[c.Saturation]
}

// FirstFailure returns the lowest-rate step above the saturated one (above
// none when no step passed) that failed its bound: where the fleet stopped
// serving within it. It is nil when no step above the saturated one
// failed, as when the ladder ran out first.
func (c Curve) FirstFailure() *Phase {
	var first *Phase
	sat := c.Saturated()
	for i := range c.Steps {
		s := &c.Steps[i]
		if s.Verdict == "pass" || sat != nil && s.TargetRate <= sat.TargetRate {
			continue
		}
		if first == nil || s.TargetRate < first.TargetRate {
			first = s
		}
	}
	return first
}

// Writes is the PUT measurement: the most the API accepts, and the
// highest rate it sustains with every write applied (the queue not
// growing).
type Writes struct {
	Max *Phase `json:"max"`
	// AppliedAtMax is Max's accepted rate less the queue's growth.
	AppliedAtMax float64 `json:"applied_per_second_at_max"`
	Steps        []Phase `json:"steps"`
	// Sustained is the highest step that passed.
	Sustained          *Phase  `json:"sustained,omitempty"`
	SustainedPerSecond float64 `json:"sustained_per_second"`
	Half               *Phase  `json:"half,omitempty"`
}

// BacklogResult is the consumers catching up on a backlog published
// straight into the write queue.
type BacklogResult struct {
	Messages          int     `json:"messages"`
	PublishSeconds    float64 `json:"publish_seconds"`
	PublishPerSecond  float64 `json:"publish_per_second"`
	DepthAtPublishEnd int     `json:"depth_at_publish_end"`
	PeakDepth         int     `json:"peak_depth"`
	// DrainSeconds is from the end of publishing until the queue held no
	// ready message; DrainPerSecond the backlog left then over that time.
	DrainSeconds   float64 `json:"drain_seconds"`
	DrainPerSecond float64 `json:"drain_per_second"`
	// AppliedPerSecond counts every message over the whole test, from the
	// first publish to the empty queue.
	AppliedPerSecond float64 `json:"applied_per_second"`
	// KeptPace: less than a tenth of the writes was left when publishing
	// ended, so DrainPerSecond is AppliedPerSecond, a lower bound.
	KeptPace bool `json:"kept_pace"`
	// Held: the consumers were paused while the writes were published, so
	// the whole backlog (DrainFrom messages) waited for them; the drain is
	// then timed from the last moment the depth was still whole after they
	// were let go (ResumeSeconds after the publish ended, their
	// reconnection included when the broker had dropped them).
	Held          bool       `json:"held,omitempty"`
	ResumeSeconds float64    `json:"resume_seconds,omitempty"`
	DrainFrom     int        `json:"drain_from,omitempty"`
	Drained       bool       `json:"drained"`
	CPU           *CPUWindow `json:"cpu,omitempty"`
	Limit         string     `json:"limit,omitempty"`
}

// WriteJSON writes r to path, creating its directory.
func WriteJSON(path string, r *Result) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: encode result: %w", err)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// ReadJSON reads a result written by WriteJSON.
func ReadJSON(path string) (*Result, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var r Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("bench: %s: schema %q, want %q", path, r.Schema, Schema)
	}
	return &r, nil
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
