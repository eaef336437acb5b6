package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Services of the fleet by role, as docker-compose.yml names them.
var (
	serviceAPI       = regexp.MustCompile(`^api$`)
	serviceConsumer  = regexp.MustCompile(`^consumer$`)
	serviceNginx     = regexp.MustCompile(`^nginx$`)
	serviceSentinel  = regexp.MustCompile(`^redis-sentinel-\d+$`)
	serviceRedisData = regexp.MustCompile(`^redis-(master|replica-\d+)$`)
	serviceRabbitMQ  = regexp.MustCompile(`^rabbitmq-\d+$`)
	serviceDatabase  = regexp.MustCompile(`^(postgres|cockroach-\d+)$`)
)

// matcher selects services by name (a *regexp.Regexp).
type matcher interface{ MatchString(string) bool }

// commandTimeout bounds every docker command but the slow ones.
const commandTimeout = time.Minute

// Fleet is the containers of one Compose project, driven through the
// docker CLI. Every container it acts on comes from a listing filtered by
// the project's label, so nothing outside the project is ever touched.
type Fleet struct {
	Project string
	// Compose is the Compose command ("docker compose" or
	// "docker-compose"), as KVFLEET_COMPOSE gives it.
	Compose []string
	// EnvFile overrides the env file the project was started with.
	EnvFile string
}

// Container is one container of the project.
type Container struct {
	ID       string // full id
	Name     string
	Service  string
	Number   int    // com.docker.compose.container-number
	Status   string // created, running, restarting, exited, …
	ExitCode int
	Health   string // healthy, unhealthy, starting; empty without a healthcheck
	Pid      int    // of its first process, in this machine's PID namespace
	Restart  string // restart policy
	Hostname string
	// Restarts is how many times Docker has restarted it; OOMKilled says
	// whether its last end was the kernel's out-of-memory killer.
	Restarts  int
	OOMKilled bool
}

// Label returns service#number, the way start.sh names containers.
func (c Container) Label() string {
	if c.Number > 1 || c.Service == "api" || c.Service == "consumer" {
		return c.Service + "#" + strconv.Itoa(c.Number)
	}
	return c.Service
}

// Ready reports whether the container is doing its job: running (and
// healthy when it has a healthcheck), or a one-shot job that finished.
func (c Container) Ready() bool {
	switch {
	case c.Status == "running":
		return c.Health == "" || c.Health == "healthy"
	case c.Status == "exited" && c.ExitCode == 0:
		return c.Restart != "always" && c.Restart != "unless-stopped"
	}
	return false
}

// docker runs the docker CLI and returns its standard output.
func docker(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// inspectFormat prints one line per container for parseContainers.
const inspectFormat = `{{.Id}}|{{.Name}}|{{index .Config.Labels "com.docker.compose.service"}}|` +
	`{{index .Config.Labels "com.docker.compose.container-number"}}|{{.State.Status}}|{{.State.ExitCode}}|` +
	`{{if index .State "Health"}}{{.State.Health.Status}}{{end}}|{{.State.Pid}}|{{.HostConfig.RestartPolicy.Name}}|{{.Config.Hostname}}|` +
	`{{.RestartCount}}|{{.State.OOMKilled}}`

// parseContainers reads the lines docker inspect prints with inspectFormat.
func parseContainers(out string) ([]Container, error) {
	var cs []Container
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 12 {
			return nil, fmt.Errorf("chaos: unexpected docker inspect line %q", line)
		}
		num, _ := strconv.Atoi(f[3])
		exit, _ := strconv.Atoi(f[5])
		pid, _ := strconv.Atoi(f[7])
		restarts, _ := strconv.Atoi(f[10])
		cs = append(cs, Container{
			ID: f[0], Name: strings.TrimPrefix(f[1], "/"), Service: f[2], Number: num,
			Status: f[4], ExitCode: exit, Health: f[6], Pid: pid, Restart: f[8], Hostname: f[9],
			Restarts: restarts, OOMKilled: f[11] == "true",
		})
	}
	slices.SortFunc(cs, func(a, b Container) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return a.Number - b.Number
	})
	return cs, nil
}

// Containers lists the project's containers, stopped ones included, whose
// service matches service (nil: all), sorted by service and number.
func (f *Fleet) Containers(ctx context.Context, service matcher) ([]Container, error) {
	out, err := docker(ctx, commandTimeout, "ps", "-aq", "--no-trunc", "--filter", "label=com.docker.compose.project="+f.Project)
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return nil, nil
	}
	out, err = docker(ctx, commandTimeout, append([]string{"inspect", "--format", inspectFormat}, ids...)...)
	if err != nil {
		// A container removed between the two commands (scaling down).
		return nil, err
	}
	all, err := parseContainers(out)
	if err != nil {
		return nil, err
	}
	if service == nil {
		return all, nil
	}
	var cs []Container
	for _, c := range all {
		if service.MatchString(c.Service) {
			cs = append(cs, c)
		}
	}
	return cs, nil
}

