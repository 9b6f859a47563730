package top

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Rates are per-second figures over an interval.
type Rates struct {
	IOPS      float64 `json:"iops"`
	ReadIOPS  float64 `json:"read_iops"`
	WriteIOPS float64 `json:"write_iops"`
	// LatencyMs is the mean completion time of the I/Os completed in the
	// interval (stat ticks / I/Os); 0 without I/O.
	LatencyMs    float64 `json:"latency_ms"`
	BytesPerSec  float64 `json:"bandwidth_bytes_per_sec"`
	ReadBytesPS  float64 `json:"read_bytes_per_sec"`
	WriteBytesPS float64 `json:"write_bytes_per_sec"`
}

func rates(a, b Stat, dt float64) Rates {
	if dt <= 0 {
		return Rates{}
	}
	d := func(x, y uint64) float64 {
		if y < x { // counter reset (object re-created)
			return 0
		}
		return float64(y - x)
	}
	rio, wio := d(a.ReadIOs, b.ReadIOs), d(a.WriteIOs, b.WriteIOs)
	rs, ws := d(a.ReadSectors, b.ReadSectors)*512, d(a.WriteSectors, b.WriteSectors)*512
	r := Rates{IOPS: (rio + wio) / dt, ReadIOPS: rio / dt, WriteIOPS: wio / dt,
		BytesPerSec: (rs + ws) / dt, ReadBytesPS: rs / dt, WriteBytesPS: ws / dt}
	if n := rio + wio; n > 0 {
		r.LatencyMs = (d(a.ReadTicksMs, b.ReadTicksMs) + d(a.WriteTicksMs, b.WriteTicksMs)) / n
	}
	return r
}

// View is what top shows: counters of the latest reading, rates over the
// interval since the previous one.
type View struct {
	Time        time.Time  `json:"time"`
	IntervalSec float64    `json:"interval_sec"`
	Controllers []CtrlView `json:"controllers"`
	Paths       []PathView `json:"paths"`
	Namespaces  []NSView   `json:"namespaces"`
}

// CtrlView is one controller row.
type CtrlView struct {
	Name       string  `json:"name"`
	Subsystem  string  `json:"subsystem"`
	State      string  `json:"state"`
	Transport  string  `json:"transport"`
	Address    string  `json:"address"`
	Resets     *uint64 `json:"resets"`
	Reconnects *uint64 `json:"reconnects"`
	Errors     *uint64 `json:"errors"`
	Rates
}

// PathView is one path row; Share is its part of its namespace's I/O in
// the interval (0..1).
type PathView struct {
	Name       string  `json:"name"`
	Namespace  string  `json:"namespace"`
	Controller string  `json:"controller"`
	ANAState   string  `json:"ana_state"`
	Retries    *uint64 `json:"retries"`
	Failovers  *uint64 `json:"failovers"`
	Errors     *uint64 `json:"errors"`
	Share      float64 `json:"share"`
	Rates
}

// NSView is one namespace row.
type NSView struct {
	Name      string `json:"name"`
	Subsystem string `json:"subsystem"`
	InFlight  uint64 `json:"inflight"`
	Rates
}

