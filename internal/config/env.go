// Package config reads each binary's settings from KVFLEET_* environment
// variables, so that a Compose file and a Kubernetes manifest set them the
// same way. Every value has a default that works in the Compose fleet;
// a value that cannot be used stops start-up with a message naming the
// variable; and a configuration prints with its secrets masked.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Prefix starts every variable name.
const Prefix = "KVFLEET_"

// env reads variables and collects every problem, so that a user fixes
// them all in one go rather than one start-up at a time. It also records
// the effective value of every setting it reads, secrets masked, so that
// the start-up log shows all of them without a list to keep in step.
type env struct {
	getenv func(string) string
	errs   []error

	printed []slog.Attr
	index   map[string]int
}

// record notes the effective value of a setting for the start-up log; a
// setting read twice keeps its first place and its last value.
func (e *env) record(name string, value any) {
	if e.index == nil {
		e.index = make(map[string]int)
	}
	attr := slog.Any(strings.ToLower(name), value)
	if i, ok := e.index[name]; ok {
		e.printed[i] = attr
		return
	}
	e.index[name] = len(e.printed)
	e.printed = append(e.printed, attr)
}

// settings is what a configuration prints: every setting in the order it
// was read.
type settings []slog.Attr

// LogValue prints the settings as one group.
func (s settings) LogValue() slog.Value { return slog.GroupValue(s...) }

func (e *env) fail(name, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s%s: %s", Prefix, name, fmt.Sprintf(format, args...)))
}

func (e *env) err() error { return errors.Join(e.errs...) }

func (e *env) lookup(name string) (string, bool) {
	v := strings.TrimSpace(e.getenv(Prefix + name))
	return v, v != ""
}

func (e *env) str(name, def string) string {
	v, ok := e.lookup(name)
	if !ok {
		v = def
	}
	e.record(name, v)
	return v
}

// secret reads a password; required ones have no safe default.
func (e *env) secret(name string, required bool) string {
	v, ok := e.lookup(name)
	if !ok && required {
		e.fail(name, "is required")
	}
	e.record(name, mask(v))
	return v
}

func (e *env) list(name, def string) []string {
	var out []string
	for _, part := range strings.Split(e.str(name, def), ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	e.record(name, out)
	return out
}

// urls reads a required comma-separated list of URLs with one of schemes,
// each printed with its password masked.
func (e *env) urls(name, example string, schemes ...string) []string {
	var out, masked []string
	v, _ := e.lookup(name)
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			e.checkURL(name, part, schemes...)
			out = append(out, part)
			masked = append(masked, maskURL(part))
		}
	}
	if len(out) == 0 {
		e.fail(name, "is required (%s)", example)
	}
	e.record(name, masked)
	return out
}

func (e *env) integer(name string, def, lo, hi int) int {
	v, ok := e.lookup(name)
	if !ok {
		e.record(name, def)
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.fail(name, "%q is not an integer", v)
		return def
	}
	if n < lo || n > hi {
		e.fail(name, "%d is out of range [%d, %d]", n, lo, hi)
		return def
	}
	e.record(name, n)
	return n
}

func (e *env) bytes(name string, def, lo, hi int64) int64 {
	return int64(e.integer(name, int(def), int(lo), int(hi)))
}

func (e *env) duration(name string, def, lo, hi time.Duration) time.Duration {
	v, ok := e.lookup(name)
	if !ok {
		e.record(name, def.String())
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.fail(name, "%q is not a duration (use a unit: 500ms, 5s, 24h)", v)
		return def
	}
	if d < lo || d > hi {
		e.fail(name, "%s is out of range [%s, %s]", d, lo, hi)
		return def
	}
	e.record(name, d.String())
	return d
}

func (e *env) boolean(name string, def bool) bool {
	v, ok := e.lookup(name)
	if !ok {
		e.record(name, def)
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, "%q is not a boolean (true or false)", v)
		return def
	}
	e.record(name, b)
	return b
}

func (e *env) address(name, def string) string {
	v := e.str(name, def)
	if _, port, err := splitHostPort(v); err != nil || port == "" {
		e.fail(name, "%q is not a host:port address", v)
	}
	return v
}

func splitHostPort(addr string) (string, string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", errors.New("missing port")
	}
	if _, err := strconv.ParseUint(addr[i+1:], 10, 16); err != nil {
		return "", "", err
	}
	return addr[:i], addr[i+1:], nil
}

// url reads a required URL with one of schemes, printed with its password
// masked.
func (e *env) url(name, example string, schemes ...string) string {
	v, ok := e.lookup(name)
	if ok {
		e.checkURL(name, v, schemes...)
	} else {
		e.fail(name, "is required (%s)", example)
	}
	e.record(name, maskURL(v))
	return v
}

func (e *env) checkURL(name, v string, schemes ...string) {
	u, err := url.Parse(v)
	if err != nil {
		// The parse error would quote the URL, password and all.
		e.fail(name, "is not a valid URL")
		return
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return
		}
	}
	e.fail(name, "URL scheme %q is not one of %s", u.Scheme, strings.Join(schemes, ", "))
}

// maskURL hides the password in a URL for printing: the one in the
// user-info part and the ones pgx also accepts in the query string.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	q := u.Query()
	for _, k := range []string{"password", "sslpassword"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}

func mask(secret string) string {
	if secret == "" {
		return "<unset>"
	}
	return "<set>"
}
