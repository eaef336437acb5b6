package chaos

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Options configure a run of the suite.
type Options struct {
	BaseURL  string   // the fleet's nginx, on this machine
	Project  string   // the Compose project whose containers may be touched
	EnvFile  string   // overrides the env file the project was started with
	Compose  []string // the Compose command
	Schedule string
	// Scenarios, when set, are run instead of the schedule's own.
	Scenarios []string
	List      bool // print the scenarios and thresholds, run nothing
	// Baseline, when set, is how long the fault-free scenario runs.
	Baseline time.Duration

	WriteRate, ReadRate int
	Keys                int
	DeleteFraction      float64
	ValueBytes          int
	MaxInFlight         int
	Seed                uint64

	RequestTimeout  time.Duration
	ConvergeTimeout time.Duration
	HealTimeout     time.Duration
	ReadyTimeout    time.Duration

	Report string // path of the JSON report
}

// ParseOptions reads the options from the command line, with defaults from
// the environment as start.sh reads it (KVFLEET_PORT, KVFLEET_PROJECT,
// KVFLEET_ENV_FILE, KVFLEET_COMPOSE) and KVFLEET_CHAOS_URL. Usage and
// errors go to out; -h gives flag.ErrHelp.
func ParseOptions(args []string, getenv func(string) string, out io.Writer) (Options, error) {
	or := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var o Options
	fs := flag.NewFlagSet("kvfleet-chaos", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: kvfleet-chaos [flags]\n\n"+
			"Runs open-loop writes and reads through the fleet's nginx while it injects\n"+
			"one fault at a time into the containers of one Compose project, heals it,\n"+
			"and checks every acknowledged write and each scenario's thresholds.\n"+
			"The fleet must be running (./start.sh). Exits 1 when a scenario fails.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.BaseURL, "url", or("KVFLEET_CHAOS_URL", "http://127.0.0.1:"+or("KVFLEET_PORT", "8000")), "the fleet's nginx (a loopback address; env KVFLEET_CHAOS_URL, or KVFLEET_PORT)")
	fs.StringVar(&o.Project, "project", or("KVFLEET_PROJECT", "kvfleet"), "Compose project of the fleet; only its containers are touched (env KVFLEET_PROJECT)")
	fs.StringVar(&o.EnvFile, "env-file", getenv("KVFLEET_ENV_FILE"), "env file for Compose commands, relative to the project directory (env KVFLEET_ENV_FILE; default: the one the project was started with)")
	compose := fs.String("compose", or("KVFLEET_COMPOSE", "docker compose"), "Compose command (env KVFLEET_COMPOSE)")
	fs.StringVar(&o.Schedule, "schedule", ScheduleFull, "schedule: "+strings.Join(Schedules(), " or ")+" (ci: the cheapest scenarios, shorter phases)")
	quick := fs.Bool("quick", false, "same as -schedule=ci")
	scenarios := fs.String("scenarios", "", "comma-separated scenarios to run instead of the schedule's (see -list)")
	fs.DurationVar(&o.Baseline, "baseline", 0, "how long the fault-free baseline runs (default: the schedule's, 60s or 20s); e.g. -scenarios=baseline -baseline=10m")
	fs.BoolVar(&o.List, "list", false, "print the scenarios of the schedule with their phases and thresholds, and exit")
	fs.IntVar(&o.WriteRate, "write-rate", 200, "writes per second (puts and deletes)")
	fs.IntVar(&o.ReadRate, "read-rate", 200, "reads per second")
	fs.IntVar(&o.Keys, "keys", 500, "keys per scenario (each scenario writes its own)")
	fs.Float64Var(&o.DeleteFraction, "delete-fraction", 0.1, "fraction of the writes that are deletes")
	fs.IntVar(&o.ValueBytes, "value-bytes", 64, "size of each value")
	fs.IntVar(&o.MaxInFlight, "max-in-flight", 512, "requests of each stream waiting for an answer at most; one more due is not sent and counts as unavailable")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed of the choice of keys and operations (0: from the clock)")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", 10*time.Second, "bound on each request")
	fs.DurationVar(&o.ConvergeTimeout, "converge-timeout", 2*time.Minute, "how long every key may take to show its last write once the load stops")
	fs.DurationVar(&o.HealTimeout, "heal-timeout", 4*time.Minute, "how long the fleet may take to be ready again after a heal")
	fs.DurationVar(&o.ReadyTimeout, "ready-timeout", 5*time.Minute, "how long to wait for the fleet to be ready before a scenario")
	fs.StringVar(&o.Report, "report", "chaos-report.json", "where to write the JSON report")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *quick {
		o.Schedule = ScheduleCI
	}
	o.Compose = strings.Fields(*compose)
	for s := range strings.SplitSeq(*scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.Scenarios = append(o.Scenarios, s)
		}
	}
	return o, o.validate()
}

func (o Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.WriteRate <= 0 || o.ReadRate < 0 {
		bad("-write-rate must be positive and -read-rate not negative (got %d and %d)", o.WriteRate, o.ReadRate)
	}
	if o.WriteRate > 5000 || o.ReadRate > 5000 {
		bad("-write-rate and -read-rate are capped at 5000 per second (got %d and %d)", o.WriteRate, o.ReadRate)
	}
	if o.Keys <= 0 {
		bad("-keys must be positive (got %d)", o.Keys)
	}
	if o.DeleteFraction < 0 || o.DeleteFraction > 1 {
		bad("-delete-fraction must be between 0 and 1 (got %v)", o.DeleteFraction)
	}
	if o.ValueBytes < 0 || o.ValueBytes > 1<<20 {
		bad("-value-bytes must be between 0 and 1 MiB (got %d)", o.ValueBytes)
	}
	if o.MaxInFlight <= 0 || o.MaxInFlight > 4096 {
		bad("-max-in-flight must be between 1 and 4096 (got %d)", o.MaxInFlight)
	}
	for name, d := range map[string]time.Duration{
		"-request-timeout": o.RequestTimeout, "-converge-timeout": o.ConvergeTimeout,
		"-heal-timeout": o.HealTimeout, "-ready-timeout": o.ReadyTimeout,
	} {
		if d <= 0 {
			bad("%s must be positive (got %v)", name, d)
		}
	}
	if o.Project == "" {
		bad("-project (KVFLEET_PROJECT) must not be empty")
	}
	if len(o.Compose) == 0 {
		bad("-compose (KVFLEET_COMPOSE) must not be empty")
	}
	if o.Baseline < 0 || o.Baseline > time.Hour {
		bad("-baseline must be between 0 and 1h (got %v)", o.Baseline)
	}
	if _, err := o.scenarios(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// scenarios returns the scenarios the options select, with the baseline's
// duration applied.
func (o Options) scenarios() ([]Scenario, error) {
	ss, err := Select(o.Schedule, o.Scenarios)
	if err != nil {
		return nil, err
	}
	for i := range ss {
		if ss[i].Name == "baseline" && o.Baseline > 0 {
			ss[i].Before = o.Baseline
		}
	}
	return ss, nil
}
