package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The containers the benchmark starts, all removed by id at the end:
//
//	bench-ref      the reference server (cmd/kvfleet-refserver): one Gin
//	               handler doing one go-redis GET through the fleet's
//	               Sentinels, on the back and front networks like an API
//	               replica
//	bench-nginx    nginx with the read path of the fleet's configuration
//	               (keep-alive upstream, HTTP/1.1, no access log), on the
//	               front network, published on an ephemeral 127.0.0.1 port
//	               through the same Docker proxy as the fleet's port
//	bench-broker   the broker ceiling, bench-backlog the backlog test,
//	               bench-watch the write queue's depth, bench-pprof a
//	               profile download: this program on the back network
//
// Secrets reach them as "-e NAME", valued from the Docker CLI's
// environment, never on a command line.
const (
	envAMQP             = "KVFLEET_BENCH_AMQP_URLS"
	envRedisPassword    = "KVFLEET_REDIS_PASSWORD"
	envSentinelPassword = "KVFLEET_REDIS_SENTINEL_PASSWORD"
	// RefKeyPrefix is where the reference server keeps its keys in the
	// fleet's Redis; they expire by themselves.
	RefKeyPrefix = "kvfleet-bench:ref:"
)

// amqpURLs builds the application user's URLs of the three broker nodes.
func amqpURLs(password string) string {
	var urls []string
	for i := 1; i <= 3; i++ {
		u := url.URL{Scheme: "amqp", User: url.UserPassword("kvfleet", password), Host: "rabbitmq-" + strconv.Itoa(i) + ":5672", Path: "/"}
		urls = append(urls, u.String())
	}
	return strings.Join(urls, ",")
}

// helperArgs are the docker run arguments that run this program on the
// fleet's back network with args.
func (b *runner) helperArgs(extra []string, args ...string) []string {
	out := []string{"--network", b.o.Project + "_back", "--memory", "256m",
		"-v", b.o.BenchBinary + ":/kvfleet-bench:ro", "--entrypoint", "/kvfleet-bench", "-e", envAMQP}
	out = append(out, extra...)
	out = append(out, b.o.AppImage)
	return append(out, args...)
}

