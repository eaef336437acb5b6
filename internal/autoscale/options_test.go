package autoscale

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

func TestParseOptionsChoosesTheSchedule(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ModeFull},
		{[]string{"-quick"}, ModeQuick},
		{[]string{"-schedule", "quick"}, ModeQuick},
		{[]string{"-schedule=brief"}, ModeBrief},
		{[]string{"-schedule=full"}, ModeFull},
	} {
		o, err := ParseOptions(tc.args, noEnv, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if o.Schedule.Mode != tc.want {
			t.Errorf("%v: schedule %q, want %q", tc.args, o.Schedule.Mode, tc.want)
		}
	}
}

func TestParseOptionsRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-schedule=fast"}, `unknown schedule "fast"`},
		{[]string{"-concurrency=0"}, "-concurrency"},
		{[]string{"-trickle-rate=1"}, "-trickle-rate"},
		{[]string{"-write-fraction=1.5"}, "-write-fraction"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		_, err := ParseOptions(tc.args, noEnv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := ParseOptions([]string{"-h"}, noEnv, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
}

// Every schedule must leave the scaler room to do what the checks ask:
// a steady phase after the step window, a cooldown no longer than the
// down window (else a scale-down waits on the scale-up's cooldown), a
// signal window of at least two of the fleet's 5 s scrapes.
func TestSchedulesAreConsistent(t *testing.T) {
	for _, mode := range []string{ModeFull, ModeQuick, ModeBrief} {
		s, err := ScheduleFor(mode)
		if err != nil {
			t.Fatal(err)
		}
		if s.Load <= s.StepWindow {
			t.Errorf("%s: load %v leaves no steady phase after the %v step window", mode, s.Load, s.StepWindow)
		}
		if s.Cooldown > s.DownWindow {
			t.Errorf("%s: cooldown %v longer than the down window %v", mode, s.Cooldown, s.DownWindow)
		}
		if s.SignalWindow < 10*time.Second {
			t.Errorf("%s: signal window %v shorter than two scrapes", mode, s.SignalWindow)
		}
		if s.AnswerMax <= time.Minute+s.Interval {
			t.Errorf("%s: the pause is held at most %v for the scaler's answer, not longer than an API change it may be carrying out (its ready timeout, 60 s) and an interval", mode, s.AnswerMax)
		}
		if s.Interval <= 0 || s.Idle <= 0 || s.PauseMax <= 0 || s.CoolMargin <= 0 {
			t.Errorf("%s: a phase without a length: %+v", mode, s)
		}
	}
	brief, _ := ScheduleFor(ModeBrief)
	quick, _ := ScheduleFor(ModeQuick)
	if brief.Bound() >= quick.Bound() {
		t.Errorf("brief's bound %v is not shorter than quick's %v", brief.Bound(), quick.Bound())
	}
}