// running lists the running containers of the services that match.
func (f *Fleet) running(ctx context.Context, service matcher) ([]Container, error) {
	cs, err := f.Containers(ctx, service)
	if err != nil {
		return nil, err
	}
	var up []Container
	for _, c := range cs {
		if c.Status == "running" {
			up = append(up, c)
		}
	}
	if len(up) == 0 {
		return nil, fmt.Errorf("chaos: no running container of %v in project %s", service, f.Project)
	}
	return up, nil
}

// Inspect returns the current state of c.
func (f *Fleet) Inspect(ctx context.Context, c Container) (Container, error) {
	out, err := docker(ctx, commandTimeout, "inspect", "--format", inspectFormat, c.ID)
	if err != nil {
		return Container{}, err
	}
	cs, err := parseContainers(out)
	if err != nil {
		return Container{}, err
	}
	if len(cs) != 1 {
		return Container{}, fmt.Errorf("chaos: inspect %s: %d containers", c.Name, len(cs))
	}
	return cs[0], nil
}

// Kill sends SIGKILL to c's first process from this machine, which the
// container's restart policy sees as a crash (docker kill would count as a
// deliberate stop and keep the container down). When that is impossible
// (not root, or another PID namespace), it falls back to docker kill, and
// the heal has to start the container. It returns how it killed.
func (f *Fleet) Kill(ctx context.Context, c Container) (string, error) {
	c, err := f.Inspect(ctx, c)
	if err != nil {
		return "", err
	}
	if c.Status != "running" || c.Pid <= 0 {
		return "", fmt.Errorf("chaos: %s is %s, not running", c.Name, c.Status)
	}
	if ownsProcess(c.ID, c.Pid) && syscall.Kill(c.Pid, syscall.SIGKILL) == nil {
		return "SIGKILL to its process " + strconv.Itoa(c.Pid), nil
	}
	if _, err := docker(ctx, commandTimeout, "kill", "--signal", "KILL", c.ID); err != nil {
		return "", err
	}
	return "docker kill --signal KILL (its restart policy will not restart it)", nil
}

// ownsProcess reports whether pid is the container id's process as this
// machine sees it (its cgroup names the container), so that a PID from
// another namespace is never signalled.
func ownsProcess(id string, pid int) bool {
	cg, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	return err == nil && bytes.Contains(cg, []byte(id))
}

// Stop stops containers as docker stop does (all at once), with each
// container's own stop signal and grace period, which is how an operator
// stops them.
func (f *Fleet) Stop(ctx context.Context, cs []Container) error {
	if len(cs) == 0 {
		return nil
	}
	_, err := docker(ctx, 2*commandTimeout, append([]string{"stop"}, ids(cs)...)...)
	return err
}

// Start starts containers (all at once).
func (f *Fleet) Start(ctx context.Context, cs []Container) error {
	if len(cs) == 0 {
		return nil
	}
	_, err := docker(ctx, commandTimeout, append([]string{"start"}, ids(cs)...)...)
	return err
}

func ids(cs []Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func names(cs []Container) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Label()
	}
	return strings.Join(out, ", ")
}

// Exec runs a command in c and returns its standard output.
func (f *Fleet) Exec(ctx context.Context, c Container, cmd ...string) (string, error) {
	return docker(ctx, commandTimeout, append([]string{"exec", c.ID}, cmd...)...)
}

// EnsureRunning waits up to grace for c to be running again (its restart
// policy), starts it if it is not, and says which happened.
func (f *Fleet) EnsureRunning(ctx context.Context, c Container, grace time.Duration) (string, error) {
	start := time.Now()
	for {
		now, err := f.Inspect(ctx, c)
		if err != nil {
			return "", err
		}
		if now.Status == "running" {
			return fmt.Sprintf("%s running again after %.1fs (restart policy)", c.Label(), time.Since(start).Seconds()), nil
		}
		if time.Since(start) >= grace {
			break
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return "", err
		}
	}
	if err := f.Start(ctx, []Container{c}); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s started by the suite (not restarted within %v)", c.Label(), grace), nil
}

// WaitReady waits until every container of the project is Ready and
// returns how long that took, or an error naming what is not ready.
func (f *Fleet) WaitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		cs, err := f.Containers(ctx, nil)
		var notReady []string
		if err == nil {
			for _, c := range cs {
				if !c.Ready() {
					state := c.Status
					if c.Health != "" {
						state += ", " + c.Health
					}
					notReady = append(notReady, c.Label()+" ("+state+")")
				}
			}
			if len(cs) == 0 {
				err = fmt.Errorf("chaos: project %s has no containers; start the fleet first (./start.sh)", f.Project)
			}
		}
		if err == nil && len(notReady) == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) >= timeout {
			if err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("chaos: not ready after %v: %s", timeout, strings.Join(notReady, ", "))
		}
		if err := sleep(ctx, time.Second); err != nil {
			return 0, err
		}
	}
}

