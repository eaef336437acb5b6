package report

import "fmt"

// RefRow is one bar of the reference chart and one line of its table.
type RefRow struct {
	Name      string
	Fleet     bool // the fleet's own figure, not a reference's
	PerSecond float64
	P50, P99  float64 // ms; 0 when not measured
	Source    string
}

// Reference is section 3.
type Reference struct {
	Section
	Method []string
	Rows   [][]string
	Ratios [][]string
	Notes  []string
}

// referenceRows lists the fleet's closed-loop figures and every
// reference figure measured.
func referenceRows(in *Inputs) []RefRow {
	var rows []RefRow
	if b := in.Bench; b != nil {
		f := b.Fleet
		if p := f.CachedGet; p != nil {
			rows = append(rows, RefRow{"fleet: cached GET", true, p.PerSecond, p.Latency.P50MS, p.Latency.P99MS, "bench.json"})
		}
		if p := f.UncachedGet; p != nil {
			rows = append(rows, RefRow{"fleet: uncached GET", true, p.PerSecond, p.Latency.P50MS, p.Latency.P99MS, "bench.json"})
		}
		if w := f.Writes; w != nil && w.Max != nil {
			rows = append(rows, RefRow{"fleet: PUT accepted", true, w.Max.PerSecond, w.Max.Latency.P50MS, w.Max.Latency.P99MS, "bench.json"})
			if w.Sustained != nil {
				rows = append(rows, RefRow{"fleet: PUT sustained (applied)", true, w.SustainedPerSecond, w.Sustained.Latency.P50MS, w.Sustained.Latency.P99MS, "bench.json, open loop"})
			}
		}
		if bl := f.Backlog; bl != nil && bl.Drained {
			rows = append(rows, RefRow{"fleet: consumers draining a backlog", true, bl.DrainPerSecond, 0, 0, "bench.json"})
		}
		if p := b.Reference.Get; p != nil {
			rows = append(rows, RefRow{"Gin + go-redis GET behind nginx (in Docker)", false, p.PerSecond, p.Latency.P50MS, p.Latency.P99MS, "bench.json"})
		}
		if br := b.Reference.Broker; br != nil {
			rows = append(rows, RefRow{"RabbitMQ confirmed publish (fleet's cluster)", false, br.PublishPerSecond, 0, 0, "bench.json"},
				RefRow{"RabbitMQ drain (fleet's cluster)", false, br.DrainPerSecond, 0, 0, "bench.json"})
		}
	}
	if r := in.Reference; r != nil {
		for _, sys := range r.Systems {
			for _, op := range sys.Ops {
				p := op.Phase
				rows = append(rows, RefRow{fmt.Sprintf("%s %s (loopback)", sys.Name, op.Name), false, p.PerSecond, p.Latency.P50MS, p.Latency.P99MS, "reference.json"})
			}
		}
	}
	return rows
}

func reference(in *Inputs, charts map[string]Chart) Reference {
	var r Reference
	if in.Bench == nil && in.Reference == nil {
		r.Missing = in.Why(FileBench) + "; " + in.Why(FileReference)
		return r
	}
	r.Charts = pick(charts, "reference")
	if in.Reference != nil {
		r.Method = in.Reference.Method
		for _, sys := range in.Reference.Systems {
			if sys.Error != "" {
				r.Notes = append(r.Notes, fmt.Sprintf("%s was not measured: %s", sys.Name, sys.Error))
			}
		}
	} else {
		r.Notes = append(r.Notes, "etcd and Redis were not measured: "+in.Why(FileReference))
	}
	if in.Bench == nil {
		r.Notes = append(r.Notes, "the fleet's figures are missing: "+in.Why(FileBench))
	}
	for _, row := range referenceRows(in) {
		lat := "–"
		if row.P50 > 0 {
			lat = msec(row.P50) + " / " + msec(row.P99)
		}
		name := row.Name
		if row.Fleet {
			name = "**" + name + "**"
		}
		r.Rows = append(r.Rows, []string{name, num(row.PerSecond), lat})
	}
	for _, x := range ratios(in) {
		r.Ratios = append(r.Ratios, []string{x.what, num(x.fleet), x.ref, num(x.refValue), ratio(x.fleet / x.refValue)})
	}
	return r
}

type ratioRow struct {
	what     string
	fleet    float64
	ref      string
	refValue float64
}

// ratios pairs each fleet figure with the reference it is read against.
func ratios(in *Inputs) []ratioRow {
	b := in.Bench
	if b == nil {
		return nil
	}
	var out []ratioRow
	add := func(what string, fleet float64, ref string, refValue float64) {
		if fleet > 0 && refValue > 0 {
			out = append(out, ratioRow{what, fleet, ref, refValue})
		}
	}
	refOp := func(system, op string) float64 {
		if in.Reference == nil {
			return 0
		}
		if o := in.Reference.Find(system, op); o != nil {
			return o.Phase.PerSecond
		}
		return 0
	}
	f := b.Fleet
	var cached, uncached, accepted, sustained float64
	if f.CachedGet != nil {
		cached = f.CachedGet.PerSecond
	}
	if f.UncachedGet != nil {
		uncached = f.UncachedGet.PerSecond
	}
	if f.Writes != nil && f.Writes.Max != nil {
		accepted, sustained = f.Writes.Max.PerSecond, f.Writes.SustainedPerSecond
	}
	if g := b.Reference.Get; g != nil {
		add("cached GET", cached, "Gin + go-redis GET behind nginx", g.PerSecond)
	}
	add("cached GET", cached, "Redis GET", refOp("redis", "get"))
	add("cached GET", cached, "etcd range", refOp("etcd", "range"))
	add("uncached GET (a database read)", uncached, "etcd range", refOp("etcd", "range"))
	add("PUT accepted (durable in a quorum queue)", accepted, "etcd put (durable, one member)", refOp("etcd", "put"))
	add("PUT sustained, accepted and applied", sustained, "etcd put (durable, one member)", refOp("etcd", "put"))
	add("PUT accepted", accepted, "Redis SET (no persistence)", refOp("redis", "set"))
	if br := b.Reference.Broker; br != nil {
		add("PUT accepted", accepted, "RabbitMQ confirmed publish", br.PublishPerSecond)
		if bl := f.Backlog; bl != nil && bl.Drained {
			add("backlog drained by the consumers", bl.DrainPerSecond, "RabbitMQ drain", br.DrainPerSecond)
		}
	}
	return out
}
