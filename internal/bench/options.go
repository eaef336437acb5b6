package bench

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options configure a run of the benchmark.
type Options struct {
	BaseURL string // the fleet's nginx, on this machine
	Project string // Compose project of the fleet
	EnvFile string // the fleet's .env (secrets, images)
	Report  string // where the JSON result goes
	Quick   bool

	AppImage    string // image whose (scratch) filesystem runs the helpers
	NginxImage  string // "" : KVFLEET_NGINX_IMAGE of the env file
	BenchBinary string // this program, statically linked
	RefBinary   string // the reference server, statically linked

	Conns    int           // closed-loop connections
	Workers  int           // open-loop requests in flight at most
	Timeout  time.Duration // per request
	Duration time.Duration // of each measured phase
	Warmup   time.Duration // before each closed-loop phase

	Keys       int // cached keys read
	PutKeys    int // keys written
	ValueBytes int
	LagEvery   int // one PUT in LagEvery is followed until visible

	GetP99MS float64 // bound of the open-loop GET search
	PutP99MS float64 // bound of the open-loop PUT search

	// Curves step every operation up on an open loop, from a fifth of its
	// closed-loop rate, until a step fails CurveP99MS (or errors, or falls
	// behind), or down from that first step until one passes when it
	// already fails: throughput against offered load, for the report.
	Curves      bool
	CurveP99MS  float64
	CurveStep   time.Duration // length of each step
	CurveFactor float64       // each step's rate over the previous one, up or down
	CurveSteps  int           // steps up per operation at most (a step-down adds at most curveStepsDown)

	BrokerMessages  int
	BacklogMessages int
	Idle            time.Duration // idle CPU window before the load; 0: skip

	Reference bool // run the reference server and nginx
	Broker    bool // measure the broker's own rates
	Backlog   bool // measure the consumers on a backlog
	Search    bool // open-loop rate searches (full mode)
	PprofDir  string
	MaxRun    time.Duration
}

// Mode names the schedule.
func (o Options) Mode() string {
	if o.Quick {
		return "quick"
	}
	return "full"
}

// ParseOptions reads the command line of a run, with defaults from the
// environment as start.sh sets it (KVFLEET_PORT, KVFLEET_PROJECT,
// KVFLEET_ENV_FILE). Flags not given take the defaults of the mode
// (-quick or full). Usage and errors go to out; -h gives flag.ErrHelp.
func ParseOptions(args []string, getenv func(string) string, out io.Writer) (Options, error) {
	or := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	exe, _ := os.Executable()
	dir := filepath.Dir(exe)
	var o Options
	fs := flag.NewFlagSet("kvfleet-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: kvfleet-bench [flags]\n"+
			"       kvfleet-bench idle [-for 60s]   CPU of the idle fleet only\n\n"+
			"Measures the running fleet through its nginx (a loopback address) and,\n"+
			"on the same machine and path, a minimal Gin + go-redis server and the\n"+
			"broker's own rates; prints the ratios and writes a JSON result.\n"+
			"Every phase is bounded in time and count. The fleet must be running\n"+
			"(./start.sh); the run starts and removes containers of its own only.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.BaseURL, "url", "http://127.0.0.1:"+or("KVFLEET_PORT", "8000"), "the fleet's nginx; loopback only (env KVFLEET_PORT)")
	fs.StringVar(&o.Project, "project", or("KVFLEET_PROJECT", "kvfleet"), "Compose project of the fleet (env KVFLEET_PROJECT)")
	fs.StringVar(&o.EnvFile, "env-file", or("KVFLEET_ENV_FILE", ".env"), "the fleet's env file written by start.sh (env KVFLEET_ENV_FILE)")
	fs.StringVar(&o.Report, "report", "docs/report/bench.json", "where to write the JSON result")
	fs.BoolVar(&o.Quick, "quick", false, "the short schedule (about 3 minutes): no rate searches, no idle window, smaller backlog")
	fs.StringVar(&o.AppImage, "app-image", or("KVFLEET_APP_IMAGE", "kvfleet:local"), "image the helper binaries run in")
	fs.StringVar(&o.NginxImage, "nginx-image", "", "image of the reference nginx (default: KVFLEET_NGINX_IMAGE of the env file)")
	fs.StringVar(&o.BenchBinary, "bench-binary", exe, "this program, statically linked (mounted into helper containers)")
	fs.StringVar(&o.RefBinary, "ref-binary", filepath.Join(dir, "kvfleet-refserver"), "the reference server, statically linked")
	fs.IntVar(&o.Conns, "conns", 64, "connections of the closed-loop phases")
	fs.IntVar(&o.Workers, "workers", 256, "open-loop requests in flight at most; one more due is not sent and counts as an error")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "bound on each request")
	duration := fs.Duration("duration", 0, "length of each measured phase (default 8s quick, 20s full)")
	warmup := fs.Duration("warmup", 0, "warm-up before each closed-loop phase (default 2s quick, 3s full)")
	fs.IntVar(&o.Keys, "keys", 1000, "keys read by the cached GET phases")
	fs.IntVar(&o.PutKeys, "put-keys", 10000, "keys written by the PUT phases")
	fs.IntVar(&o.ValueBytes, "value-bytes", 64, "size of every value")
	fs.IntVar(&o.LagEvery, "lag-every", 100, "follow one PUT in this many until a read shows it (write -> visible lag)")
	fs.Float64Var(&o.GetP99MS, "get-p99-ms", 20, "p99 bound of the open-loop GET rate search")
	fs.Float64Var(&o.PutP99MS, "put-p99-ms", 500, "p99 bound of the open-loop PUT rate search")
	fs.BoolVar(&o.Curves, "curves", true, "step each operation (cached GET, uncached GET, PUT, mixed) up on an open loop until errors or p99 over -curve-p99-ms; when the first step already fails, step down until one passes")
	fs.Float64Var(&o.CurveP99MS, "curve-p99-ms", 100, "p99 bound of the throughput curves")
	curveStep := fs.Duration("curve-step", 0, "length of each step of the curves (default 4s quick, 10s full)")
	curveFactor := fs.Float64("curve-factor", 0, "rate of each step of the curves over the previous one, and of the previous one over each step down (default 1.5 quick, 1.25 full)")
	fs.IntVar(&o.CurveSteps, "curve-steps", 0, fmt.Sprintf("steps up per curve at most (default 6 quick, 10 full); a curve whose first step fails steps down at most %d more, not below %d/s", curveStepsDown, curveFloor))
	brokerMessages := fs.Int("broker-messages", 0, "messages of the broker ceiling (default 20000 quick, 100000 full)")
	backlogMessages := fs.Int("backlog-messages", 0, "writes of the backlog test (default 50000 quick, 100000 full)")
	idle := fs.Duration("idle", 0, "idle-CPU window before the load (default 0 quick, 60s full)")
	fs.BoolVar(&o.Reference, "reference", true, "measure the reference server (needs Docker and the project's networks)")
	fs.BoolVar(&o.Broker, "broker", true, "measure the broker's own publish and drain rates")
	fs.BoolVar(&o.Backlog, "backlog", true, "measure the consumers on a backlog published into the write queue")
	search := fs.Bool("search", false, "open-loop rate searches (default: on in full mode)")
	fs.StringVar(&o.PprofDir, "pprof", "", "save CPU profiles of an API replica and a consumer during the phases into this directory")
	fs.DurationVar(&o.MaxRun, "max-run", 0, "bound on the whole run (default 8m quick, 45m full)")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	pick := func(quick, full int) int {
		if o.Quick {
			return quick
		}
		return full
	}
	pickD := func(v, quick, full time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		if o.Quick {
			return quick
		}
		return full
	}
	o.Duration = pickD(*duration, 8*time.Second, 20*time.Second)
	o.Warmup = pickD(*warmup, 2*time.Second, 3*time.Second)
	o.MaxRun = pickD(o.MaxRun, 8*time.Minute, 45*time.Minute)
	o.CurveStep = pickD(*curveStep, 4*time.Second, 10*time.Second)
	o.CurveFactor = *curveFactor
	if o.CurveFactor == 0 {
		o.CurveFactor = map[bool]float64{true: 1.5, false: 1.25}[o.Quick]
	}
	if o.CurveSteps == 0 {
		o.CurveSteps = pick(6, 10)
	}
	o.BrokerMessages, o.BacklogMessages = *brokerMessages, *backlogMessages
	if !set["broker-messages"] {
		o.BrokerMessages = pick(20000, 100000)
	}
	if !set["backlog-messages"] {
		o.BacklogMessages = pick(50000, 100000)
	}
	o.Idle = *idle
	if !set["idle"] {
		o.Idle = time.Duration(pick(0, int(60*time.Second)))
	}
	o.Search = *search || !o.Quick
	if set["search"] {
		o.Search = *search
	}
	return o, o.validate()
}