// startReference starts the reference server and its nginx, waits until
// a seeded key reads back through the published port, and returns that
// port's base URL.
func (b *runner) startReference(ctx context.Context) (string, error) {
	ref := "kvfleet-bench-ref-" + b.runID
	refID, err := b.docker.Run(ctx, "ref", "--name", ref, "--network", b.o.Project+"_back", "--memory", "256m",
		"-e", "GOMEMLIMIT=200MiB", "-e", envRedisPassword, "-e", envSentinelPassword,
		"-v", b.o.RefBinary+":/kvfleet-refserver:ro", "--entrypoint", "/kvfleet-refserver", b.o.AppImage,
		"-keys", strconv.Itoa(b.o.Keys), "-value-bytes", strconv.Itoa(b.o.ValueBytes), "-prefix", RefKeyPrefix, "-key-base", getKeyBase)
	if err != nil {
		return "", fmt.Errorf("reference server: %w", err)
	}
	b.refIDs = append(b.refIDs, refID)
	if err := b.docker.ConnectNetwork(ctx, b.o.Project+"_front", ref); err != nil {
		return "", fmt.Errorf("reference server: %w", err)
	}
	dir, err := os.MkdirTemp("", "kvfleet-bench-nginx-")
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	b.tempDirs = append(b.tempDirs, dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(refNginxConfig(ref+":8000")), 0o644); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	nginx, err := b.docker.Run(ctx, "nginx", "--name", "kvfleet-bench-nginx-"+b.runID, "--network", b.o.Project+"_front",
		"--memory", "128m", "-p", "127.0.0.1::80", "-v", dir+":/etc/kvfleet-bench:ro", "--entrypoint", "nginx",
		b.nginxImage, "-c", "/etc/kvfleet-bench/nginx.conf", "-g", "daemon off;")
	if err != nil {
		return "", fmt.Errorf("reference nginx: %w", err)
	}
	b.refIDs = append(b.refIDs, nginx)
	port, err := b.docker.HostPort(ctx, nginx, "80/tcp")
	if err != nil {
		return "", fmt.Errorf("reference nginx: %w", err)
	}
	b.acct.WatchProxy(port)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	c, err := NewClient(base, 1, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		a := c.Get(ctx, getKeyBase+"0")
		if a.Status == 200 {
			return base, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("reference: no answer through %s after 60s (last: %s)", base, a.Class(200, false))
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// refNginxConfig is the fleet's nginx read path (nginx/nginx.conf,
// nginx/proxy.conf) in front of one upstream, without the write hop and
// the error pages, which a read that succeeds never touches.
func refNginxConfig(upstream string) string {
	return `# kvfleet-bench: the reference path, same settings as the fleet's reads.
worker_processes 2;
worker_rlimit_nofile 8192;
pid /tmp/nginx.pid;
error_log /dev/stderr warn;
events {
    worker_connections 2048;
}
http {
    access_log off;
    server_tokens off;
    default_type application/json;
    client_body_temp_path /tmp/nginx-client-body;
    proxy_temp_path /tmp/nginx-proxy;
    fastcgi_temp_path /tmp/nginx-fastcgi;
    uwsgi_temp_path /tmp/nginx-uwsgi;
    scgi_temp_path /tmp/nginx-scgi;
    map $http_x_request_id $kvfleet_request_id {
        default $http_x_request_id;
        ""      $request_id;
    }
    upstream ref {
        server ` + upstream + ` max_fails=3 fail_timeout=10s;
        keepalive 64;
        keepalive_timeout 60s;
    }
    server {
        listen 80;
        location / {
            proxy_pass http://ref;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Request-ID $kvfleet_request_id;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            proxy_send_timeout 10s;
            proxy_read_timeout 10s;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
        }
    }
}
`
}

// runBrokerCeiling runs the broker ceiling in a container.
func (b *runner) runBrokerCeiling(ctx context.Context) (*BrokerResult, error) {
	q := BenchQueuePrefix + b.runID
	cs := b.containers(ctx)
	before := b.acct.Snapshot(cs)
	out, err := b.docker.RunToEnd(ctx, "broker", 10*time.Minute, b.helperArgs(nil, "broker",
		"-queue", q, "-messages", strconv.Itoa(b.o.BrokerMessages), "-body-bytes", strconv.Itoa(b.envelopeBytes()))...)
	if err != nil {
		return nil, err
	}
	var res BrokerResult
	if err := json.Unmarshal([]byte(lastLine(out)), &res); err != nil {
		return nil, fmt.Errorf("broker: unexpected output %q: %w", lastLine(out), err)
	}
	// The helper container came and went within the window: its CPU is
	// the host's less everything accounted (Other).
	res.CPU = Window(before, b.acct.Snapshot(cs), cs, b.acct.cores)
	return &res, nil
}

// envelopeBytes approximates the size of the API's message for a value of
// the configured size, so that the broker ceiling moves the same bytes.
func (b *runner) envelopeBytes() int {
	return b.o.ValueBytes + 130
}

// runBacklog runs the backlog test in a container. The fleet's consumers
// are paused while it publishes and let go once the whole backlog is in the
// queue, so that the drain it times is the consumers catching up on all of
// it; without consumers to pause (or when pausing fails) the test runs with
// them working, and the drain is the rate at which they kept pace.
func (b *runner) runBacklog(ctx context.Context) (*BacklogResult, error) {
	args := []string{"backlog", "-messages", strconv.Itoa(b.o.BacklogMessages), "-value-bytes", strconv.Itoa(b.o.ValueBytes), "-poll", "50ms"}
	var consumers []string
	for _, c := range b.fleet {
		if c.Service == "consumer" {
			consumers = append(consumers, c.ID)
		}
	}
	held := len(consumers) > 0
	if held {
		if err := b.docker.Pause(ctx, consumers); err != nil {
			b.note("backlog: could not pause the consumers (%v); the drain is measured with them working", err)
			held = false
		}
	} else {
		b.note("backlog: no consumer container to pause; the drain is measured with the consumers working")
	}
	if !held {
		out, err := b.docker.RunToEnd(ctx, "backlog", 20*time.Minute, b.helperArgs(nil, args...)...)
		if err != nil {
			return nil, err
		}
		return parseBacklog(out)
	}

	released := false
	release := func() {
		if released {
			return
		}
		released = true
		if err := b.docker.Unpause(ctx, consumers); err != nil {
			b.note("backlog: unpause the consumers: %v", err)
		}
	}
	defer release()
	id, err := b.docker.Run(ctx, "backlog", b.helperArgs(nil, append(args, "-held")...)...)
	if err != nil {
		return nil, err
	}
	if err := b.docker.Follow(ctx, id, func(line string) {
		if strings.TrimSpace(line) == PublishedLine {
			release()
		}
	}); err != nil {
		b.note("backlog: follow the helper: %v", err)
	}
	release() // the helper ended (or its output was lost): never keep them paused
	out, err := b.docker.Finish(ctx, "backlog", id, 20*time.Minute)
	if err != nil {
		return nil, err
	}
	return parseBacklog(out)
}

// parseBacklog reads the backlog helper's result, its last line.
func parseBacklog(out string) (*BacklogResult, error) {
	var res BacklogResult
	if err := json.Unmarshal([]byte(lastLine(out)), &res); err != nil {
		return nil, fmt.Errorf("backlog: unexpected output %q: %w", lastLine(out), err)
	}
	return &res, nil
}

// startProfile starts downloading a CPU profile of seconds from the ops
// port of a container of service; wait for it with the returned function.
func (b *runner) startProfile(ctx context.Context, service, name string, seconds int) func() {
	if b.o.PprofDir == "" || seconds < 1 {
		return func() {}
	}
	var target *Container
	for _, c := range b.fleet {
		if c.Service == service {
			target = &c
			break
		}
	}
	if target == nil {
		b.note("no %s container to profile", service)
		return func() {}
	}
	ip, err := b.docker.AddressOn(ctx, target.ID, b.o.Project+"_back")
	if err != nil {
		b.note("profile %s: %v", name, err)
		return func() {}
	}
	dir, err := filepath.Abs(b.o.PprofDir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		b.note("profile %s: %v", name, err)
		return func() {}
	}
	file := name + ".pprof"
	u := fmt.Sprintf("http://%s:9100/debug/pprof/profile?seconds=%d", ip, seconds)
	id, err := b.docker.Run(ctx, "pprof", b.helperArgs([]string{"--user", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		"-v", dir + ":/out"}, "fetch", "-url", u, "-out", "/out/"+file, "-timeout", strconv.Itoa(seconds+30)+"s")...)
	if err != nil {
		b.note("profile %s: %v", name, err)
		return func() {}
	}
	return func() {
		code, err := b.docker.Wait(ctx, id, time.Duration(seconds+60)*time.Second)
		if err != nil || code != 0 {
			_, stderr, _ := b.docker.Logs(ctx, id)
			b.note("profile %s failed (exit %d, %v): %s", name, code, err, strings.TrimSpace(lastLine(stderr)))
			return
		}
		b.result.Profiles = append(b.result.Profiles, filepath.Join(b.o.PprofDir, file))
	}
}
