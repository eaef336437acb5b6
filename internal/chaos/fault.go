package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Fault is one kind of failure the suite injects and then heals. Inject
// and Heal say in a sentence what they did. Heal is called whenever Inject
// was, also when Inject failed halfway.
type Fault interface {
	Inject(ctx context.Context, f *Fleet) (string, error)
	Heal(ctx context.Context, f *Fleet) (string, error)
}

// restartGrace is how long a killed container may take to be restarted by
// its restart policy before the heal starts it.
const restartGrace = 30 * time.Second

// Names the fleet uses (docker-compose.yml, deploy/).
const (
	redisMasterName = "kvfleet"
	writeQueue      = "kvfleet.writes"
)

// RedisMaster finds the current Redis master by asking the Sentinels, and
// returns its container. The Sentinel password stays inside the Sentinel's
// container: redis-cli reads it from REDISCLI_AUTH, set from the
// container's own SENTINEL_PASSWORD, so it is on no command line.
func (f *Fleet) RedisMaster(ctx context.Context) (Container, error) {
	sentinels, err := f.running(ctx, serviceSentinel)
	if err != nil {
		return Container{}, err
	}
	var errs []error
	for _, s := range sentinels {
		out, err := f.Exec(ctx, s, "sh", "-c",
			`REDISCLI_AUTH="$SENTINEL_PASSWORD" exec redis-cli -p 26379 SENTINEL get-master-addr-by-name "$1"`,
			"sh", redisMasterName)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		host, err := parseMasterAddr(out)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Label(), err))
			continue
		}
		nodes, err := f.Containers(ctx, serviceRedisData)
		if err != nil {
			return Container{}, err
		}
		if c, ok := f.byAddress(ctx, nodes, host); ok {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s names master %q, which is no Redis container of project %s", s.Label(), host, f.Project))
	}
	return Container{}, fmt.Errorf("chaos: finding the Redis master: %w", errors.Join(errs...))
}

// parseMasterAddr reads the answer of SENTINEL get-master-addr-by-name:
// the host on the first line, the port on the second.
func parseMasterAddr(out string) (string, error) {
	lines := strings.Fields(out)
	if len(lines) != 2 {
		return "", fmt.Errorf("unexpected answer to get-master-addr-by-name: %q", out)
	}
	if _, err := strconv.Atoi(lines[1]); err != nil {
		return "", fmt.Errorf("unexpected answer to get-master-addr-by-name: %q", out)
	}
	return lines[0], nil
}

// byAddress finds the container a host name or IP address refers to: its
// service name, its hostname, or one of its addresses.
func (f *Fleet) byAddress(ctx context.Context, cs []Container, host string) (Container, bool) {
	for _, c := range cs {
		if c.Service == host || c.Hostname == host {
			return c, true
		}
	}
	if net.ParseIP(host) == nil {
		return Container{}, false
	}
	for _, c := range cs {
		out, err := docker(ctx, commandTimeout, "inspect", "--format", `{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}`, c.ID)
		if err == nil && containsField(out, host) {
			return c, true
		}
	}
	return Container{}, false
}

func containsField(s, field string) bool {
	for f := range strings.FieldsSeq(s) {
		if f == field {
			return true
		}
	}
	return false
}

// RabbitMQLeader returns the RabbitMQ node that leads the write queue (the
// one whose loss matters most), asking the running nodes in turn.
func (f *Fleet) RabbitMQLeader(ctx context.Context) (Container, error) {
	nodes, err := f.running(ctx, serviceRabbitMQ)
	if err != nil {
		return Container{}, err
	}
	var errs []error
	for _, n := range nodes {
		out, err := f.Exec(ctx, n, "rabbitmqctl", "-q", "list_queues", "name", "leader", "--formatter", "json")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		host, err := parseQueueLeader(out, writeQueue)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Label(), err))
			continue
		}
		if c, ok := f.byAddress(ctx, nodes, host); ok {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("the leader %q of %s is no running RabbitMQ container of project %s", host, writeQueue, f.Project))
	}
	return Container{}, fmt.Errorf("chaos: finding the leader of %s: %w", writeQueue, errors.Join(errs...))
}

