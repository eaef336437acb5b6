package scaler

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is the scaler's configuration. Each setting comes from, in this
// order: its command-line flag, its environment variable, the same
// variable in the fleet's env file (.env, where start.sh keeps the
// fleet's settings), its default.
type Config struct {
	PrometheusURL string
	QueryTimeout  time.Duration
	Project       string
	EnvFile       string
	Compose       []string

	Interval     time.Duration
	Cooldown     time.Duration
	DownWindow   time.Duration
	Tolerance    float64
	SignalWindow time.Duration
	GrowthWindow time.Duration

	APIMin, APIMax    int
	APICPUTarget      float64
	APICPUCores       float64
	APIInFlightTarget float64

	ConsumerMin, ConsumerMax int
	ConsumerBacklogTarget    float64
	Queue                    string

	MetricsAddr  string
	StopTimeout  time.Duration
	ReadyTimeout time.Duration

	DryRun bool
	Once   bool

	printed []slog.Attr
}

// LogValue prints every setting with its effective value (none is a
// secret).
func (c Config) LogValue() slog.Value { return slog.GroupValue(c.printed...) }

// Policy returns the policy of service ("api" or "consumer").
func (c Config) Policy(service string) Policy {
	p := Policy{Tolerance: c.Tolerance, DownWindow: c.DownWindow, Cooldown: c.Cooldown}
	if service == "api" {
		p.Min, p.Max = c.APIMin, c.APIMax
	} else {
		p.Min, p.Max = c.ConsumerMin, c.ConsumerMax
	}
	return p
}

// UsageError is a command line that cannot be run (or a request for
// help); Usage is the text to show.
type UsageError struct {
	Err   error
	Usage string
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

const usageHeader = `Usage: kvfleet-scaler [flags]

Scales the API replicas by CPU and requests in flight, and the consumers by
the write queue's backlog, reading both from Prometheus, with the
Kubernetes HPA rule (docs/autoscaling.md). Every decision is logged on one
line and exported on --metrics-addr.

Each setting is taken from its flag, else its environment variable, else
that variable in the env file, else its default.

Flags:
`

// setting is one configurable value: a flag, its variable, its default.
type setting struct {
	flag, env, def string
	kind, help     string
	set            func(string) error
	raw            string // from the command line
	given          bool
}

func (s *setting) String() string     { return s.raw }
func (s *setting) Set(v string) error { s.raw, s.given = v, true; return nil }

type settings struct {
	fs      *flag.FlagSet
	list    []*setting
	printed []slog.Attr
}

// add registers a setting; kind names its value in the usage text.
func (ss *settings) add(kind, name, env, def, help string, set func(string) error) *setting {
	s := &setting{flag: name, env: env, def: def, kind: kind, help: help, set: set}
	ss.list = append(ss.list, s)
	ss.fs.Var(s, name, help)
	return s
}

func (ss *settings) duration(p *time.Duration, name, env, def, help string) *setting {
	return ss.add("duration", name, env, def, help, func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration (use a unit: 5s, 5m)", v)
		}
		*p = d
		return nil
	})
}

func (ss *settings) integer(p *int, name, env, def, help string) *setting {
	return ss.add("int", name, env, def, help, func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		*p = n
		return nil
	})
}

func (ss *settings) number(p *float64, name, env, def, help string) *setting {
	return ss.add("float", name, env, def, help, func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		*p = f
		return nil
	})
}

func (ss *settings) str(p *string, name, env, def, help string) *setting {
	return ss.add("string", name, env, def, help, func(v string) error { *p = v; return nil })
}

// resolve gives s its value: the flag, else the variable, else the env
// file, else the default; it records the value for the start-up log.
func (ss *settings) resolve(s *setting, lookup func(string) (string, string)) error {
	v, from := s.raw, "--"+s.flag
	if !s.given {
		v, from = lookup(s.env)
		if v == "" {
			v, from = s.def, "the default of "+s.env
		}
	}
	ss.printed = append(ss.printed, slog.String(s.env, v))
	if err := s.set(v); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	return nil
}

// usage prints the settings, then the other flags.
func (ss *settings) usage(w *bytes.Buffer) {
	w.WriteString(usageHeader)
	for _, s := range ss.list {
		fmt.Fprintf(w, "  --%s %s\n        %s (%s, default %s)\n", s.flag, s.kind, s.help, s.env, s.def)
	}
	ss.fs.VisitAll(func(f *flag.Flag) {
		if _, isSetting := f.Value.(*setting); !isSetting {
			fmt.Fprintf(w, "  --%s\n        %s\n", f.Name, f.Usage)
		}
	})
}

