package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kvfleet/kvfleet/internal/kv"
)

// httpError is a client mistake that only makes sense in HTTP terms (a
// media type, a body size, a method), with its own status.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errUnsupportedMedia(msg string) error {
	return &httpError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", msg: msg}
}

func errBodyTooLarge(limit int64) error {
	return &httpError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
		msg: "request body is over the limit of " + formatBytes(limit)}
}

var (
	errMethodNotAllowed = &httpError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: "method not allowed"}
	errNoRoute          = &httpError{status: http.StatusNotFound, code: "no_route", msg: "no such endpoint"}
)

const codeQueueFull = "queue_full"

// errorBody is the one shape of every error response.
type errorBody struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// retryAfterSeconds is what a client is told to wait after a 503; a full
// queue takes longer to drain than a replica takes to free a slot.
const (
	retryAfterSeconds          = "1"
	retryAfterQueueFullSeconds = "5"
)

// handleErrors is the one place that turns an error into a response and
// logs it. Handlers return their errors (see handle). Messages of unknown errors never
// reach the client.
func handleErrors(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if len(c.Errors) == 0 {
			return
		}
		err := c.Errors.Last().Err
		status, body := classify(err)
		switch {
		case body.Code == codeQueueFull:
			c.Header("Retry-After", retryAfterQueueFullSeconds)
		case status == http.StatusServiceUnavailable:
			c.Header("Retry-After", retryAfterSeconds)
		}
		level := slog.LevelDebug
		switch {
		case status >= 500:
			level = slog.LevelError
			if status == http.StatusServiceUnavailable {
				level = slog.LevelWarn
			}
		case errors.Is(err, context.Canceled):
			level = slog.LevelDebug
		}
		log.LogAttrs(c.Request.Context(), level, "request failed",
			slog.String("request_id", requestID(c)),
			slog.String("method", c.Request.Method),
			slog.String("route", c.FullPath()),
			slog.Int("status", status),
			slog.String("code", body.Code),
			slog.String("err", err.Error()))
		c.AbortWithStatusJSON(status, body)
	}
}

func classify(err error) (int, errorBody) {
	var invalid *kv.InvalidError
	var herr *httpError
	switch {
	case errors.As(err, &herr):
		return herr.status, errorBody{Detail: herr.msg, Code: herr.code}
	case errors.As(err, &invalid):
		return http.StatusBadRequest, errorBody{Detail: invalid.Message, Code: invalid.Code}
	case errors.Is(err, kv.ErrNotFound):
		return http.StatusNotFound, errorBody{Detail: "Key not found", Code: "not_found"}
	case errors.Is(err, kv.ErrQueueFull):
		return http.StatusServiceUnavailable, errorBody{
			Detail: "the write was not accepted because the write queue is full (its consumers are behind); retry later",
			Code:   codeQueueFull}
	case errors.Is(err, kv.ErrUnavailable):
		return http.StatusServiceUnavailable, errorBody{
			Detail: "the write was not accepted because the queue did not confirm it in time; retry later",
			Code:   "queue_unavailable"}
	case errors.Is(err, kv.ErrStoreUnavailable):
		return http.StatusServiceUnavailable, errorBody{
			Detail: "the key is not cached and the database is not reachable; retry later",
			Code:   "database_unavailable"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, errorBody{Detail: "the request timed out; retry later", Code: "timeout"}
	}
	return http.StatusInternalServerError, errorBody{Detail: "internal error", Code: "internal"}
}
