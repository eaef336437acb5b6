package dashboard

// Shorthands for the boards' definitions.

func q(expr, legend string) Query { return Query{Expr: expr, Legend: legend} }

// series is a time-series panel of the given width, 8 rows high.
func series(title, unit string, width uint32, description string, queries ...Query) Panel {
	return Panel{Title: title, Description: description, Kind: TimeSeries, Unit: unit,
		Width: width, Height: 8, Queries: queries}
}

// number is a stat panel, 4 columns wide and 4 rows high.
func number(title, unit, description string, queries ...Query) Panel {
	return Panel{Title: title, Description: description, Kind: Stat, Unit: unit,
		Width: 4, Height: 4, Queries: queries}
}

// needing marks every panel as needing n.
func needing(n *Need, ps ...Panel) []Panel {
	for i := range ps {
		ps[i].Needs = n
	}
	return ps
}
