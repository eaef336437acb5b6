// Package autoscale is the live test of the fleet's autoscaler (make
// autoscale-test): it runs the real scaler (internal/scaler, with the
// Compose actuator that ./monitor-scale.sh uses) beside a running fleet,
// drives traffic through the fleet's nginx in phases (idle, a step to
// saturating load held steady, a backlog phase in which only writes flow
// while the test holds the consumers paused, back to idle), records a
// per-second timeline of the traffic, the replicas, the scaler's signals
// and every decision, and checks what the issue asks of the scaler against
// bounds: the API scales up within 30 s of the step, the consumers scale
// up with the backlog and return to their minimum, the direction changes
// at most once under steady load, the API returns to its minimum after
// the stabilization window, and no request fails.
//
// The pause is an induced fault, and the report says so: where the API is
// the bottleneck (a small machine) the consumers always keep up, and no
// load sent through the API makes a backlog on its own. Paused consumers
// stand for consumers that fall behind.
package autoscale

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// The schedules.
const (
	ModeFull  = "full"
	ModeQuick = "quick"
	ModeBrief = "brief"
)

// Schedule is the shape of a run: how long each phase lasts and the
// scaler's timings. Full uses the scaler's documented defaults; quick
// shortens the stabilization window and the steady load so that CI can
// run it in a few minutes; brief, the quick test report's, shortens them
// again (a 30 s window, 30 s of steady load) and checks the same bounds.
type Schedule struct {
	Mode string
	// Idle is the light traffic before the step: the scaler must hold.
	Idle time.Duration
	// Load is how long the saturating traffic lasts, step included.
	Load time.Duration
	// StepWindow is the start of the load within which the API must scale
	// up (the 30 s); the rest of Load is the steady phase.
	StepWindow time.Duration
	// PauseMax bounds the backlog phase's pause when the backlog does not
	// reach its bound (BacklogFactor × the target per paused consumer)
	// sooner.
	PauseMax time.Duration
	// AnswerMax bounds how long the pause is then held for the scaler to
	// decide to scale the consumers up: longer than one API change it may
	// be carrying out meanwhile (its ready timeout, 60 s) and an interval.
	AnswerMax time.Duration
	// CoolMargin is how long past the stabilization window the cool-down
	// phase may last before the test gives up waiting for the minimum.
	CoolMargin time.Duration

	Interval, Cooldown, DownWindow, SignalWindow time.Duration
}

// ScheduleFor returns the schedule of mode.
func ScheduleFor(mode string) (Schedule, error) {
	s := Schedule{
		Mode: mode, StepWindow: 30 * time.Second, CoolMargin: 2 * time.Minute,
		Interval: 5 * time.Second, Cooldown: 30 * time.Second, SignalWindow: 20 * time.Second,
		AnswerMax: 75 * time.Second,
	}
	// The backlog phase keeps the API saturated (the same clients, only
	// writes), so quick's mixed load is 30 s shorter than it was before
	// that phase came: the API still sees about two minutes of steady load.
	switch mode {
	case ModeFull:
		s.Idle, s.Load, s.DownWindow, s.PauseMax = time.Minute, 30*time.Second+10*time.Minute, 5*time.Minute, 90*time.Second
	case ModeQuick:
		s.Idle, s.Load, s.DownWindow, s.PauseMax = 30*time.Second, 30*time.Second+90*time.Second, time.Minute, 45*time.Second
	case ModeBrief:
		// A cooldown shorter than the down window, so that a scale-down
		// is not held back by the scale-up before it; the signal window
		// stays longer than two scrape intervals (5 s) times two.
		s.Idle, s.Load, s.DownWindow, s.PauseMax = 15*time.Second, 30*time.Second+30*time.Second, 30*time.Second, 30*time.Second
		s.Cooldown, s.SignalWindow, s.CoolMargin = 20*time.Second, 15*time.Second, 90*time.Second
	default:
		return Schedule{}, fmt.Errorf("unknown schedule %q (%s, %s or %s)", mode, ModeFull, ModeQuick, ModeBrief)
	}
	return s, nil
}

// BacklogFactor sets the backlog phase's bound: the pause lasts until the
// write queue holds this many times the scaler's backlog target
// (KVFLEET_SCALER_CONSUMER_BACKLOG_TARGET) per paused consumer, clearly
// above the target and its tolerance, so that the scaler cannot miss it
// between two of its intervals.
const BacklogFactor = 4

// Bound is the longest a run of s can take, cool-down included: the
// backlog phase lasts at most PauseMax and AnswerMax (see backlogPhase).
func (s Schedule) Bound() time.Duration {
	return s.Idle + s.Load + s.PauseMax + s.AnswerMax + s.DownWindow + s.CoolMargin
}

// Options configure a run.
type Options struct {
	Schedule Schedule
	BaseURL  string   // the fleet's nginx, on this machine
	Project  string   // the Compose project the scaler changes
	EnvFile  string   // the project's env file, relative to the repository root
	Compose  []string // the Compose command
	// PrometheusURL is the fleet's Prometheus (empty: the scaler's
	// default, from KVFLEET_PROMETHEUS_PORT).
	PrometheusURL string

	// Concurrency is the number of clients that send requests back to
	// back during the load: the load saturates the fleet by construction
	// (each client sends its next request when the last one is answered),
	// and never queues more than that many requests.
	Concurrency int
	// WriteFraction of the load's requests are PUTs, the rest GETs.
	WriteFraction float64
	ValueBytes    int
	Keys          int
	// TrickleRate is the light open-loop traffic, in requests per second
	// (half writes, half reads), that runs from start to end: it is the
	// "idle" load, and it keeps requests flowing through every scale
	// change, scale-downs included.
	TrickleRate    int
	RequestTimeout time.Duration
	Seed           uint64

	Report string // path of the JSON result
}