// parseQueueLeader reads `rabbitmqctl list_queues name leader --formatter
// json` and returns the host of queue's leader ("rabbitmq-2" of
// "rabbit@rabbitmq-2").
func parseQueueLeader(out, queue string) (string, error) {
	var rows []struct {
		Name   string `json:"name"`
		Leader string `json:"leader"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return "", fmt.Errorf("unexpected list_queues output %q: %w", out, err)
	}
	for _, r := range rows {
		if r.Name == queue {
			_, host, ok := strings.Cut(r.Leader, "@")
			if !ok || host == "" {
				return "", fmt.Errorf("queue %s has no leader (%q)", queue, r.Leader)
			}
			return host, nil
		}
	}
	return "", fmt.Errorf("no queue %s", queue)
}

// killOne kills one container and then waits for it to come back.
type killOne struct {
	what   string                                           // for messages: "the Redis master"
	choose func(context.Context, *Fleet) (Container, error) // picks the victim
	victim *Container
}

func (k *killOne) Inject(ctx context.Context, f *Fleet) (string, error) {
	c, err := k.choose(ctx, f)
	if err != nil {
		return "", err
	}
	how, err := f.Kill(ctx, c)
	if err != nil {
		return "", err
	}
	k.victim = &c
	return fmt.Sprintf("killed %s, %s (%s)", k.what, c.Label(), how), nil
}

func (k *killOne) Heal(ctx context.Context, f *Fleet) (string, error) {
	if k.victim == nil {
		return "nothing to heal", nil
	}
	return f.EnsureRunning(ctx, *k.victim, restartGrace)
}

// firstRunning picks the running container of service with the lowest
// number.
func firstRunning(service matcher) func(context.Context, *Fleet) (Container, error) {
	return func(ctx context.Context, f *Fleet) (Container, error) {
		cs, err := f.running(ctx, service)
		if err != nil {
			return Container{}, err
		}
		return cs[0], nil
	}
}

// stopAll stops every running container of some services (gracefully, all
// at once), and starts them again on heal.
type stopAll struct {
	what    string
	service matcher
	stopped []Container
}

func (s *stopAll) Inject(ctx context.Context, f *Fleet) (string, error) {
	cs, err := f.running(ctx, s.service)
	if err != nil {
		return "", err
	}
	s.stopped = cs
	start := time.Now()
	if err := f.Stop(ctx, cs); err != nil {
		return "", err
	}
	return fmt.Sprintf("stopped %s (%s) in %.1fs", s.what, names(cs), time.Since(start).Seconds()), nil
}

func (s *stopAll) Heal(ctx context.Context, f *Fleet) (string, error) {
	if len(s.stopped) == 0 {
		return "nothing to heal", nil
	}
	if err := f.Start(ctx, s.stopped); err != nil {
		return "", err
	}
	return fmt.Sprintf("started %s (%s)", s.what, names(s.stopped)), nil
}

// killEvery kills every running container of a service, waits until the
// restart policy has brought them all back, and repeats.
type killEvery struct {
	what     string
	service  matcher
	times    int
	interval time.Duration // between one return and the next kill
	victims  map[string]Container
}

func (k *killEvery) Inject(ctx context.Context, f *Fleet) (string, error) {
	k.victims = map[string]Container{}
	var rounds []string
	for i := range k.times {
		if i > 0 {
			if err := sleep(ctx, k.interval); err != nil {
				return strings.Join(rounds, "; "), err
			}
		}
		cs, err := f.running(ctx, k.service)
		if err != nil {
			return strings.Join(rounds, "; "), err
		}
		start := time.Now()
		for _, c := range cs {
			k.victims[c.ID] = c
			if _, err := f.Kill(ctx, c); err != nil {
				return strings.Join(rounds, "; "), err
			}
		}
		for _, c := range cs {
			if _, err := f.EnsureRunning(ctx, c, restartGrace); err != nil {
				return strings.Join(rounds, "; "), err
			}
		}
		rounds = append(rounds, fmt.Sprintf("killed %s (%s), all running again after %.1fs", k.what, names(cs), time.Since(start).Seconds()))
	}
	return strings.Join(rounds, "; "), nil
}

func (k *killEvery) Heal(ctx context.Context, f *Fleet) (string, error) {
	var msgs []string
	for _, c := range k.victims {
		msg, err := f.EnsureRunning(ctx, c, restartGrace)
		if err != nil {
			return "", err
		}
		msgs = append(msgs, msg)
	}
	return strings.Join(msgs, "; "), nil
}

// isolateRedisMaster drops every packet in and out of the Redis master's
// network namespace (but its loopback, which its healthcheck uses), from
// inside the namespace: the container keeps its name and address, it just
// stops being reachable, as a host behind a failed link would.
type isolateRedisMaster struct {
	victim *Container
}

// isolationRules are the iptables rules the isolation inserts and deletes.
var isolationRules = [][]string{
	{"INPUT", "!", "-i", "lo", "-j", "DROP"},
	{"OUTPUT", "!", "-o", "lo", "-j", "DROP"},
}

func (s *isolateRedisMaster) Inject(ctx context.Context, f *Fleet) (string, error) {
	c, err := f.RedisMaster(ctx)
	if err != nil {
		return "", err
	}
	c, err = f.Inspect(ctx, c)
	if err != nil {
		return "", err
	}
	if !ownsProcess(c.ID, c.Pid) {
		return "", fmt.Errorf("chaos: cannot enter the network namespace of %s (process %d is not visible from here; run as root on the Docker host)", c.Label(), c.Pid)
	}
	s.victim = &c
	for _, rule := range isolationRules {
		if err := inNetns(ctx, c.Pid, append([]string{"-I"}, rule...)...); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("isolated the Redis master, %s: iptables DROP of all but loopback inside its network namespace (process %d)", c.Label(), c.Pid), nil
}

func (s *isolateRedisMaster) Heal(ctx context.Context, f *Fleet) (string, error) {
	if s.victim == nil {
		return "nothing to heal", nil
	}
	now, err := f.Inspect(ctx, *s.victim)
	if err != nil {
		return "", err
	}
	if now.Pid != s.victim.Pid {
		// The container restarted: a new namespace, without the rules.
		return fmt.Sprintf("%s restarted meanwhile; its new network namespace has no rules", now.Label()), nil
	}
	for _, rule := range isolationRules {
		// Delete every copy, in case the rule went in twice.
		for range 5 {
			if inNetns(ctx, now.Pid, append([]string{"-D"}, rule...)...) != nil {
				break
			}
		}
	}
	return fmt.Sprintf("removed the DROP rules from %s's network namespace", now.Label()), nil
}

// inNetns runs iptables in the network namespace of process pid.
func inNetns(ctx context.Context, pid int, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	full := append([]string{"-t", strconv.Itoa(pid), "-n", "iptables", "-w", "5"}, args...)
	if out, err := exec.CommandContext(ctx, "nsenter", full...).CombinedOutput(); err != nil {
		return fmt.Errorf("nsenter %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// EnsureIptables makes sure nsenter and iptables are installed, installing
// iptables with apt-get when it is missing (as root), and says what it did.
func EnsureIptables(ctx context.Context) (string, error) {
	if _, err := exec.LookPath("nsenter"); err != nil {
		return "", errors.New("chaos: nsenter is missing (util-linux); install it: apt-get install -y util-linux")
	}
	if _, err := exec.LookPath("iptables"); err == nil {
		return "", nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("chaos: iptables is missing, and isolating the Redis master needs it: apt-get install -y iptables (as root)")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "iptables")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install iptables: %w: %s", err, lastLines(string(out), 3))
		}
		return nil
	}
	if err := install(); err != nil {
		if out, uerr := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("chaos: iptables is missing and could not be installed: %w; apt-get update: %s", err, lastLines(string(out), 3))
		}
		if err := install(); err != nil {
			return "", fmt.Errorf("chaos: iptables is missing and could not be installed: %w", err)
		}
	}
	return "iptables was missing: installed it with apt-get install -y iptables (needed to isolate the Redis master inside its network namespace)", nil
}

// scaleAPI scales the API replicas to a number under load and back, and
// reloads nginx after each change so that it balances over exactly the
// replicas that run.
type scaleAPI struct {
	to   int
	from int
}

func (s *scaleAPI) Inject(ctx context.Context, f *Fleet) (string, error) {
	cs, err := f.running(ctx, serviceAPI)
	if err != nil {
		return "", err
	}
	s.from = len(cs)
	start := time.Now()
	if err := s.scale(ctx, f, s.to); err != nil {
		return "", err
	}
	return fmt.Sprintf("scaled the API from %d to %d replicas and reloaded nginx in %.1fs", s.from, s.to, time.Since(start).Seconds()), nil
}

func (s *scaleAPI) Heal(ctx context.Context, f *Fleet) (string, error) {
	if s.from == 0 {
		return "nothing to heal", nil
	}
	start := time.Now()
	if err := s.scale(ctx, f, s.from); err != nil {
		return "", err
	}
	return fmt.Sprintf("scaled the API back to %d replicas and reloaded nginx in %.1fs", s.from, time.Since(start).Seconds()), nil
}

// scale runs compose up for the API service alone (no other service is
// started or recreated), waits for the new replicas' health, and reloads
// nginx.
func (s *scaleAPI) scale(ctx context.Context, f *Fleet, n int) error {
	if err := f.ComposeRun(ctx, 3*time.Minute, "up", "--detach", "--no-deps", "--no-recreate", "--scale", "api="+strconv.Itoa(n), "api"); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cs, err := f.Containers(ctx, serviceAPI)
		if err != nil {
			return err
		}
		ready := 0
		for _, c := range cs {
			if c.Ready() {
				ready++
			}
		}
		if ready >= n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: %d of %d API replicas healthy after 2m", ready, n)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return f.ReloadNginx(ctx)
}
