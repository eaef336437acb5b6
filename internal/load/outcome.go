// Package load drives open-loop traffic at a kvfleet API through its public
// HTTP interface and accounts for every answer: the outcome of each request,
// the ledger of the writes that were attempted and acknowledged, the check
// that the fleet converged to them, availability per second and latency
// percentiles. The chaos suite uses it under faults; a benchmark can use it
// without.
package load

import (
	"net/http"
	"strconv"
	"time"
)

// Op is the kind of a request.
type Op uint8

// The three calls of the API.
const (
	OpPut Op = iota + 1
	OpDelete
	OpGet
)

// String returns the HTTP method of the operation.
func (o Op) String() string {
	switch o {
	case OpPut:
		return http.MethodPut
	case OpDelete:
		return http.MethodDelete
	case OpGet:
		return http.MethodGet
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// IsWrite reports whether the operation changes a key.
func (o Op) IsWrite() bool { return o == OpPut || o == OpDelete }

// Reasons a request got no HTTP answer (Outcome.Failure).
const (
	FailTimeout     = "timeout"      // no answer within the request timeout
	FailRefused     = "refused"      // connection refused
	FailReset       = "reset"        // connection reset
	FailEOF         = "eof"          // connection closed before the answer
	FailCanceled    = "canceled"     // the run was interrupted
	FailOther       = "other"        // any other transport error
	FailClientLimit = "client_limit" // not sent: the generator's in-flight limit was reached
)

// Request is one call the generator makes.
type Request struct {
	Op    Op
	Key   string
	Value string // a put's value; unique within a run
	Seq   uint64 // position in its stream
	// Intended is when the schedule wanted the request sent; availability is
	// accounted by it, so a stall of the client or the server cannot hide
	// the requests that should have been made meanwhile.
	Intended time.Time
}

// Outcome is what happened to one request.
type Outcome struct {
	Request
	Sent    time.Time     // when it was sent (zero if it was not)
	Latency time.Duration // from sending to the end of the answer
	Status  int           // HTTP status; 0 when there was no answer
	Code    string        // the "code" of an error body, when there was one
	// Version is the version a 202 acknowledged or a 200 returned, as 32 hex
	// digits; empty when the answer had none (a 202 without a version is not
	// an acknowledgement).
	Version   string
	ReadValue string // the value a 200 returned
	Source    string // "redis" or "database" for a 200
	Failure   string // why there was no answer (Fail*); empty when there was one
}

// Acknowledged reports whether a write was accepted: 202 with a version.
func (o Outcome) Acknowledged() bool {
	return o.Op.IsWrite() && o.Status == http.StatusAccepted && o.Version != ""
}

// Available reports whether the request got the answer a working fleet
// gives: 202 for a write; 200, or the API's own 404 for a key not (or no
// longer) there, for a read.
func (o Outcome) Available() bool {
	if o.Op.IsWrite() {
		return o.Acknowledged()
	}
	return (o.Status == http.StatusOK && o.Code == "") ||
		(o.Status == http.StatusNotFound && o.Code == "not_found")
}

// NotApplied reports whether a write certainly had no effect: it was never
// sent, or the request was refused (4xx), which the API does before
// publishing anything. Every other write that was not acknowledged (a 503,
// a 502 from the proxy, a timeout, a reset) may still have been applied.
func (o Outcome) NotApplied() bool {
	return o.Failure == FailClientLimit || (o.Status >= 400 && o.Status < 500)
}

// ServerError reports whether the request failed with a 5xx or a transport
// error (what a fault-free fleet must never give). Requests the generator
// itself did not send do not count.
func (o Outcome) ServerError() bool {
	return o.Status >= 500 || (o.Failure != "" && o.Failure != FailClientLimit)
}

// Kind names the outcome for counting errors: "503 queue_unavailable",
// "transport timeout", "client_limit", "202 no_version" (a 202 that was not
// a valid acknowledgement).
func (o Outcome) Kind() string {
	switch {
	case o.Failure == FailClientLimit:
		return FailClientLimit
	case o.Failure != "":
		return "transport " + o.Failure
	case o.Code != "":
		return strconv.Itoa(o.Status) + " " + o.Code
	}
	return strconv.Itoa(o.Status)
}