// composeArgs reads, from a container of the project, where Compose was
// run (the working directory, the compose files and the env file) and
// returns the global arguments that address the same project.
func (f *Fleet) composeArgs(ctx context.Context) ([]string, error) {
	cs, err := f.Containers(ctx, nil)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("chaos: project %s has no containers", f.Project)
	}
	out, err := docker(ctx, commandTimeout, "inspect", "--format",
		`{{index .Config.Labels "com.docker.compose.project.working_dir"}}|{{index .Config.Labels "com.docker.compose.project.config_files"}}|{{index .Config.Labels "com.docker.compose.project.environment_file"}}`,
		cs[0].ID)
	if err != nil {
		return nil, err
	}
	return composeArgs(f.Project, strings.TrimSpace(out), f.EnvFile)
}

// composeArgs builds the global Compose arguments from the labels
// "working_dir|config_files|environment_file" and an env file override
// (relative to the working directory, as start.sh's KVFLEET_ENV_FILE is).
func composeArgs(project, labels, envFile string) ([]string, error) {
	f := strings.Split(labels, "|")
	if len(f) != 3 || f[0] == "" {
		return nil, fmt.Errorf("chaos: the containers of %s carry no Compose project labels (%q); was it started with docker compose?", project, labels)
	}
	args := []string{"--project-name", project, "--project-directory", f[0]}
	for file := range strings.SplitSeq(f[1], ",") {
		if file != "" {
			args = append(args, "--file", file)
		}
	}
	switch {
	case envFile != "" && !filepath.IsAbs(envFile):
		args = append(args, "--env-file", filepath.Join(f[0], envFile))
	case envFile != "":
		args = append(args, "--env-file", envFile)
	default:
		for file := range strings.SplitSeq(f[2], ",") {
			if file != "" {
				args = append(args, "--env-file", file)
			}
		}
	}
	return args, nil
}

// ComposeRun runs a Compose subcommand on the project, with the files and
// env file the project was started with.
func (f *Fleet) ComposeRun(ctx context.Context, timeout time.Duration, args ...string) error {
	global, err := f.composeArgs(ctx)
	if err != nil {
		return err
	}
	if len(f.Compose) == 0 {
		return errors.New("chaos: no Compose command")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full := append(append(slices.Clone(f.Compose[1:]), global...), args...)
	out, err := exec.CommandContext(ctx, f.Compose[0], full...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", strings.Join(f.Compose, " "), strings.Join(args, " "), err, lastLines(string(out), 5))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], " / ")
}

// ReloadNginx makes nginx resolve the API replicas again, with the
// configuration file its container was started with.
func (f *Fleet) ReloadNginx(ctx context.Context) error {
	cs, err := f.running(ctx, serviceNginx)
	if err != nil {
		return err
	}
	out, err := docker(ctx, commandTimeout, "inspect", "--format", `{{json .Config.Entrypoint}}|{{json .Config.Cmd}}`, cs[0].ID)
	if err != nil {
		return err
	}
	cmd := []string{"nginx"}
	if conf := nginxConfig(out); conf != "" {
		cmd = append(cmd, "-c", conf)
	}
	_, err = f.Exec(ctx, cs[0], append(cmd, "-s", "reload")...)
	return err
}

// nginxConfig finds the -c argument in the "entrypoint|cmd" JSON arrays of
// an nginx container; empty when there is none (the default file).
func nginxConfig(inspect string) string {
	var args []string
	for part := range strings.SplitSeq(strings.TrimSpace(inspect), "|") {
		var a []string
		if json.Unmarshal([]byte(part), &a) == nil {
			args = append(args, a...)
		}
	}
	for i, a := range args {
		if a == "-c" && i+1 < len(args) {
			return args[i+1]
		}
		if conf, ok := strings.CutPrefix(a, "-c"); ok && conf != "" && !strings.HasPrefix(a, "-c ") {
			return conf
		}
	}
	return ""
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pause freezes cs (docker pause): their processes stop, their
// connections stay open, as with a process that has stopped making
// progress.
func (f *Fleet) Pause(ctx context.Context, cs []Container) error {
	_, err := docker(ctx, commandTimeout, append([]string{"pause"}, ids(cs)...)...)
	return err
}

// Unpause lets cs run again; a container that is not paused is left alone.
func (f *Fleet) Unpause(ctx context.Context, cs []Container) error {
	var paused []Container
	for _, c := range cs {
		if c, err := f.Inspect(ctx, c); err == nil && c.Status == "paused" {
			paused = append(paused, c)
		}
	}
	if len(paused) == 0 {
		return nil
	}
	_, err := docker(ctx, commandTimeout, append([]string{"unpause"}, ids(paused)...)...)
	return err
}