func (o Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, err := CheckLoopback(o.BaseURL); err != nil {
		errs = append(errs, err)
	}
	if o.Conns < 1 || o.Conns > 1024 || o.Workers < 1 || o.Workers > 4096 {
		bad("-conns must be in 1..1024 and -workers in 1..4096 (got %d and %d)", o.Conns, o.Workers)
	}
	if o.Timeout <= 0 || o.Duration <= 0 || o.Warmup < 0 || o.MaxRun <= 0 || o.Idle < 0 {
		bad("-timeout, -duration and -max-run must be positive, -warmup and -idle not negative")
	}
	if o.Duration > 10*time.Minute || o.Idle > 10*time.Minute {
		bad("-duration and -idle are capped at 10m")
	}
	if o.Keys < 1 || o.PutKeys < 1 || o.ValueBytes < 0 || o.ValueBytes > 1<<20 || o.LagEvery < 1 {
		bad("-keys, -put-keys and -lag-every must be positive, -value-bytes in 0..1MiB")
	}
	if o.BrokerMessages < 1 || o.BacklogMessages < 1 || o.BrokerMessages > 1_000_000 || o.BacklogMessages > 1_000_000 {
		bad("-broker-messages and -backlog-messages must be in 1..1000000")
	}
	if o.Project == "" {
		bad("-project must not be empty")
	}
	if o.CurveStep <= 0 || o.CurveStep > 2*time.Minute || o.CurveFactor <= 1 || o.CurveFactor > 4 || o.CurveSteps < 1 || o.CurveSteps > 30 || o.CurveP99MS <= 0 {
		bad("-curve-step must be in (0, 2m], -curve-factor in (1, 4], -curve-steps in 1..30 and -curve-p99-ms positive")
	}
	return errors.Join(errs...)
}

// ReadEnvFile reads KEY=VALUE lines as start.sh writes them (comments and
// blank lines skipped, one level of quotes removed).
func ReadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w (run ./start.sh once, or pass -env-file)", err)
	}
	defer f.Close()
	return parseEnv(f)
}

func parseEnv(r io.Reader) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(r)
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
		env[strings.TrimSpace(k)] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: env file: %w", err)
	}
	return env, nil
}
