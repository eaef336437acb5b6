package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// num writes v with no decimals and thousands separators: 12,345.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	s := strconv.FormatInt(int64(math.Round(math.Abs(v))), 10)
	var b strings.Builder
	if v < 0 && math.Round(math.Abs(v)) > 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// msec writes a latency in milliseconds with the precision it deserves.
func msec(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

// cores writes a CPU figure in cores.
func cores(v float64) string {
	if v < 0.1 {
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// pct writes a share (0..1) as a percentage.
func pct(v float64) string {
	switch {
	case v >= 1:
		return "100 %"
	case v >= 0.999:
		return fmt.Sprintf("%.2f %%", v*100)
	}
	return fmt.Sprintf("%.1f %%", v*100)
}

// ratio writes a ratio as 0.72×.
func ratio(v float64) string {
	if v >= 10 {
		return fmt.Sprintf("%.0f×", v)
	}
	return fmt.Sprintf("%.2f×", v)
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