// Compute builds the view of cur with rates since prev (nil: no rates).
func Compute(prev, cur *Reading) *View {
	v := &View{Time: cur.Time}
	dt := 0.0
	if prev != nil {
		dt = cur.Time.Sub(prev.Time).Seconds()
		v.IntervalSec = dt
	}
	ctrlPrev, pathPrev, nsPrev := map[string]Stat{}, map[string]Stat{}, map[string]Stat{}
	if prev != nil {
		for _, c := range prev.Controllers {
			ctrlPrev[c.Name] = c.Stat
		}
		for _, p := range prev.Paths {
			pathPrev[p.Name] = p.Stat
		}
		for _, n := range prev.Namespaces {
			nsPrev[n.Name] = n.Stat
		}
	}
	rate := func(m map[string]Stat, name string, s Stat) Rates {
		a, ok := m[name]
		if !ok {
			return Rates{}
		}
		return rates(a, s, dt)
	}
	for _, c := range cur.Controllers {
		v.Controllers = append(v.Controllers, CtrlView{Name: c.Name, Subsystem: c.Subsystem, State: c.State, Transport: c.Transport,
			Address: c.Address, Resets: c.Resets, Reconnects: c.Reconnects, Errors: c.Errors, Rates: rate(ctrlPrev, c.Name, c.Stat)})
	}
	nsIOPS := map[string]float64{}
	for _, p := range cur.Paths {
		pv := PathView{Name: p.Name, Namespace: p.Namespace, Controller: p.Controller, ANAState: p.ANAState,
			Retries: p.Retries, Failovers: p.Failovers, Errors: p.Errors, Rates: rate(pathPrev, p.Name, p.Stat)}
		nsIOPS[p.Namespace] += pv.IOPS
		v.Paths = append(v.Paths, pv)
	}
	for i := range v.Paths {
		if t := nsIOPS[v.Paths[i].Namespace]; t > 0 {
			v.Paths[i].Share = v.Paths[i].IOPS / t
		}
	}
	for _, n := range cur.Namespaces {
		v.Namespaces = append(v.Namespaces, NSView{Name: n.Name, Subsystem: n.Subsystem, InFlight: n.Stat.InFlight, Rates: rate(nsPrev, n.Name, n.Stat)})
	}
	return v
}

// WriteJSON writes v as one JSON document.
func (v *View) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func count(p *uint64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func mb(bps float64) string { return fmt.Sprintf("%.1f", bps/1e6) }

// WriteText renders v as top's screen: a header, then the controller,
// path and namespace tables.
func (v *View) WriteText(w io.Writer, title string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "mpathfs top - %s - %s - interval %.1fs - q quits\n\n", title, v.Time.Format("15:04:05"), v.IntervalSec)
	fmt.Fprintf(&b, "%-8s %-14s %-11s %-7s %-7s %-7s %9s %8s %8s  %s\n",
		"CTRL", "SUBSYSTEM", "STATE", "RESETS", "RECONN", "ERRORS", "IOPS", "LAT(ms)", "MB/s", "ADDRESS")
	for _, c := range v.Controllers {
		fmt.Fprintf(&b, "%-8s %-14s %-11s %-7s %-7s %-7s %9.0f %8.2f %8s  %s %s\n",
			c.Name, c.Subsystem, c.State, count(c.Resets), count(c.Reconnects), count(c.Errors), c.IOPS, c.LatencyMs, mb(c.BytesPerSec), c.Transport, c.Address)
	}
	fmt.Fprintf(&b, "\n%-11s %-9s %-6s %-15s %-7s %-9s %-7s %9s %8s %6s\n",
		"PATH", "NS", "CTRL", "ANA", "RETRIES", "FAILOVERS", "ERRORS", "IOPS", "LAT(ms)", "SHARE")
	for _, p := range v.Paths {
		ana := p.ANAState
		if ana == "" {
			ana = "-"
		}
		fmt.Fprintf(&b, "%-11s %-9s %-6s %-15s %-7s %-9s %-7s %9.0f %8.2f %5.0f%%\n",
			p.Name, p.Namespace, p.Controller, ana, count(p.Retries), count(p.Failovers), count(p.Errors), p.IOPS, p.LatencyMs, 100*p.Share)
	}
	fmt.Fprintf(&b, "\n%-9s %-14s %9s %9s %9s %8s %8s %8s\n", "NS", "SUBSYSTEM", "IOPS", "READ/s", "WRITE/s", "LAT(ms)", "MB/s", "INFLIGHT")
	for _, n := range v.Namespaces {
		fmt.Fprintf(&b, "%-9s %-14s %9.0f %9.0f %9.0f %8.2f %8s %8d\n",
			n.Name, n.Subsystem, n.IOPS, n.ReadIOPS, n.WriteIOPS, n.LatencyMs, mb(n.BytesPerSec), n.InFlight)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