// ParseOptions reads the command line, with defaults from the environment
// as start.sh and scripts/autoscale-test.sh set it (KVFLEET_PORT,
// KVFLEET_PROJECT, KVFLEET_ENV_FILE, KVFLEET_COMPOSE). Usage and errors go
// to out; -h gives flag.ErrHelp.
func ParseOptions(args []string, getenv func(string) string, out io.Writer) (Options, error) {
	or := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var o Options
	fs := flag.NewFlagSet("kvfleet-autoscale", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: kvfleet-autoscale [flags]\n\n"+
			"Runs the autoscaler (internal/scaler, as ./monitor-scale.sh does) beside a\n"+
			"running fleet, drives idle, saturating and idle traffic through its nginx,\n"+
			"with a backlog phase between the last two in which only writes flow while\n"+
			"the consumers are held paused (docker pause: an induced fault, always\n"+
			"undone), records the timeline and checks the scaler's behaviour against its\n"+
			"bounds. The fleet must be running at its minimum size\n"+
			"(scripts/autoscale-test.sh brings one up). It changes the project's replicas\n"+
			"and pauses its consumers. Exits 1 when a check fails.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	quick := fs.Bool("quick", false, "same as -schedule=quick")
	mode := fs.String("schedule", ModeFull, "full: the scaler's defaults, 10 min of steady load, the backlog reached within at most 90 s (about 20 min); quick: a 60 s down window, 90 s of steady load, the backlog within at most 45 s (about 6 min, CI's); brief: a 30 s down window, 30 s of steady load, the backlog within at most 30 s (about 3 min, the quick report's); every schedule then holds the pause up to 75 s for the scaler to answer the backlog")
	fs.StringVar(&o.BaseURL, "url", "http://127.0.0.1:"+or("KVFLEET_PORT", "8000"), "the fleet's nginx, a loopback address (default from KVFLEET_PORT)")
	fs.StringVar(&o.Project, "project", or("KVFLEET_PROJECT", "kvfleet"), "Compose project of the fleet (env KVFLEET_PROJECT)")
	fs.StringVar(&o.EnvFile, "env-file", or("KVFLEET_ENV_FILE", ".env"), "the fleet's env file (env KVFLEET_ENV_FILE)")
	compose := fs.String("compose", or("KVFLEET_COMPOSE", "docker compose"), "Compose command (env KVFLEET_COMPOSE)")
	fs.StringVar(&o.PrometheusURL, "prometheus-url", "", "the fleet's Prometheus (default: http://127.0.0.1:$KVFLEET_PROMETHEUS_PORT)")
	fs.IntVar(&o.Concurrency, "concurrency", 192, "clients sending back to back during the load")
	fs.Float64Var(&o.WriteFraction, "write-fraction", 0.5, "fraction of the load's requests that are writes")
	fs.IntVar(&o.ValueBytes, "value-bytes", 256, "size of each written value")
	fs.IntVar(&o.Keys, "keys", 20000, "keys the load spreads over (seeded before the run)")
	fs.IntVar(&o.TrickleRate, "trickle-rate", 20, "requests per second of the light traffic that runs throughout")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", 10*time.Second, "bound on each request")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed of the choice of keys and operations (0: from the clock)")
	fs.StringVar(&o.Report, "report", "autoscale-report.json", "where to write the JSON result (the test report writes docs/report/autoscale.json)")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *quick {
		*mode = ModeQuick
	}
	var err error
	if o.Schedule, err = ScheduleFor(*mode); err != nil {
		return Options{}, err
	}
	o.Compose = strings.Fields(*compose)
	return o, o.validate()
}

func (o Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Concurrency < 1 || o.Concurrency > 1024 {
		bad("-concurrency must be between 1 and 1024 (got %d)", o.Concurrency)
	}
	if o.WriteFraction < 0 || o.WriteFraction > 1 {
		bad("-write-fraction must be between 0 and 1 (got %v)", o.WriteFraction)
	}
	if o.ValueBytes < 0 || o.ValueBytes > 1<<20 {
		bad("-value-bytes must be between 0 and 1 MiB (got %d)", o.ValueBytes)
	}
	if o.Keys < 1 {
		bad("-keys must be positive (got %d)", o.Keys)
	}
	if o.TrickleRate < 2 || o.TrickleRate > 1000 {
		bad("-trickle-rate must be between 2 and 1000 (got %d)", o.TrickleRate)
	}
	if o.RequestTimeout <= 0 {
		bad("-request-timeout must be positive (got %v)", o.RequestTimeout)
	}
	if o.Project == "" || len(o.Compose) == 0 || o.EnvFile == "" {
		bad("-project, -compose and -env-file must not be empty")
	}
	if o.Report == "" {
		bad("-report must not be empty")
	}
	return errors.Join(errs...)
}
