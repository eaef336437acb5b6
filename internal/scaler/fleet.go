package scaler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Runner runs a program and returns its standard output. It is the seam
// between the scaler and Docker: tests pass a fake that records commands.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs programs on this machine.
type ExecRunner struct{}

// Run runs name with args; a failure carries the last lines of its
// standard error.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w%s", name, strings.Join(args, " "), err, tail(stderr.String(), 5))
	}
	return out, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	return ": " + strings.Join(lines, " | ")
}

// Replica is one running container of a service.
type Replica struct {
	ID     string
	Number int // com.docker.compose.container-number
	// Healthy is false while its healthcheck has not passed yet.
	Healthy bool
}

// Fleet counts and scales the services of one Compose project, the way
// start.sh runs it.
type Fleet struct {
	Runner Runner
	// Compose is the Compose command: "docker compose" or
	// "docker-compose" (KVFLEET_COMPOSE, as start.sh finds it).
	Compose []string
	Project string
	EnvFile string
	// Routed is the service nginx balances over ("api"): nginx resolves
	// its replicas when it loads its configuration, so every change of
	// them is followed by a reload.
	Routed string
	// StopTimeout is how long a removed replica may take to drain before
	// Docker kills it; at least the service's stop_grace_period (30 s).
	StopTimeout time.Duration
	// ReadyTimeout bounds the wait for new replicas to pass their
	// healthcheck before nginx is reloaded.
	ReadyTimeout time.Duration
	// Poll is the interval of that wait.
	Poll time.Duration
}

// nginxConfig is the configuration nginx runs with (its entrypoint in
// docker-compose.yml); "nginx -s reload" must name it, as start.sh does.
const nginxConfig = "/etc/kvfleet/nginx/nginx.conf"

// commandTimeout bounds the Docker commands that do not wait for
// containers to stop.
const commandTimeout = 2 * time.Minute

func (f *Fleet) compose(ctx context.Context, args ...string) ([]byte, error) {
	full := append(slices.Clone(f.Compose[1:]), "--project-name", f.Project, "--env-file", f.EnvFile)
	return f.Runner.Run(ctx, f.Compose[0], append(full, args...)...)
}

// Check reports whether the fleet can be changed: the env file that
// Compose needs is there and the Compose command runs.
func (f *Fleet) Check(ctx context.Context) error {
	if _, err := os.Stat(f.EnvFile); err != nil {
		return fmt.Errorf("the env file: %w; run ./start.sh once to write it, or set KVFLEET_ENV_FILE", err)
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	args := append(slices.Clone(f.Compose[1:]), "version")
	if _, err := f.Runner.Run(ctx, f.Compose[0], args...); err != nil {
		return fmt.Errorf("compose command %q does not run (set KVFLEET_COMPOSE): %w", strings.Join(f.Compose, " "), err)
	}
	return nil
}

// Replicas returns the running containers of service, lowest number
// first. Containers that are restarting or stopped do not count: they
// serve nothing.
func (f *Fleet) Replicas(ctx context.Context, service string) ([]Replica, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	out, err := f.Runner.Run(ctx, "docker", "ps", "--no-trunc",
		"--filter", "label=com.docker.compose.project="+f.Project,
		"--filter", "label=com.docker.compose.service="+service,
		"--filter", "label=com.docker.compose.oneoff=False",
		"--filter", "status=running",
		"--format", `{{.ID}}	{{.Label "com.docker.compose.container-number"}}	{{.Status}}`)
	if err != nil {
		return nil, fmt.Errorf("listing the %s replicas: %w", service, err)
	}
	var reps []Replica
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		fields := strings.SplitN(line, "\t", 3)
		if len(fields) != 3 {
			return nil, fmt.Errorf("listing the %s replicas: unexpected line %q from docker ps", service, line)
		}
		n, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("listing the %s replicas: container %s has no compose container number", service, fields[0])
		}
		// "Up 5 minutes (healthy)", "Up 3 seconds (health: starting)",
		// "Up 2 hours" for a container without a healthcheck.
		status := fields[2]
		healthy := strings.Contains(status, "(healthy)") || !strings.Contains(status, "(")
		reps = append(reps, Replica{ID: fields[0], Number: n, Healthy: healthy})
	}
	slices.SortFunc(reps, func(a, b Replica) int { return a.Number - b.Number })
	return reps, nil
}

// Scale brings service from the running replicas current to n replicas.
func (f *Fleet) Scale(ctx context.Context, service string, current []Replica, n int) error {
	switch {
	case n > len(current):
		return f.scaleUp(ctx, service, n)
	case n < len(current):
		return f.scaleDown(ctx, service, current, n)
	}
	return nil
}

