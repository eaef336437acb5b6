package refsystem

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kvfleet/kvfleet/internal/bench"
	"github.com/kvfleet/kvfleet/internal/localserver"
)

// Options configure a run.
type Options struct {
	Quick      bool
	Conns      int           // closed-loop connections (the benchmark's 64)
	Duration   time.Duration // of each measured phase
	Warmup     time.Duration
	Keys       int // keys read and written
	ValueBytes int // the benchmark's 64
	TempDir    string
}

// Defaults returns the options of a quick or a full run.
func Defaults(quick bool) Options {
	o := Options{Quick: quick, Conns: 64, Duration: 20 * time.Second, Warmup: 3 * time.Second, Keys: 1000, ValueBytes: 64}
	if quick {
		o.Duration, o.Warmup = 6*time.Second, time.Second
	}
	return o
}

// Run measures every reference system it finds installed; one that is
// missing or fails is recorded with its error and the others still run.
func Run(ctx context.Context, o Options, log *slog.Logger) *Result {
	r := &Result{Schema: Schema, Started: time.Now().UTC().Truncate(time.Second), Mode: map[bool]string{true: "quick", false: "full"}[o.Quick]}
	r.Method = []string{
		fmt.Sprintf("each operation: the benchmark's closed loop (internal/bench), %d connections, %v warm-up, %v measured, over %d keys with %d-byte values, from this machine's loopback", o.Conns, o.Warmup, o.Duration, o.Keys, o.ValueBytes),
		"etcd: Debian's etcd-server, one member, a fresh data directory, started for the run on 127.0.0.1 and stopped after it; put and range through its v3 JSON gateway (POST /v3/kv/put and /v3/kv/range, base64 keys) over HTTP/1.1 keep-alive",
		"redis: Debian's redis-server, no persistence (save \"\", appendonly no), started for the run on 127.0.0.1 and stopped after it; SET and GET with go-redis, a pool of as many connections",
		"the keys read are written first; each read must find its key",
	}
	for _, sys := range []struct {
		name string
		run  func(context.Context, Options, *slog.Logger) System
	}{{"etcd", runEtcd}, {"redis", runRedis}} {
		if ctx.Err() != nil {
			break
		}
		log.Info("reference system", "name", sys.name)
		r.Systems = append(r.Systems, sys.run(ctx, o, log))
	}
	r.Finished = time.Now().UTC().Truncate(time.Second)
	return r
}

// measure runs one closed-loop phase of do and accounts the host's and
// the server's CPU.
func measure(ctx context.Context, o Options, name, kind string, s *server, do bench.Do) Op {
	acct := bench.NewAccounting("/sys/fs/cgroup", "/proc", runtime.NumCPU())
	before, cpu0 := acct.Snapshot(nil), s.cpu()
	l := bench.ClosedLoop{Conns: o.Conns, Warmup: o.Warmup, Duration: o.Duration, MaxRequests: uint64(50_000 * o.Duration.Seconds())}
	rec, elapsed := l.Run(ctx, do)
	after, cpu1 := acct.Snapshot(nil), s.cpu()
	all, _ := rec.Stats(elapsed)
	p := bench.Phase{Name: s.name + " " + name, Loop: "closed", Connections: o.Conns, Seconds: math.Round(elapsed.Seconds()*10) / 10, OpResult: all,
		CPU: bench.Window(before, after, nil, runtime.NumCPU())}
	// The snapshots bracket the warm-up too; the server's share is over
	// the same span.
	span := after.At.Sub(before.At).Seconds()
	op := Op{Name: name, Kind: kind, Phase: p}
	if span > 0 {
		op.ServerCores = math.Round(float64((cpu1-cpu0).Microseconds())/1e3/span) / 1e3
	}
	return op
}

// seed writes every key once through do, and fails unless all succeeded.
func seed(ctx context.Context, keys int, do bench.Do) error {
	rec, el := bench.ClosedLoop{Conns: 16, Duration: time.Minute, MaxRequests: uint64(keys)}.Run(ctx, do)
	if all, _ := rec.Stats(el); all.OK < uint64(keys) {
		return fmt.Errorf("seeding: %d of %d writes failed", all.Errors, keys)
	}
	return nil
}

func value(seq uint64, size int) string {
	v := "ref:" + strconv.FormatUint(seq, 10) + ":"
	if pad := size - len(v); pad > 0 {
		v += strings.Repeat(".", pad)
	}
	return v
}

