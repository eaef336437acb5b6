package scaler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// answers is a Querier that answers a query by the first key, in the
// order given, that the query contains (the growth query contains the
// ready and unacked ones, so it must come first): a number, "none" (no
// samples), "bad" (a rejected query) or "down" (Prometheus unreachable).
type answers []string // key, answer, key, answer...

func (a answers) Query(_ context.Context, q string) ([]Sample, error) {
	for i := 0; i+1 < len(a); i += 2 {
		key, answer := a[i], a[i+1]
		if !strings.Contains(q, key) {
			continue
		}
		switch answer {
		case "none":
			return nil, nil
		case "down":
			return nil, fmt.Errorf("%w: connection refused", ErrUnreachable)
		case "bad":
			return nil, errors.New("prometheus: bad_data: parse error")
		}
		var v float64
		if _, err := fmt.Sscan(answer, &v); err != nil {
			panic(err)
		}
		return []Sample{{Value: v}}, nil
	}
	return nil, nil
}

var apiSampler = APISampler{Job: "api", Window: 20 * time.Second, CPUCores: 1, CPUTarget: 0.5, InFlightTarget: 10}

var consumerSampler = ConsumerSampler{Job: "consumer", Queue: "kvfleet.writes", BacklogTarget: 500, GrowthWindow: time.Minute}

func TestAPISampler(t *testing.T) {
	tests := []struct {
		name    string
		sampler APISampler
		answers answers
		want    string // the signals, as the decision log prints them
	}{
		{"both", apiSampler, answers{"process_cpu", "0.3", "in_flight", "12"}, "cpu=0.3/0.5 in_flight=12/10"},
		{"two-core quota", APISampler{Job: "api", Window: 20 * time.Second, CPUCores: 2, CPUTarget: 0.5, InFlightTarget: 10},
			answers{"process_cpu", "0.3", "in_flight", "12"}, "cpu=0.15/0.5 in_flight=12/10"},
		{"in-flight missing", apiSampler, answers{"process_cpu", "0.3", "in_flight", "none"}, "cpu=0.3/0.5 in_flight=no data (no samples)"},
		{"query rejected", apiSampler, answers{"process_cpu", "bad", "in_flight", "1"}, "cpu=no data (prometheus: bad_data: parse error) in_flight=1/10"},
		{"in-flight off", APISampler{Job: "api", Window: 20 * time.Second, CPUCores: 1, CPUTarget: 0.5},
			answers{"process_cpu", "0.3"}, "cpu=0.3/0.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signals, err := tt.sampler.Sample(context.Background(), tt.answers, 3)
			if err != nil {
				t.Fatal(err)
			}
			if got := (Decision{Signals: signals}).SignalSummary(); got != tt.want {
				t.Errorf("signals %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := apiSampler.Sample(context.Background(), answers{"process_cpu", "down"}, 3); !errors.Is(err, ErrUnreachable) {
		t.Errorf("unreachable Prometheus: err = %v", err)
	}
}

func TestConsumerSampler(t *testing.T) {
	tests := []struct {
		name    string
		current int
		answers answers
		want    string
	}{
		// Consumers keep up: nothing ready, a batch unacked each.
		{"keeping up", 2, answers{"deriv", "0", "_ready", "0", "_unacked", "400", "consumer_messages", "300"}, "backlog=200/500 growth=idle (no message waits)"},
		// Messages wait and the queue grows by 50/s while consumers do 100/s:
		// arrivals are 1.5 × completions.
		{"growing", 2, answers{"deriv", "50", "_ready", "1000", "_unacked", "512", "consumer_messages", "100"}, "backlog=756/500 growth=1.5/1"},
		{"draining", 3, answers{"deriv", "-50", "_ready", "300", "_unacked", "768", "consumer_messages", "200"}, "backlog=356/500 growth=0.75/1"},
		{"stalled", 2, answers{"deriv", "5", "_ready", "900", "_unacked", "512", "consumer_messages", "0"}, "backlog=706/500 growth=idle (consumers complete 0/s)"},
		{"no growth data yet", 2, answers{"deriv", "none", "_ready", "10", "_unacked", "0", "consumer_messages", "20"}, "backlog=5/500 growth=no data (no samples)"},
		{"no queue metrics", 2, answers{"_ready", "none", "_unacked", "none"}, "backlog=no data (no samples) growth=no data (no queue depth)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signals, err := consumerSampler.Sample(context.Background(), tt.answers, tt.current)
			if err != nil {
				t.Fatal(err)
			}
			if got := (Decision{Signals: signals}).SignalSummary(); got != tt.want {
				t.Errorf("signals %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := consumerSampler.Sample(context.Background(), answers{"_ready", "down"}, 2); !errors.Is(err, ErrUnreachable) {
		t.Errorf("unreachable Prometheus: err = %v", err)
	}
}

// The queries name what the fleet's Prometheus scrapes
// (deploy/prometheus/prometheus.yml: jobs api and consumer; RabbitMQ's
// per-queue series) and what the code exports.
func TestQueries(t *testing.T) {
	want := []string{
		`avg(rate(process_cpu_seconds_total{job="api"}[20s]) and on(instance) (up{job="api"} == 1))`,
		`avg(avg_over_time(kvfleet_http_in_flight{job="api"}[20s]))`,
		`max(rabbitmq_queue_messages_ready{queue="kvfleet.writes"})`,
		`max(rabbitmq_queue_messages_unacked{queue="kvfleet.writes"})`,
		`deriv((max(rabbitmq_queue_messages_ready{queue="kvfleet.writes"}) + max(rabbitmq_queue_messages_unacked{queue="kvfleet.writes"}))[60s:5s])`,
		`sum(rate(kvfleet_consumer_messages_total{job="consumer"}[60s]))`,
	}
	got := append(apiSampler.Queries(), consumerSampler.Queries()...)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("queries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := consumerSampler.BacklogQuery(), `max(rabbitmq_queue_messages_ready{queue="kvfleet.writes"}) + max(rabbitmq_queue_messages_unacked{queue="kvfleet.writes"})`; got != want {
		t.Errorf("backlog query %s, want %s", got, want)
	}
}
