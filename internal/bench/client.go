package bench

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
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNotLoopback is returned for a base URL whose host is not a loopback
// address: the benchmark loads a fleet on this machine only.
var ErrNotLoopback = errors.New("bench: the target must be a loopback address (127.0.0.1, ::1 or localhost)")

// maxAnswer bounds how much of an answer is read.
const maxAnswer = 1 << 20

// CheckLoopback parses base and fails unless it is an http URL of a
// loopback host.
func CheckLoopback(base string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return nil, fmt.Errorf("bench: target %q: %w", base, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("bench: target %q: want http://host:port", base)
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%w; got %q", ErrNotLoopback, host)
	}
	return u, nil
}

// Client calls a kvfleet API (or the reference server, which answers GET
// the same way) over keep-alive connections. Safe for concurrent use.
type Client struct {
	base    string // scheme://host:port
	http    *http.Client
	timeout time.Duration
}

// NewClient returns a client of the API at base with at most conns
// connections; timeout bounds each request, answer included.
func NewClient(base string, conns int, timeout time.Duration) (*Client, error) {
	u, err := CheckLoopback(base)
	if err != nil {
		return nil, err
	}
	if conns <= 0 || timeout <= 0 {
		return nil, fmt.Errorf("bench: client needs positive connections and timeout (got %d, %v)", conns, timeout)
	}
	transport := &http.Transport{
		Proxy:               nil, // never a proxy from the environment
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &Client{base: u.Scheme + "://" + u.Host, http: &http.Client{Transport: transport}, timeout: timeout}, nil
}

// Close releases the idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Answer is what one call returned.
type Answer struct {
	Status  int
	Version string // of a 200 or a 202; "" when there was none
	Cached  bool   // a 200 answered from Redis
	Code    string // the "code" of an error body
	Failure string // why there was no answer; "" when there was one
}

// Get reads key.
func (c *Client) Get(ctx context.Context, key string) Answer {
	return c.do(ctx, http.MethodGet, c.base+"/?key="+url.QueryEscape(key), nil)
}

// Put writes value to key.
func (c *Client) Put(ctx context.Context, key, value string) Answer {
	body, err := json.Marshal(map[string]string{"key_name": key, "key_value": value})
	if err != nil {
		return Answer{Failure: "encode"}
	}
	return c.do(ctx, http.MethodPut, c.base+"/", body)
}

func (c *Client) do(ctx context.Context, method, target string, body []byte) Answer {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return Answer{Failure: "request"}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Answer{Failure: classify(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return Answer{Failure: classify(err)}
	}
	a := Answer{Status: resp.StatusCode}
	switch resp.StatusCode {
	case http.StatusOK:
		a.Version = jsonField(raw, "version")
		a.Cached = jsonField(raw, "source") == "redis"
	case http.StatusAccepted:
		a.Version = strings.Trim(resp.Header.Get("ETag"), `"`)
		if a.Version == "" {
			a.Version = jsonField(raw, "version")
		}
	default:
		a.Code = jsonField(raw, "code")
	}
	return a
}

// jsonField returns the string member name of a flat JSON object as the
// API writes it ("name":"value", no escapes in the value), or "". It
// spares the hot path a JSON decoder.
func jsonField(raw []byte, name string) string {
	marker := `"` + name + `":"`
	i := bytes.Index(raw, []byte(marker))
	if i < 0 {
		return ""
	}
	rest := raw[i+len(marker):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// Class names an answer that is not the one wanted (want), or "" for the
// wanted one; a read of a missing key may also accept the API's own 404.
func (a Answer) Class(want int, notFoundOK bool) string {
	switch {
	case a.Failure != "":
		return a.Failure
	case a.Status == want && (want != http.StatusAccepted || a.Version != ""):
		return ""
	case a.Status == http.StatusNotFound && a.Code == "not_found" && notFoundOK:
		return ""
	case a.Status == http.StatusAccepted:
		return "no_version"
	case a.Code != "":
		return "http_" + strconv.Itoa(a.Status) + "_" + a.Code
	}
	return "http_" + strconv.Itoa(a.Status)
}

// classify names a transport error.
func classify(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other"
}
