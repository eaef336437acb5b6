package report

import "time"

// Autoscale is what the report reads of the autoscaling test's result
// (schema kvfleet-autoscale/1, written by `make autoscale-test`); fields
// it does not use are ignored.
type Autoscale struct {
	Schema   string    `json:"schema"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Mode     string    `json:"mode"`
	BaseURL  string    `json:"base_url"`
	Project  string    `json:"project"`
	Settings struct {
		IntervalS   float64 `json:"interval_s"`
		CooldownS   float64 `json:"cooldown_s"`
		DownWindowS float64 `json:"down_window_s"`
		APIMin      int     `json:"api_min"`
		APIMax      int     `json:"api_max"`
		ConsumerMin int     `json:"consumer_min"`
		ConsumerMax int     `json:"consumer_max"`
	} `json:"settings"`
	Phases []struct {
		Name        string  `json:"name"`
		StartS      float64 `json:"start_s"`
		EndS        float64 `json:"end_s"`
		OfferedPerS float64 `json:"offered_per_s"`
	} `json:"phases"`
	Timeline []struct {
		T                float64 `json:"t_s"`
		APIReplicas      float64 `json:"api_replicas"`
		ConsumerReplicas float64 `json:"consumer_replicas"`
		APICPU           float64 `json:"api_cpu"`
		APIInFlight      float64 `json:"api_in_flight"`
		Backlog          float64 `json:"backlog"`
		Offered          float64 `json:"offered"`
		OK               float64 `json:"ok"`
		Failed           float64 `json:"failed"`
	} `json:"timeline"`
	Decisions []struct {
		T       float64 `json:"t_s"`
		Service string  `json:"service"`
		From    int     `json:"from"`
		To      int     `json:"to"`
		Reason  string  `json:"reason"`
		Signals string  `json:"signals"`
	} `json:"decisions"`
	Requests struct {
		Sent   int            `json:"sent"`
		OK     int            `json:"ok"`
		Failed int            `json:"failed"`
		Errors map[string]int `json:"errors"`
	} `json:"requests"`
	Checks []struct {
		Name   string `json:"name"`
		Pass   bool   `json:"pass"`
		Detail string `json:"detail"`
	} `json:"checks"`
	Pass bool `json:"pass"`
}
