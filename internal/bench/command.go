package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// IsHelper reports whether name is one of the commands that run inside a
// helper container (or, for idle, on the host without load).
func IsHelper(name string) bool {
	switch name {
	case "broker", "backlog", "watch", "fetch", "idle":
		return true
	}
	return false
}

// Helper runs the helper command name with its arguments; results go to
// out as one JSON line (broker, backlog), depth lines (watch), a file
// (fetch) or a short report (idle).
func Helper(ctx context.Context, name string, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("kvfleet-bench "+name, flag.ContinueOnError)
	urls := strings.Split(getenv(envAMQP), ",")
	needBroker := func() error {
		if getenv(envAMQP) == "" {
			return fmt.Errorf("%s: %s is not set", name, envAMQP)
		}
		return nil
	}
	switch name {
	case "broker":
		o := BrokerOptions{URLs: urls}
		fs.StringVar(&o.Queue, "queue", BenchQueuePrefix+"ceiling", "queue to declare, use and delete (kvfleet.bench.*)")
		fs.IntVar(&o.Messages, "messages", 20000, "messages to publish and drain")
		fs.IntVar(&o.BodyBytes, "body-bytes", 200, "size of each message")
		fs.IntVar(&o.Channels, "channels", 4, "publishing channels")
		fs.IntVar(&o.Window, "window", 256, "unconfirmed messages per channel")
		fs.IntVar(&o.Consumers, "consumers", 2, "draining consumers")
		fs.IntVar(&o.Prefetch, "prefetch", 256, "prefetch per consumer")
		fs.IntVar(&o.AckEvery, "ack-every", 128, "acknowledge this many at once")
		timeout := fs.Duration("timeout", 5*time.Minute, "bound on the whole measurement")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if err := needBroker(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		res, err := RunBroker(ctx, o)
		if err != nil {
			return err
		}
		return json.NewEncoder(out).Encode(res)
	case "backlog":
		o := BacklogOptions{URLs: urls}
		fs.StringVar(&o.Queue, "queue", WriteQueue, "the fleet's write queue")
		fs.IntVar(&o.Messages, "messages", 20000, "writes to publish")
		fs.IntVar(&o.ValueBytes, "value-bytes", 64, "size of each value")
		fs.StringVar(&o.KeyPrefix, "key-prefix", drainKeyBase, "keys are this prefix and a number")
		fs.IntVar(&o.Channels, "channels", 4, "publishing channels")
		fs.IntVar(&o.Window, "window", 256, "unconfirmed messages per channel")
		fs.DurationVar(&o.Poll, "poll", 100*time.Millisecond, "how often the depth is read")
		fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long the consumers may take to empty the queue")
		fs.BoolVar(&o.Held, "held", false, "the consumers are paused while publishing: announce the end of it on standard output (\""+PublishedLine+"\"), then time the drain from when the depth starts to fall")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if err := needBroker(); err != nil {
			return err
		}
		o.Announce = out
		res, err := RunBacklog(ctx, o)
		if err != nil {
			return err
		}
		return json.NewEncoder(out).Encode(res)
	case "watch":
		q := fs.String("queue", WriteQueue, "queue whose ready messages are read")
		every := fs.Duration("every", watchInterval, "interval")
		limit := fs.Duration("for", 10*time.Minute, "stop after this long")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if err := needBroker(); err != nil {
			return err
		}
		return RunWatch(ctx, urls, *q, *every, *limit, out)
	case "fetch":
		u := fs.String("url", "", "what to download (an ops port's /debug/pprof/...)")
		path := fs.String("out", "", "file to write")
		timeout := fs.Duration("timeout", time.Minute, "bound on the download")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return fetch(ctx, *u, *path, *timeout)
	case "idle":
		project := fs.String("project", "kvfleet", "Compose project of the fleet")
		d := fs.Duration("for", time.Minute, "how long to measure")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return idleReport(ctx, *project, *d, out)
	}
	return fmt.Errorf("unknown command %q", name)
}

// fetch downloads u into path.
func fetch(ctx context.Context, u, path string, timeout time.Duration) error {
	if u == "" || path == "" {
		return fmt.Errorf("fetch: -url and -out are required")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch: %s answered %s", u, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("fetch: %w", err)
	}
	return f.Close()
}

// idleReport measures the CPU of a project's containers over d and prints
// it.
func idleReport(ctx context.Context, project string, d time.Duration, out io.Writer) error {
	docker := NewDocker("idle", nil)
	cs, err := docker.ProjectContainers(ctx, project)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		return fmt.Errorf("idle: project %q has no running containers", project)
	}
	cores := describeMachine(ctx, docker).Cores
	acct := NewAccounting("/sys/fs/cgroup", "/proc", cores)
	s1 := acct.Snapshot(cs)
	if err := sleep(ctx, d); err != nil {
		return err
	}
	w := Window(s1, acct.Snapshot(cs), cs, cores)
	fmt.Fprintf(out, "idle CPU of project %s over %.0f s: %.1f%% of one core (%d containers); host %.2f of %d cores\n",
		project, w.Seconds, w.Fleet*100, len(cs), w.HostBusy, w.Cores)
	fmt.Fprintf(out, "by service (cores): %s\n", topServices(&CPUWindow{ByService: w.ByService}, len(w.ByService)))
	return nil
}