// scaleUp starts replicas and, for the routed service, reloads nginx once
// they pass their healthcheck: before that nginx would send requests to a
// replica that is not listening yet. (The requests would move on to
// another replica, but three refusals take the new one out of rotation
// for 10 s; see nginx.conf.)
func (f *Fleet) scaleUp(ctx context.Context, service string, n int) error {
	if err := f.composeScale(ctx, service, n); err != nil {
		return err
	}
	if service != f.Routed {
		return nil
	}
	waitErr := f.waitHealthy(ctx, service, n)
	// Reload even when some replica is not healthy in time: the others
	// are, and nginx skips one that refuses connections.
	return errors.Join(waitErr, f.reloadNginx(ctx))
}

// scaleDown removes the replicas with the highest numbers, the ones Compose
// removes when the scale goes down, so that the containers drained are the
// ones removed.
//
// For the routed service the order is what keeps clients from seeing a
// failure:
//  1. docker stop: each chosen replica gets SIGTERM, answers 503 on
//     /readyz and keeps serving for KVFLEET_DRAIN_DELAY with "Connection:
//     close" on every answer (the delay outlasts nginx's upstream
//     keep-alive, so nginx has dropped its idle connections to it by
//     then; nginx.conf), then closes its listener, finishes the requests it has (each write waits for its
//     confirm) and exits, within StopTimeout. nginx still lists it: a new
//     connection to it is refused, which nginx retries on another replica
//     for reads and for writes alike (nothing was sent; proxy_next_upstream
//     error in nginx.conf).
//  2. nginx reload, as soon as they have exited: the new workers resolve
//     "api" to the survivors only, and the old workers finish what they
//     have in flight.
//  3. compose up --scale: Compose now counts the stopped containers as
//     the extra ones and removes them (highest numbers first), so the
//     project records the new size and a later "up" does not bring them
//     back.
//
// Reloading nginx before the stop would not help: Docker's DNS still
// returns a replica until it exits, so nginx would keep it.
//
// Other services (the consumers) are not behind nginx: Compose stops them
// with their stop_grace_period (SIGTERM, they finish or release their
// batch) and removes them.
func (f *Fleet) scaleDown(ctx context.Context, service string, current []Replica, n int) error {
	if service != f.Routed {
		return f.composeScale(ctx, service, n)
	}
	victims := current[n:]
	ids := make([]string, len(victims))
	for i, r := range victims {
		ids[i] = r.ID
	}
	stopCtx, cancel := context.WithTimeout(ctx, f.StopTimeout+commandTimeout)
	defer cancel()
	args := append([]string{"stop", "-t", strconv.Itoa(int(f.StopTimeout.Seconds()))}, ids...)
	if _, err := f.Runner.Run(stopCtx, "docker", args...); err != nil {
		// Some may have stopped: route to what runs.
		return errors.Join(fmt.Errorf("stopping %s replicas: %w", service, err), f.reloadNginx(ctx))
	}
	if err := f.reloadNginx(ctx); err != nil {
		return err
	}
	if err := f.composeScale(ctx, service, n); err != nil {
		return err
	}
	// Compose removes the highest numbers among all the service's
	// containers; with a crashed replica lying around that may be another
	// set than ours: then route to what it left running.
	survivors, err := f.Replicas(ctx, service)
	if err != nil {
		return err
	}
	if !sameReplicas(survivors, current[:n]) {
		return f.reloadNginx(ctx)
	}
	return nil
}

func sameReplicas(a, b []Replica) bool {
	return slices.EqualFunc(a, b, func(x, y Replica) bool { return x.ID == y.ID })
}

// composeScale records n as the size of service: --no-recreate leaves the
// running replicas alone even when the Compose file changed since they
// started, and --no-deps leaves the other services alone.
func (f *Fleet) composeScale(ctx context.Context, service string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, f.StopTimeout+commandTimeout)
	defer cancel()
	_, err := f.compose(ctx, "up", "--detach", "--no-recreate", "--no-deps", "--scale", fmt.Sprintf("%s=%d", service, n), service)
	if err != nil {
		return fmt.Errorf("scaling %s to %d: %w", service, n, err)
	}
	return nil
}

func (f *Fleet) reloadNginx(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if _, err := f.compose(ctx, "exec", "-T", "nginx", "nginx", "-c", nginxConfig, "-s", "reload"); err != nil {
		return fmt.Errorf("reloading nginx: %w", err)
	}
	return nil
}

// waitHealthy waits until n replicas of service pass their healthcheck.
func (f *Fleet) waitHealthy(ctx context.Context, service string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, f.ReadyTimeout)
	defer cancel()
	for {
		reps, err := f.Replicas(ctx, service)
		healthy := 0
		for _, r := range reps {
			if r.Healthy {
				healthy++
			}
		}
		if err == nil && healthy >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d %s replicas healthy after %s", healthy, n, service, f.ReadyTimeout)
		case <-time.After(f.Poll):
		}
	}
}
