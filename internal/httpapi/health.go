package httpapi

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// Pinger is a dependency that can be checked.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Broker reports whether the publisher holds a connection.
type Broker interface {
	Connected() bool
}

// Readiness is the replica's own answer to "send me traffic?": false while
// starting and once draining. It deliberately ignores the dependencies: if
// RabbitMQ is down every replica would go unready at once and reads, which
// do not need RabbitMQ, would fail too. /health reports dependencies.
type Readiness struct {
	ready atomic.Bool
}

// SetReady marks the replica able (true) or unable (false) to serve.
func (r *Readiness) SetReady(ok bool) { r.ready.Store(ok) }

// Ready reports the current readiness.
func (r *Readiness) Ready() bool { return r.ready.Load() }

// healthResponse has the original system's shape.
type healthResponse struct {
	Status    string `json:"status"`
	Redis     string `json:"redis"`
	Database  string `json:"database"`
	RabbitMQ  string `json:"rabbitmq"`
	Timestamp string `json:"timestamp"`
}

// healthRefresh is the most often /health asks the dependencies: a load
// balancer or a monitor polling it cannot turn into load on Redis and the
// database.
const healthRefresh = time.Second

type health struct {
	cache, store Pinger
	broker       Broker
	readiness    *Readiness
	timeout      time.Duration
	now          func() time.Time

	mu        sync.Mutex
	checkedAt time.Time
	status    int
	last      healthResponse
}

// check answers /health from the last state, refreshed when it is older
// than healthRefresh: every dependency is checked at once, each within the
// timeout. The replica is "down" when it can neither read from the
// database nor accept writes, "degraded" when anything is failing.
func (h *health) check(c *gin.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := h.now(); h.checkedAt.IsZero() || now.Sub(h.checkedAt) >= healthRefresh {
		h.status, h.last = h.probe(c.Request.Context())
		h.checkedAt = now
	}
	c.JSON(h.status, h.last)
}

func (h *health) probe(ctx context.Context) (int, healthResponse) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	var cacheErr, storeErr error
	var wg sync.WaitGroup
	wg.Go(func() { cacheErr = h.cache.Ping(ctx) })
	wg.Go(func() { storeErr = h.store.Ping(ctx) })
	wg.Wait()
	brokerOK := h.broker.Connected()

	resp := healthResponse{
		Status:    "ok",
		Redis:     okOrError(cacheErr == nil),
		Database:  okOrError(storeErr == nil),
		RabbitMQ:  okOrError(brokerOK),
		Timestamp: h.now().UTC().Format(time.RFC3339),
	}
	status := http.StatusOK
	switch {
	case storeErr != nil && !brokerOK:
		resp.Status = "down"
		status = http.StatusServiceUnavailable
	case cacheErr != nil || storeErr != nil || !brokerOK:
		resp.Status = "degraded"
	}
	return status, resp
}

func okOrError(ok bool) string {
	if ok {
		return "ok"
	}
	return "error"
}

// live answers /healthz: the process is up and serving HTTP.
func live(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (h *health) ready(c *gin.Context) {
	if !h.readiness.Ready() {
		c.JSON(http.StatusServiceUnavailable, errorBody{Detail: "this replica is starting or draining", Code: "not_ready"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
