package chart

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	tests := []struct {
		unit string
		v    float64
		want string
	}{
		{"percentunit", 0.05, "5%"},
		{"percentunit", 0.00123, "0.12%"},
		{"percentunit", 1, "100%"},
		{"s", 0.0123, "12.3 ms"},
		{"s", 0.0000456, "45.6 µs"},
		{"s", 2.5, "2.5 s"},
		{"s", 0, "0 s"},
		{"s", 300, "5 min"},
		{"bytes", 1536, "1.5 KiB"},
		{"bytes", 128 << 20, "128 MiB"},
		{"reqps", 52.25, "52.2 req/s"},
		{"ops", 1500, "1.5k/s"},
		{"short", 3, "3"},
		{"short", 1234567, "1.23M"},
		{"short", -0.0001, "-0.0001"},
		{"short", math.NaN(), "–"},
	}
	for _, tt := range tests {
		if got := Format(tt.unit, tt.v); got != tt.want {
			t.Errorf("Format(%q, %v) = %q, want %q", tt.unit, tt.v, got, tt.want)
		}
	}
}

func testPage() Page {
	start := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	end := start.Add(10 * time.Minute)
	var ramp, gappy []Point
	for i := 0; i <= 40; i++ {
		ts := start.Add(time.Duration(i) * 15 * time.Second)
		ramp = append(ramp, Point{ts, float64(i) * 2.5})
		v := math.Sin(float64(i) / 5)
		if i > 10 && i < 20 || i == 30 {
			v = math.NaN()
		}
		gappy = append(gappy, Point{ts, v})
	}
	var many []Line
	for i := 0; i < 15; i++ {
		many = append(many, Line{Name: fmt.Sprintf("series %d", i), Points: ramp})
	}
	return Page{
		Title: "test board", Subtitle: "from fake data", Start: start, End: end,
		Rows: []Row{
			{Title: "Numbers", Panels: []Panel{
				{Title: "Requests", Unit: "reqps", Stat: true, Width: 4, Height: 4, Lines: []Line{{Name: "requests", Points: ramp}}},
				{Title: "Replicas", Unit: "short", Stat: true, Width: 4, Height: 4, Lines: []Line{{Name: "api", Points: ramp}, {Name: "consumer", Points: gappy}}},
				{Title: "Excused", Unit: "short", Stat: true, Width: 16, Height: 4, Note: "no scaler target: the autoscaler is not running as a fleet service"},
			}},
			{Title: "Charts", Panels: []Panel{
				{Title: "Ramp and gaps", Unit: "s", Width: 12, Height: 8, Lines: []Line{{Name: "ramp", Points: ramp}, {Name: "gappy", Points: gappy}}},
				{Title: "Many", Unit: "ops", Width: 12, Height: 8, Lines: many},
				{Title: "Empty", Unit: "short", Width: 24, Height: 8},
			}},
		},
	}
}

// TestPNG draws a page of every kind of panel and checks the image: its
// size follows the grid, and every panel has drawn something.
func TestPNG(t *testing.T) {
	var buf bytes.Buffer
	if err := PNG(testPage(), &buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	b := img.Bounds()
	// 1350 pt at 96 dpi; height: header, two row titles, 4 + 16 grid rows.
	wantW := 1800
	wantH := int(math.Ceil(float64(headerH+margin+2*rowTitleH+20*gridRowH) * 96 / 72))
	if b.Dx() != wantW || abs(b.Dy()-wantH) > 1 {
		t.Errorf("image is %dx%d, want %dx%d", b.Dx(), b.Dy(), wantW, wantH)
	}
	// Each panel's area (in pixels, from the top) holds more than one colour.
	px := func(pt float64) int { return int(pt * 96 / 72) }
	top := float64(headerH + rowTitleH)
	for _, area := range []image.Rectangle{
		image.Rect(px(20), px(top+10), px(200), px(top+90)),                                              // Requests
		image.Rect(px(20), px(top+96+float64(rowTitleH)+10), px(600), px(top+96+float64(rowTitleH)+180)), // Ramp and gaps
	} {
		if colours(img, area) < 3 {
			t.Errorf("area %v of the image is nearly blank", area)
		}
	}
	if os.Getenv("KVFLEET_CHART_OUT") != "" {
		if err := os.WriteFile(os.Getenv("KVFLEET_CHART_OUT"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func colours(img image.Image, r image.Rectangle) int {
	seen := map[[4]uint32]bool{}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, b, a}] = true
		}
	}
	return len(seen)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
