package autoscale

import (
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/scaler"
)

// The backlog phase holds its pause until the recorder has heard the
// scaler decide a consumer scale-up from the pause on: holds, scale-downs,
// other services and earlier decisions do not count.
func TestRecorderDecidedUp(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := newRecorder(start)
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	r.Decided("consumer", scaler.Decision{At: at(5), Current: 2, Desired: 3})  // before the pause
	r.Decided("api", scaler.Decision{At: at(20), Current: 3, Desired: 5})      // another service
	r.Decided("consumer", scaler.Decision{At: at(25), Current: 3, Desired: 3}) // a hold
	r.Decided("consumer", scaler.Decision{At: at(30), Current: 3, Desired: 2}) // down
	if r.decidedUp("consumer", 10) {
		t.Fatal("counted a decision that was not a consumer scale-up from t=10 s on")
	}
	r.Decided("consumer", scaler.Decision{At: at(35), Current: 2, Desired: 4})
	if !r.decidedUp("consumer", 10) || r.decidedUp("consumer", 36) {
		t.Error("a consumer scale-up at t=35 s: want it seen from t=10 s and not from t=36 s")
	}
}
