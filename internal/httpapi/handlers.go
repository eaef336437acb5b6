package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/version"
)

// KV is what the handlers need from the domain (kv.Service provides it).
type KV interface {
	Get(ctx context.Context, key string) (kv.Item, kv.Source, error)
	Put(ctx context.Context, key, value string) (version.Version, error)
	Delete(ctx context.Context, key string) (version.Version, error)
}

// getResponse keeps the original system's "value" and "source" fields.
type getResponse struct {
	KeyName string    `json:"key_name"`
	Value   string    `json:"value"`
	Source  kv.Source `json:"source"`
	Version string    `json:"version"`
}

// queuedResponse answers an accepted write, in the original's shape.
type queuedResponse struct {
	Message    string `json:"message"`
	StatusCode int    `json:"status_code"`
	KeyName    string `json:"key_name"`
	Version    string `json:"version"`
}

// handle adapts a handler that returns its error to Gin: the error goes to
// handleErrors, the one place that answers and logs it.
func handle(f func(*gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := f(c); err != nil {
			_ = c.Error(err)
		}
	}
}

type handlers struct {
	kv           KV
	maxBodyBytes int64
}

func (h *handlers) get(c *gin.Context) error {
	key, err := queryKey(c.Request)
	if err != nil {
		return err
	}
	item, source, err := h.kv.Get(c.Request.Context(), key)
	if err != nil {
		return err
	}
	v := item.Version.String()
	setETag(c, v)
	c.JSON(http.StatusOK, getResponse{KeyName: item.Key, Value: item.Value, Source: source, Version: v})
	return nil
}

func (h *handlers) put(c *gin.Context) error {
	if err := checkContentType(c.GetHeader("Content-Type")); err != nil {
		return err
	}
	body, err := h.readBody(c)
	if err != nil {
		return err
	}
	req, err := decodePut(body)
	if err != nil {
		return err
	}
	v, err := h.kv.Put(c.Request.Context(), req.Key, req.Value)
	if err != nil {
		return err
	}
	h.queued(c, "Queued to add_key", req.Key, v)
	return nil
}

func (h *handlers) delete(c *gin.Context) error {
	key, err := queryKey(c.Request)
	if err != nil {
		return err
	}
	v, err := h.kv.Delete(c.Request.Context(), key)
	if err != nil {
		return err
	}
	h.queued(c, "Queued to del_key", key, v)
	return nil
}

func (h *handlers) queued(c *gin.Context, message, key string, v version.Version) {
	s := v.String()
	setETag(c, s)
	c.JSON(http.StatusAccepted, queuedResponse{Message: message, StatusCode: http.StatusAccepted, KeyName: key, Version: s})
}

// readBody reads the whole body up to the limit; a larger one is refused
// before it is read when its length is declared, or as soon as it passes
// the limit when it is not. A declared length is read into a buffer of
// exactly that size (net/http holds the client to it), so a body costs its
// own size and no more.
func (h *handlers) readBody(c *gin.Context) ([]byte, error) {
	n := c.Request.ContentLength
	if n > h.maxBodyBytes {
		return nil, errBodyTooLarge(h.maxBodyBytes)
	}
	var (
		body []byte
		err  error
	)
	if n >= 0 {
		body = make([]byte, n)
		_, err = io.ReadFull(c.Request.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, h.maxBodyBytes))
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, errBodyTooLarge(h.maxBodyBytes)
	case err != nil:
		return nil, kv.Invalid("unreadable_body", "request body could not be read")
	}
	return body, nil
}

// setETag sends the version as a strong entity tag.
func setETag(c *gin.Context, v string) {
	c.Header("ETag", `"`+v+`"`)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
