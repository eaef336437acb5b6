// Package telemetry builds what every binary uses to be observed: the JSON
// logger, the Prometheus registry, and the operations server that serves
// metrics, liveness, readiness and pprof on a port of its own.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger returns a JSON logger tagged with the service name.
func NewLogger(w io.Writer, level slog.Level, service string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})).With("service", service)
}

// NewRegistry returns a registry with the Go runtime and process collectors,
// which the autoscaler and dashboards read for CPU and memory.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// ReadyFunc reports whether the process should receive work.
type ReadyFunc func() bool

// NewOpsServer returns the operations server: /metrics, /healthz (the
// process answers), /readyz (ready reports true) and /debug/pprof/, on its
// own mux so that nothing registered on http.DefaultServeMux leaks out.
func NewOpsServer(addr string, reg *prometheus.Registry, ready ReadyFunc) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			writeStatus(w, http.StatusServiceUnavailable, "not ready")
			return
		}
		writeStatus(w, http.StatusOK, "ready")
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}

func writeStatus(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"status\":%q}\n", status)
}

// Listen binds the servers' addresses now, so that a port conflict fails
// start-up instead of surfacing later in a goroutine. On error it closes
// the listeners it opened. An address of the form "@host:port" binds port
// on the local address through which host is reached (see LocalAddrToward).
func Listen(servers ...*http.Server) ([]net.Listener, error) {
	lns := make([]net.Listener, 0, len(servers))
	fail := func(err error) ([]net.Listener, error) {
		for _, open := range lns {
			_ = open.Close()
		}
		return nil, err
	}
	for _, srv := range servers {
		addr, err := LocalAddrToward(srv.Addr)
		if err != nil {
			return fail(err)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(fmt.Errorf("listen on %s: %w", srv.Addr, err))
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// LocalAddrToward resolves "@host:port" to "ip:port", where ip is this
// machine's address on the route to host; any other address is returned as
// it is. In the fleet the API sits on two networks, and its operations port
// (metrics, pprof) should be reachable from the back network only:
// "@db-proxy:9100" binds it to the interface that faces the database's
// proxy. Connecting a UDP socket sends nothing; it only picks the route.
func LocalAddrToward(addr string) (string, error) {
	if !strings.HasPrefix(addr, "@") {
		return addr, nil
	}
	host, port, err := net.SplitHostPort(addr[1:])
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	conn, err := net.Dial("udp", net.JoinHostPort(host, "9"))
	if err != nil {
		return "", fmt.Errorf("address %q: find the local address toward %s: %w", addr, host, err)
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.UDPAddr)
	return net.JoinHostPort(local.IP.String(), port), nil
}

// Serve runs srv on ln until ctx ends, then shuts it down gracefully within
// timeout.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", srv.Addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	if err != nil {
		return fmt.Errorf("shut down %s: %w", srv.Addr, err)
	}
	return nil
}

// Healthcheck is the binaries' "healthcheck" mode, used by container
// healthchecks so that images need no curl: it asks url and reports
// whether the answer was 200.
func Healthcheck(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
