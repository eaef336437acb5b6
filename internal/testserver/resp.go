package testserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// defaultIOTimeout bounds a network exchange whose context has no deadline.
const defaultIOTimeout = 5 * time.Second

// respError is an error reply from a Redis server ("-ERR ...").
type respError string

func (e respError) Error() string { return "redis: " + string(e) }

// respConn is a minimal RESP2 client: enough to authenticate, ask a server
// or a sentinel about its state, and check replies, without the package
// depending on a Redis driver.
type respConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialRESP connects to addr and, when password is not empty, authenticates.
func dialRESP(ctx context.Context, addr, password string) (*respConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &respConn{conn: conn, r: bufio.NewReader(conn)}
	if password != "" {
		if _, err := c.do(ctx, "AUTH", password); err != nil {
			conn.Close()
			return nil, fmt.Errorf("auth to %s: %w", addr, err)
		}
	}
	return c, nil
}

// Close closes the connection.
func (c *respConn) Close() error { return c.conn.Close() }

// do sends one command and reads its reply: a string for simple and bulk
// strings, int64 for integers, []any for arrays, nil for null, and a
// respError for an error reply.
func (c *respConn) do(ctx context.Context, args ...string) (any, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultIOTimeout)
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// Cancellation, not only the deadline, must interrupt a blocked read.
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c.conn, b.String()); err != nil {
		return nil, err
	}
	v, err := readRESP(c.r)
	if err != nil {
		return nil, err
	}
	if e, ok := v.(respError); ok {
		return nil, e
	}
	return v, nil
}

// redisDo runs one command on a fresh connection to addr.
func redisDo(ctx context.Context, addr, password string, args ...string) (any, error) {
	c, err := dialRESP(ctx, addr, password)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.do(ctx, args...)
}

// readRESP reads one RESP2 value. Error replies are returned as a respError
// value, not as err, so that errors nested in arrays are kept in place.
func readRESP(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("redis: empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return respError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("redis: bad bulk length %q", body)
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("redis: bad array length %q", body)
		}
		if n < 0 {
			return nil, nil
		}
		vals := make([]any, n)
		for i := range vals {
			if vals[i], err = readRESP(r); err != nil {
				return nil, err
			}
		}
		return vals, nil
	default:
		return nil, fmt.Errorf("redis: unexpected reply %q", line)
	}
}

// respFields turns a flat [k1 v1 k2 v2 ...] reply (SENTINEL MASTER) into a
// map.
func respFields(v any) (map[string]string, error) {
	arr, ok := v.([]any)
	if !ok || len(arr)%2 != 0 {
		return nil, fmt.Errorf("redis: expected a key/value array, got %T", v)
	}
	m := make(map[string]string, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		k, _ := arr[i].(string)
		switch val := arr[i+1].(type) {
		case string:
			m[k] = val
		case int64:
			m[k] = strconv.FormatInt(val, 10)
		}
	}
	return m, nil
}

// infoField finds "name:value" in an INFO reply.
func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
