package chart

import (
	"math"
	"strconv"
	"strings"
)

// Format writes v in a Grafana unit, the way a reader expects it:
// "percentunit" 0.05 as 5%, "s" 0.0123 as 12.3 ms, "bytes" in KiB/MiB/GiB,
// "reqps" and "ops" per second, anything else ("short") with k/M/G.
func Format(unit string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	switch unit {
	case "percentunit":
		return decimal(v*100) + "%"
	case "s":
		a := math.Abs(v)
		switch {
		case a == 0:
			return "0 s"
		case a < 1e-3:
			return decimal(v*1e6) + " µs"
		case a < 1:
			return decimal(v*1e3) + " ms"
		case a < 120:
			return decimal(v) + " s"
		default:
			return decimal(v/60) + " min"
		}
	case "bytes":
		return scaled(v, 1024, []string{" B", " KiB", " MiB", " GiB", " TiB"})
	case "reqps":
		return scaled(v, 1000, []string{"", "k", "M", "G"}) + " req/s"
	case "ops":
		return scaled(v, 1000, []string{"", "k", "M", "G"}) + "/s"
	}
	return scaled(v, 1000, []string{"", "k", "M", "G", "T"})
}

// scaled divides v by step until it is below step, and appends that
// power's suffix.
func scaled(v, step float64, suffixes []string) string {
	i := 0
	for math.Abs(v) >= step && i < len(suffixes)-1 {
		v /= step
		i++
	}
	return decimal(v) + suffixes[i]
}

// decimal writes v with three significant digits at most, and no
// trailing zeros: 0.5, 12.3, 123, 1234.
func decimal(v float64) string {
	a := math.Abs(v)
	prec := 0
	switch {
	case a == 0:
	case a < 0.01:
		prec = 4
	case a < 0.1:
		prec = 3
	case a < 10:
		prec = 2
	case a < 100:
		prec = 1
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}