// runEtcd starts one etcd member, measures put and range, and stops it.
func runEtcd(ctx context.Context, o Options, log *slog.Logger) (sys System) {
	sys.Name = "etcd"
	bin, err := localserver.FindBinary("etcd")
	if err != nil {
		sys.Error = "etcd is not installed (Debian package etcd-server; scripts/report.sh installs it)"
		return sys
	}
	sys.Version = versionOf(ctx, bin, "--version")
	dir, err := os.MkdirTemp(o.TempDir, "kvfleet-ref-etcd-")
	if err != nil {
		sys.Error = err.Error()
		return sys
	}
	defer os.RemoveAll(dir)
	ports, err := freePorts(2)
	if err != nil {
		sys.Error = err.Error()
		return sys
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	s, err := start("etcd", bin, dir, "--name", "ref", "--data-dir", dir+"/data",
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "ref="+peer, "--initial-cluster-state", "new",
		"--log-level", "error", "--logger", "zap")
	if err != nil {
		sys.Error = err.Error()
		return sys
	}
	defer func() {
		if err := s.stop(10 * time.Second); err != nil {
			sys.Error = strings.TrimPrefix(sys.Error+"; "+err.Error(), "; ")
		}
	}()
	hc := httpClient(o.Conns)
	defer hc.CloseIdleConnections()
	if err := s.waitReady(ctx, 30*time.Second, func(ctx context.Context) error { return etcdCall(ctx, hc, client+"/health", nil) }); err != nil {
		sys.Error = err.Error()
		return sys
	}
	log.Info("etcd ready", "url", client, "pid", s.cmd.Process.Pid)
	key := func(i int) string { return base64.StdEncoding.EncodeToString([]byte("ref/" + strconv.Itoa(i))) }
	put := func(k func(uint64) int) bench.Do {
		return func(ctx context.Context, seq uint64) bench.Sample {
			body, _ := json.Marshal(map[string]string{"key": key(k(seq)), "value": base64.StdEncoding.EncodeToString([]byte(value(seq, o.ValueBytes)))})
			return sample("PUT", etcdCall(ctx, hc, client+"/v3/kv/put", body))
		}
	}
	if err := seed(ctx, o.Keys, put(func(seq uint64) int { return int(seq - 1) })); err != nil {
		sys.Error = "etcd " + err.Error()
		return sys
	}
	sys.Ops = append(sys.Ops, measure(ctx, o, "put", "write", s, put(func(uint64) int { return mrand.IntN(o.Keys) })))
	rangeDo := func(ctx context.Context, _ uint64) bench.Sample {
		body, _ := json.Marshal(map[string]string{"key": key(mrand.IntN(o.Keys))})
		return sample("GET", etcdRange(ctx, hc, client+"/v3/kv/range", body))
	}
	sys.Ops = append(sys.Ops, measure(ctx, o, "range", "read", s, rangeDo))
	return sys
}

func httpClient(conns int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
	}}
}

// etcdCall POSTs body (GET when nil) and wants a 200.
func etcdCall(ctx context.Context, hc *http.Client, url string, body []byte) error {
	_, err := etcdDo(ctx, hc, url, body)
	return err
}

// etcdRange wants the range to find its key.
func etcdRange(ctx context.Context, hc *http.Client, url string, body []byte) error {
	raw, err := etcdDo(ctx, hc, url, body)
	if err != nil {
		return err
	}
	var res struct {
		Count string `json:"count"`
	}
	if json.Unmarshal(raw, &res) != nil || res.Count != "1" {
		return fmt.Errorf("not_found")
	}
	return nil
}

func etcdDo(ctx context.Context, hc *http.Client, url string, body []byte) ([]byte, error) {
	method := http.MethodGet
	if body != nil {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("http_%d", resp.StatusCode)
	}
	return raw, nil
}

// sample turns an error into the benchmark's error class.
func sample(op string, err error) bench.Sample {
	s := bench.Sample{Op: op}
	switch {
	case err == nil:
	case strings.HasPrefix(err.Error(), "http_"), err.Error() == "not_found":
		s.Err = err.Error()
	case strings.Contains(err.Error(), "deadline exceeded"), strings.Contains(err.Error(), "timeout"):
		s.Err = "timeout"
	default:
		s.Err = "transport"
	}
	return s
}

// runRedis starts one redis-server, measures SET and GET, and stops it.
func runRedis(ctx context.Context, o Options, log *slog.Logger) (sys System) {
	sys.Name = "redis"
	bin, err := localserver.FindBinary("redis-server")
	if err != nil {
		sys.Error = "redis-server is not installed (Debian package redis-server)"
		return sys
	}
	sys.Version = versionOf(ctx, bin, "--version")
	dir, err := os.MkdirTemp(o.TempDir, "kvfleet-ref-redis-")
	if err != nil {
		sys.Error = err.Error()
		return sys
	}
	defer os.RemoveAll(dir)
	ports, err := freePorts(1)
	if err != nil {
		sys.Error = err.Error()
		return sys
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	s, err := start("redis", bin, dir, "--port", strconv.Itoa(ports[0]), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes")
	if err != nil {
		sys.Error = err.Error()
		return sys
	}
	defer func() {
		if err := s.stop(10 * time.Second); err != nil {
			sys.Error = strings.TrimPrefix(sys.Error+"; "+err.Error(), "; ")
		}
	}()
	rc := redis.NewClient(&redis.Options{Addr: addr, PoolSize: o.Conns,
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	defer rc.Close()
	if err := s.waitReady(ctx, 30*time.Second, func(ctx context.Context) error { return rc.Ping(ctx).Err() }); err != nil {
		sys.Error = err.Error()
		return sys
	}
	log.Info("redis ready", "addr", addr, "pid", s.cmd.Process.Pid)
	set := func(k func(uint64) int) bench.Do {
		return func(ctx context.Context, seq uint64) bench.Sample {
			return sample("PUT", rc.Set(ctx, "ref/"+strconv.Itoa(k(seq)), value(seq, o.ValueBytes), 0).Err())
		}
	}
	if err := seed(ctx, o.Keys, set(func(seq uint64) int { return int(seq - 1) })); err != nil {
		sys.Error = "redis " + err.Error()
		return sys
	}
	sys.Ops = append(sys.Ops, measure(ctx, o, "set", "write", s, set(func(uint64) int { return mrand.IntN(o.Keys) })))
	get := func(ctx context.Context, _ uint64) bench.Sample {
		err := rc.Get(ctx, "ref/"+strconv.Itoa(mrand.IntN(o.Keys))).Err()
		if err == redis.Nil {
			err = fmt.Errorf("not_found")
		}
		return sample("GET", err)
	}
	sys.Ops = append(sys.Ops, measure(ctx, o, "get", "read", s, get))
	return sys
}
