package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

//go:embed report.md.tmpl
var tmplText string

var tmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"join": strings.Join,
	"list": func(s ...string) []string { return s },
	"table": func(header []string, rows [][]string) map[string]any {
		return map[string]any{"Header": header, "Rows": rows}
	},
	"charts": func(dir string, cs []Chart) map[string]any {
		return map[string]any{"ImgDir": dir, "Charts": cs}
	},
}).Parse(tmplText))

// Options say where the inputs are and where the report goes.
type Options struct {
	Dir      string // the JSON inputs (docs/report)
	Document string // the Markdown report (docs/report.md)
	ImgDir   string // the charts (docs/report/img)
	// README, when set, is a file whose headline block (between the
	// markers below) is replaced with the report's headline figures.
	README string
	Now    time.Time
}

// The README's headline block.
const (
	HeadlineStart = "<!-- report:headline -->"
	HeadlineEnd   = "<!-- /report:headline -->"
)

// Generate reads the inputs, draws the charts and writes the document.
func Generate(o Options) (*Doc, error) {
	in, err := Load(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.ImgDir, 0o755); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	charts, err := DrawCharts(in, o.ImgDir)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(filepath.Dir(o.Document), o.ImgDir)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	doc := Build(in, charts, filepath.ToSlash(rel), o.Now)
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, doc); err != nil {
		return nil, fmt.Errorf("report: render: %w", err)
	}
	if err := os.WriteFile(o.Document, squeeze(buf.Bytes()), 0o644); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if o.README != "" {
		if err := updateHeadline(o.README, doc.Headline); err != nil {
			return doc, err
		}
	}
	return doc, nil
}

// squeeze leaves at most one blank line in a row: the template's
// conditional sections would otherwise leave gaps.
func squeeze(b []byte) []byte {
	for bytes.Contains(b, []byte("\n\n\n")) {
		b = bytes.ReplaceAll(b, []byte("\n\n\n"), []byte("\n\n"))
	}
	return b
}

// updateHeadline replaces the README's headline block with the figures;
// a README without the markers is left alone.
func updateHeadline(path string, lines []string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	s := string(raw)
	i, j := strings.Index(s, HeadlineStart), strings.Index(s, HeadlineEnd)
	if i < 0 || j < i {
		return nil
	}
	var b strings.Builder
	b.WriteString(HeadlineStart + "\n")
	if len(lines) == 0 {
		b.WriteString("(the last report had no figures to quote)\n")
	}
	for _, l := range lines {
		b.WriteString("- " + l + "\n")
	}
	out := s[:i] + b.String() + s[j:]
	if out == s {
		return nil
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
