package hostile

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
	"sync"
	"time"
)

// answer is what one hostile request got.
type answer struct {
	Status int
	// Code is the code of a JSON error body; JSONError says whether a
	// non-2xx answer had the {"detail","code"} body every error must have.
	Code      string
	JSONError bool
	Version   string // of a 202 or a 200
	// Failure is why there was no answer at all.
	Failure string
}

// attacker sends hostile requests. Its answers are read up to 8 MiB, enough
// for a 1 MiB value returned JSON-escaped.
type attacker struct {
	base *url.URL
	http *http.Client
}

func newAttacker(base string) (*attacker, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return nil, err
	}
	t := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
	return &attacker{base: u, http: &http.Client{Transport: t, Timeout: 60 * time.Second}}, nil
}

func (a *attacker) close() { a.http.CloseIdleConnections() }

// do sends one request and describes the answer.
func (a *attacker) do(ctx context.Context, method, target string, header http.Header, body []byte) answer {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base.String()+target, r)
	if err != nil {
		return answer{Failure: "request: " + err.Error()}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return answer{Failure: failure(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return answer{Status: resp.StatusCode, Failure: failure(err)}
	}
	return describe(resp.StatusCode, resp.Header.Get("Content-Type"), raw)
}

// describe reads an answer's body: the version of a success, the code of
// an error, and whether the error had the JSON shape.
func describe(status int, contentType string, raw []byte) answer {
	a := answer{Status: status}
	var body struct {
		Detail  *string `json:"detail"`
		Code    *string `json:"code"`
		Version string  `json:"version"`
	}
	parsed := json.Unmarshal(raw, &body) == nil
	if status < 300 {
		a.Version = body.Version
		return a
	}
	if parsed && body.Code != nil {
		a.Code = *body.Code
	}
	a.JSONError = parsed && strings.HasPrefix(contentType, "application/json") &&
		body.Detail != nil && *body.Detail != "" && body.Code != nil && *body.Code != ""
	return a
}

func failure(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return "connection: " + err.Error()
}

// putBody is a PUT body with key and value JSON-encoded the way a client
// library does (encoding/json escapes '<' into six bytes) and, when pad is
// positive, an unknown member of pad bytes first.
func putBody(key, value string, pad int) []byte {
	var b bytes.Buffer
	b.WriteString("{")
	if pad > 0 {
		b.WriteString(`"padding":"`)
		b.WriteString(strings.Repeat("p", pad))
		b.WriteString(`",`)
	}
	k, _ := json.Marshal(key)
	v, _ := json.Marshal(value)
	fmt.Fprintf(&b, `"key_name":%s,"key_value":%s}`, k, v)
	return b.Bytes()
}

// tally counts the answers of one attack by status and code.
type tally struct {
	mu       sync.Mutex
	Sent     int            `json:"sent"`
	ByAnswer map[string]int `json:"by_answer"`
	// NotJSON counts error answers without the JSON error body.
	NotJSON int `json:"errors_not_json"`
	// Unanswered counts requests that got no answer at all.
	Unanswered int `json:"unanswered"`
}

func newTally() *tally { return &tally{ByAnswer: map[string]int{}} }

func (t *tally) add(a answer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Sent++
	switch {
	case a.Failure != "":
		t.Unanswered++
		t.ByAnswer["no answer"]++
		return
	case a.Status >= 300:
		t.ByAnswer[fmt.Sprintf("%d %s", a.Status, a.Code)]++
		if !a.JSONError {
			t.NotJSON++
		}
		return
	}
	t.ByAnswer[fmt.Sprint(a.Status)]++
}

// count returns how many answers were status with code.
func (t *tally) count(status int, code string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if code == "" {
		return t.ByAnswer[fmt.Sprint(status)]
	}
	return t.ByAnswer[fmt.Sprintf("%d %s", status, code)]
}

// parallel runs n calls of f, at most width at once, and stops starting
// new ones when ctx ends or stop returns true.
func parallel(ctx context.Context, n, width int, stop func() bool, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, width)
	for i := range n {
		if ctx.Err() != nil || (stop != nil && stop()) {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}
