// Package httpapi is the REST API: the Gin router, the handlers of the
// original system's contract (PUT /, GET /?key=, DELETE /?key_name=), the
// health endpoints, and the middleware that identifies, measures and turns
// errors into responses.
package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Config holds what the router is built from.
type Config struct {
	KV           KV
	MaxBodyBytes int64
	// MaxInFlight bounds the client requests (GET, PUT, DELETE on /) this
	// replica works on at once; more are answered 503 overloaded at once,
	// with Retry-After, instead of queueing until every request times out.
	// Zero means no bound.
	MaxInFlight int
	// MaxInFlightBytes bounds the request bodies this replica holds at
	// once, counted as the client declares them (or as MaxBodyBytes when it
	// does not): a request that would take it over is answered 503
	// overloaded before its body is read. A body costs about three times its
	// size while it is decoded and published, so this keeps a replica's
	// memory bounded however large the bodies in flight are. Zero means no
	// bound.
	MaxInFlightBytes int64
	Cache            Pinger
	Store            Pinger
	Broker           Broker
	Readiness        *Readiness
	// HealthTimeout bounds each dependency check of /health.
	HealthTimeout time.Duration
	// ServedBy is sent as X-Served-By so that a client (and the e2e tests)
	// can see which replica answered.
	ServedBy   string
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// New returns the API's HTTP handler.
func New(cfg Config) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// Keys are in the query string; the path is always "/". Cleaning or
	// redirecting paths would only hide client mistakes.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false

	r.Use(
		closeWhileDraining(cfg.Readiness),
		requestIDs(cfg.ServedBy),
		measure(cfg.Registerer),
		recoverPanics(cfg.Logger),
		handleErrors(cfg.Logger),
	)
	r.NoMethod(handle(func(*gin.Context) error { return errMethodNotAllowed }))
	r.NoRoute(handle(func(*gin.Context) error { return errNoRoute }))

	h := &handlers{kv: cfg.KV, maxBodyBytes: cfg.MaxBodyBytes}
	limit := limitInFlight(cfg.MaxInFlight, cfg.MaxInFlightBytes, cfg.MaxBodyBytes, cfg.Registerer)
	r.GET("/", limit, handle(h.get))
	r.PUT("/", limit, handle(h.put))
	r.DELETE("/", limit, handle(h.delete))

	hc := &health{cache: cfg.Cache, store: cfg.Store, broker: cfg.Broker,
		readiness: cfg.Readiness, timeout: cfg.HealthTimeout, now: cfg.Now}
	r.GET("/health", hc.check)
	r.GET("/healthz", live)
	r.GET("/readyz", hc.ready)
	return restoreWriteMethod(r)
}

// WriteMethodHeader carries the real method of a write that the fleet's
// nginx forwards as a POST. Nginx never replays a POST that a replica has
// received, while it does replay PUT and DELETE, and a replayed write would
// be published twice. Nginx clears the header on everything else, so
// clients cannot use it.
const WriteMethodHeader = "X-Kvfleet-Write-Method"

// restoreWriteMethod turns such a POST back into its PUT or DELETE before
// routing. A POST without the header stays a POST (405).
func restoreWriteMethod(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			switch m := r.Header.Get(WriteMethodHeader); m {
			case http.MethodPut, http.MethodDelete:
				r.Method = m
			}
		}
		next.ServeHTTP(w, r)
	})
}

// closeWhileDraining asks the client to close its connection after each
// response while the replica is not ready (draining before a stop). Nginx
// then drops its pooled keep-alive connections to this replica one by one
// as they carry their last request, instead of finding them closed under
// it when the server shuts down, which for a write it may not resend would
// be a 502.
func closeWhileDraining(readiness *Readiness) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !readiness.Ready() {
			c.Header("Connection", "close")
		}
		c.Next()
	}
}

const requestIDKey = "request_id"

