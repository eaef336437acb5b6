// Package report turns the JSON results of one run of the project's
// tools (the fleet benchmark, the chaos suite, the autoscaling test, the
// end-to-end suite, the reference systems and the machine description,
// all under docs/report/) into the test report: PNG charts drawn with
// gonum/plot and docs/report.md rendered from an embedded template.
// Every number in the document comes from those files; a section whose
// input is missing says so.
package report