// LoadConfig reads the configuration from args (without the program
// name), getenv and the env file, which readFile reads (a missing file is
// no error: the start-up check reports it when the scaler is to act).
func LoadConfig(args []string, getenv func(string) string, readFile func(string) ([]byte, error)) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("kvfleet-scaler", flag.ContinueOnError)
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	ss := &settings{fs: fs}
	fs.Usage = func() { ss.usage(&usage) }
	var compose string
	envFile := ss.str(&c.EnvFile, "env-file", "KVFLEET_ENV_FILE", ".env", "the fleet's env file, also passed to Compose")
	ss.str(&c.Project, "project", "KVFLEET_PROJECT", "kvfleet", "the Compose project name of the fleet")
	ss.str(&compose, "compose", "KVFLEET_COMPOSE", "docker compose", `the Compose command ("docker compose" or "docker-compose")`)
	promURL := ss.str(&c.PrometheusURL, "prometheus-url", "KVFLEET_SCALER_PROMETHEUS_URL", "http://127.0.0.1:${KVFLEET_PROMETHEUS_PORT:-9090}", "the fleet's Prometheus")
	ss.duration(&c.QueryTimeout, "query-timeout", "KVFLEET_SCALER_QUERY_TIMEOUT", "3s", "the limit of each Prometheus query")
	ss.duration(&c.Interval, "interval", "KVFLEET_SCALER_INTERVAL", "5s", "how often to decide")
	ss.duration(&c.Cooldown, "cooldown", "KVFLEET_SCALER_COOLDOWN", "30s", "least time between two changes of a service")
	ss.duration(&c.DownWindow, "down-window", "KVFLEET_SCALER_DOWN_WINDOW", "5m", "scale down only after this long of lower recommendations")
	ss.number(&c.Tolerance, "tolerance", "KVFLEET_SCALER_TOLERANCE", "0.1", "no change while every signal is within this fraction of its target")
	ss.duration(&c.SignalWindow, "signal-window", "KVFLEET_SCALER_SIGNAL_WINDOW", "20s", "range of the API's rate() and avg_over_time()")
	ss.duration(&c.GrowthWindow, "growth-window", "KVFLEET_SCALER_GROWTH_WINDOW", "1m", "range of the backlog's deriv() and the consumers' rate()")
	ss.integer(&c.APIMin, "api-min", "KVFLEET_SCALER_API_MIN", "3", "fewest API replicas")
	ss.integer(&c.APIMax, "api-max", "KVFLEET_SCALER_API_MAX", "8", "most API replicas")
	ss.number(&c.APICPUTarget, "api-cpu-target", "KVFLEET_SCALER_API_CPU_TARGET", "0.5", "target CPU per API replica, as a fraction of --api-cpu-cores")
	ss.number(&c.APICPUCores, "api-cpu-cores", "KVFLEET_SCALER_API_CPU_CORES", "1", "CPU of one API replica in cores (its container's quota; 1 without one)")
	ss.number(&c.APIInFlightTarget, "api-in-flight-target", "KVFLEET_SCALER_API_IN_FLIGHT_TARGET", "10", "target requests in flight per API replica (0: ignore this signal)")
	ss.integer(&c.ConsumerMin, "consumer-min", "KVFLEET_SCALER_CONSUMER_MIN", "2", "fewest consumers")
	ss.integer(&c.ConsumerMax, "consumer-max", "KVFLEET_SCALER_CONSUMER_MAX", "6", "most consumers")
	ss.number(&c.ConsumerBacklogTarget, "consumer-backlog-target", "KVFLEET_SCALER_CONSUMER_BACKLOG_TARGET", "500", "target queued messages (ready + unacked) per consumer")
	ss.str(&c.Queue, "queue", "KVFLEET_SCALER_QUEUE", "kvfleet.writes", "the write queue")
	ss.str(&c.MetricsAddr, "metrics-addr", "KVFLEET_SCALER_METRICS_ADDR", "127.0.0.1:9102", "where to serve /metrics (not with --once)")
	ss.duration(&c.StopTimeout, "stop-timeout", "KVFLEET_SCALER_STOP_TIMEOUT", "30s", "how long a removed replica may drain (the services' stop_grace_period)")
	ss.duration(&c.ReadyTimeout, "ready-timeout", "KVFLEET_SCALER_READY_TIMEOUT", "60s", "how long to wait for new API replicas to be healthy before reloading nginx")
	fs.BoolVar(&c.DryRun, "dry-run", false, "decide and log, change nothing")
	fs.BoolVar(&c.Once, "once", false, "decide once for each service and exit (never scales down: no window has been seen)")

	if err := fs.Parse(args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			usage.Reset()
			fs.Usage()
		}
		return c, &UsageError{Err: err, Usage: usage.String()}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return c, &UsageError{Err: fmt.Errorf("unexpected argument %q", fs.Arg(0)), Usage: usage.String()}
	}

	// The env file's own name cannot come from the env file.
	file := map[string]string{}
	lookup := func(name string) (string, string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v, name
		}
		return file[name], name + " (in the env file)"
	}
	if err := ss.resolve(envFile, lookup); err != nil {
		return c, err
	}
	if data, err := readFile(c.EnvFile); err == nil {
		file = parseEnvFile(data)
	}
	// Compose publishes Prometheus on KVFLEET_PROMETHEUS_PORT.
	promURL.def = "http://127.0.0.1:9090"
	if port, _ := lookup("KVFLEET_PROMETHEUS_PORT"); port != "" {
		promURL.def = "http://127.0.0.1:" + port
	}
	var errs []error
	for _, s := range ss.list {
		if s != envFile {
			errs = append(errs, ss.resolve(s, lookup))
		}
	}
	c.Compose = strings.Fields(compose)
	c.printed = append(ss.printed, slog.Bool("dry_run", c.DryRun), slog.Bool("once", c.Once))
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.validate()
}