// requestIDs takes the request id from X-Request-ID (set by nginx in the
// fleet) or makes one, and echoes it, with the replica's name, in the
// response.
func requestIDs(servedBy string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-ID")
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Set(requestIDKey, id)
		c.Header("X-Request-ID", id)
		if servedBy != "" {
			c.Header("X-Served-By", servedBy)
		}
		c.Next()
	}
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// validRequestID accepts ids that are safe to log and echo: short and
// printable ASCII.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// measure counts requests and their latency by route template, method and
// status code; keys never become labels.
func measure(reg prometheus.Registerer) gin.HandlerFunc {
	f := promauto.With(reg)
	requests := f.NewCounterVec(prometheus.CounterOpts{
		Name: "kvfleet_http_requests_total",
		Help: "HTTP requests by route, method and status code.",
	}, []string{"route", "method", "code"})
	duration := f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kvfleet_http_request_duration_seconds",
		Help:    "HTTP request latency by route and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method"})
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		method := c.Request.Method
		switch method {
		case http.MethodGet, http.MethodPut, http.MethodDelete:
		default:
			method = "other" // bounded label set whatever clients send
		}
		requests.WithLabelValues(route, method, strconv.Itoa(c.Writer.Status())).Inc()
		duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}
}

// errOverloaded sheds a request beyond the in-flight limit.
var errOverloaded = &httpError{status: http.StatusServiceUnavailable, code: "overloaded",
	msg: "this replica is at its limit of requests in flight; retry later"}

// limitInFlight admits at most max client requests and maxBytes of request
// bodies at once and sheds the rest with errOverloaded; it exports both, a
// load signal for the scaler. A body is weighed before it is read, by its
// declared length; one sent without a length weighs the most it may be
// (maxBody), and one declared over maxBody weighs nothing, since it is
// refused unread.
func limitInFlight(max int, maxBytes, maxBody int64, reg prometheus.Registerer) gin.HandlerFunc {
	f := promauto.With(reg)
	inFlight := f.NewGauge(prometheus.GaugeOpts{
		Name: "kvfleet_http_in_flight",
		Help: "Client requests this replica is working on.",
	})
	inFlightBytes := f.NewGauge(prometheus.GaugeOpts{
		Name: "kvfleet_http_in_flight_bytes",
		Help: "Request body bytes admitted and not yet released, by declared length.",
	})
	var slots chan struct{}
	if max > 0 {
		slots = make(chan struct{}, max)
	}
	budget := &byteBudget{limit: maxBytes}
	return func(c *gin.Context) {
		if slots != nil {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			default:
				_ = c.Error(errOverloaded)
				c.Abort()
				return
			}
		}
		weight := bodyWeight(c.Request, maxBody)
		if !budget.take(weight) {
			_ = c.Error(errOverloaded)
			c.Abort()
			return
		}
		defer budget.give(weight)
		inFlight.Inc()
		defer inFlight.Dec()
		inFlightBytes.Add(float64(weight))
		defer inFlightBytes.Sub(float64(weight))
		c.Next()
	}
}

// bodyWeight is what a request's body counts against the byte budget.
func bodyWeight(r *http.Request, maxBody int64) int64 {
	switch {
	case r.Body == nil || r.Body == http.NoBody:
		return 0
	case r.ContentLength < 0:
		return maxBody
	case r.ContentLength > maxBody:
		return 0
	}
	return r.ContentLength
}

// byteBudget admits weights while their sum stays within limit (no limit
// when it is zero). It never waits: a request that does not fit is shed.
type byteBudget struct {
	limit int64
	used  atomic.Int64
}

func (b *byteBudget) take(n int64) bool {
	if b.limit <= 0 || n == 0 {
		return true
	}
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *byteBudget) give(n int64) {
	if b.limit > 0 && n > 0 {
		b.used.Add(-n)
	}
}

// recoverPanics turns a panic into a generic 500 so that one bad request
// cannot take the replica down; it is a bug, so it is logged loudly.
func recoverPanics(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic while handling request", "request_id", requestID(c), "panic", p)
				c.AbortWithStatusJSON(http.StatusInternalServerError,
					errorBody{Detail: "internal error", Code: "internal"})
			}
		}()
		c.Next()
	}
}
