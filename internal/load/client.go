package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/kvfleet/kvfleet/internal/version"
)

// ErrNotLoopback is returned for a base URL whose host is not a loopback
// address: the load tools send traffic to a fleet on this machine only.
var ErrNotLoopback = errors.New("load: the API address must be a loopback address (127.0.0.1, ::1 or localhost)")

// maxBody bounds how much of an answer is read.
const maxBody = 4 << 20

// Client calls a kvfleet API over HTTP. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	http    *http.Client
	timeout time.Duration
}

// NewClient returns a client of the API at base (e.g.
// http://127.0.0.1:8000). timeout bounds each request, answer included;
// conns is how many idle connections are kept for reuse.
func NewClient(base string, timeout time.Duration, conns int) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return nil, fmt.Errorf("load: base URL %q: %w", base, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("load: base URL %q: only http is supported", base)
	}
	if !IsLoopback(u.Hostname()) {
		return nil, fmt.Errorf("%w; got %q", ErrNotLoopback, u.Hostname())
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("load: request timeout must be positive, got %v", timeout)
	}
	transport := &http.Transport{
		// Never a proxy from the environment: traffic goes to this machine.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{base: u, http: &http.Client{Transport: transport}, timeout: timeout}, nil
}

// IsLoopback reports whether host names this machine: localhost or a
// loopback address. Every tool that sends load checks its target with it.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// answer is every member any answer of the API may have.
type answer struct {
	KeyName string  `json:"key_name"`
	Value   *string `json:"value"`
	Version string  `json:"version"`
	Source  string  `json:"source"`
	Code    string  `json:"code"`
}

// Do makes one request and describes what happened. It never fails: a
// transport error is part of the outcome.
func (c *Client) Do(ctx context.Context, r Request) Outcome {
	o := Outcome{Request: r}
	req, err := c.newRequest(ctx, r)
	if err != nil {
		o.Failure = FailOther
		return o
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req = req.WithContext(ctx)
	o.Sent = time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		o.Latency = time.Since(o.Sent)
		o.Failure = classify(err)
		return o
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	o.Latency = time.Since(o.Sent)
	if err != nil {
		o.Failure = classify(err)
		return o
	}
	o.Status = resp.StatusCode
	describe(&o, resp.Header.Get("ETag"), raw)
	return o
}

func (c *Client) newRequest(ctx context.Context, r Request) (*http.Request, error) {
	target := *c.base
	target.Path = "/"
	switch r.Op {
	case OpPut:
		body, err := json.Marshal(map[string]string{"key_name": r.Key, "key_value": r.Value})
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, target.String(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resendable(req)
		return req, nil
	case OpDelete:
		target.RawQuery = url.Values{"key_name": {r.Key}}.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, target.String(), nil)
		if err != nil {
			return nil, err
		}
		resendable(req)
		return req, nil
	case OpGet:
		target.RawQuery = url.Values{"key": {r.Key}}.Encode()
		return http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	}
	return nil, fmt.Errorf("load: unknown operation %v", r.Op)
}

// resendable lets Go's transport send a write again on a new connection
// when a kept-alive connection it reused was closed before any byte of the
// answer came back. Nginx does that to its idle client connections when it
// reloads (after every scale change): a write sent at that instant is
// never read, so nothing was applied, and the transport resends only in
// that case, never after an answer has begun. The transport resends GET on
// its own but PUT and DELETE only when the request carries an
// Idempotency-Key; a key with no value marks the request without sending
// the header (net/http, Transport). The API keeps no idempotency keys: a
// resent write is a new write with a newer version, which the README's
// consistency model already makes safe to retry.
func resendable(req *http.Request) { req.Header["Idempotency-Key"] = nil }

// describe fills the outcome from an answer's body. A 202 or 200 that does
// not name the request's key or carries no valid version is not counted as
// a success: the code says what was wrong with it.
func describe(o *Outcome, etag string, raw []byte) {
	var a answer
	parsed := json.Unmarshal(raw, &a) == nil
	switch {
	case o.Status == http.StatusAccepted && o.Op.IsWrite(), o.Status == http.StatusOK && o.Op == OpGet:
		v := a.Version
		if v == "" {
			v = strings.Trim(etag, `"`)
		}
		switch {
		case !parsed:
			o.Code = "unparsable_body"
		case a.KeyName != o.Key:
			o.Code = "wrong_key"
		case !validVersion(v):
			o.Code = "no_version"
		case o.Op == OpGet && a.Value == nil:
			o.Code = "no_value"
		default:
			o.Version = v
			if a.Value != nil {
				o.ReadValue = *a.Value
			}
			o.Source = a.Source
		}
	case parsed:
		o.Code = a.Code
	default:
		o.Code = "not_json"
	}
}

func validVersion(s string) bool {
	_, err := version.Parse(s)
	return err == nil
}

// classify names a transport error.
func classify(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return FailCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return FailTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return FailRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return FailReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FailEOF
	}
	return FailOther
}