// parseEnvFile reads KEY=VALUE lines as Compose does (comments, blank
// lines, optional quotes); only the scaler's own variables are ever
// looked up in it, never the fleet's secrets.
func parseEnvFile(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[strings.TrimSpace(k)] = v
	}
	return out
}

func (c Config) validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if _, err := NewPrometheus(c.PrometheusURL, c.QueryTimeout); err != nil {
		bad("KVFLEET_SCALER_PROMETHEUS_URL", "%v", err)
	}
	if len(c.Compose) == 0 {
		bad("KVFLEET_COMPOSE", "is empty")
	}
	if c.Project == "" {
		bad("KVFLEET_PROJECT", "is empty")
	}
	if c.Interval < time.Second {
		bad("KVFLEET_SCALER_INTERVAL", "%s: must be at least 1s", c.Interval)
	}
	if c.QueryTimeout <= 0 {
		bad("KVFLEET_SCALER_QUERY_TIMEOUT", "%s: must be positive", c.QueryTimeout)
	}
	// Prometheus scrapes every 5 s (deploy/prometheus/prometheus.yml):
	// rate() needs two samples in its range.
	if c.SignalWindow < 10*time.Second {
		bad("KVFLEET_SCALER_SIGNAL_WINDOW", "%s: must be at least 10s (two scrapes)", c.SignalWindow)
	}
	if c.GrowthWindow < 15*time.Second {
		bad("KVFLEET_SCALER_GROWTH_WINDOW", "%s: must be at least 15s", c.GrowthWindow)
	}
	if c.APICPUTarget <= 0 || c.APICPUCores <= 0 {
		bad("KVFLEET_SCALER_API_CPU_TARGET", "%g of %g cores: both must be positive", c.APICPUTarget, c.APICPUCores)
	}
	if c.APIInFlightTarget < 0 {
		bad("KVFLEET_SCALER_API_IN_FLIGHT_TARGET", "%g: must not be negative", c.APIInFlightTarget)
	}
	if c.ConsumerBacklogTarget <= 0 {
		bad("KVFLEET_SCALER_CONSUMER_BACKLOG_TARGET", "%g: must be positive", c.ConsumerBacklogTarget)
	}
	if c.StopTimeout < time.Second || c.ReadyTimeout < time.Second {
		bad("KVFLEET_SCALER_STOP_TIMEOUT", "stop %s and ready %s timeouts: must be at least 1s", c.StopTimeout, c.ReadyTimeout)
	}
	if err := c.Policy("api").Validate(); err != nil {
		bad("KVFLEET_SCALER_API_MIN/MAX", "%v", err)
	}
	if err := c.Policy("consumer").Validate(); err != nil {
		bad("KVFLEET_SCALER_CONSUMER_MIN/MAX", "%v", err)
	}
	if c.Tolerance < 0 || c.Tolerance >= 1 {
		bad("KVFLEET_SCALER_TOLERANCE", "%g: must be in [0, 1)", c.Tolerance)
	}
	if c.DownWindow < 0 || c.Cooldown < 0 {
		bad("KVFLEET_SCALER_DOWN_WINDOW/COOLDOWN", "must not be negative")
	}
	if err := checkAddr(c.MetricsAddr); err != nil {
		bad("KVFLEET_SCALER_METRICS_ADDR", "%v", err)
	}
	return errors.Join(errs...)
}

func checkAddr(addr string) error {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return fmt.Errorf("%q is not a host:port address", addr)
	}
	if _, err := strconv.ParseUint(addr[i+1:], 10, 16); err != nil {
		return fmt.Errorf("%q is not a host:port address", addr)
	}
	if _, err := url.Parse("http://" + addr); err != nil {
		return fmt.Errorf("%q is not a host:port address", addr)
	}
	return nil
}
