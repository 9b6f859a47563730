// Package metrics exports the attribute tree as Prometheus metrics: the
// NVMe-subsystem collector names of node_exporter (node_nvmesubsystem_*,
// same labels, so its dashboards and alerts work unchanged) and mpathfs_*
// per head, path and controller. The Collector reads, at scrape time, the
// sources behind the tree's stat and diag/ files; nothing is counted per
// I/O for metrics (the latency histograms are mpath's fixed atomic
// buckets).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/sysfsview"
)

// Optional source capabilities; an object whose source lacks one has no
// such series.
type (
	latencySource interface{ Latencies() mpath.Latencies }
	anaCounter    interface{ ANATransitions() uint64 }
	stateCounter  interface{ StateChanges() uint64 }
)

// nodeControllerStates are the state label values node_exporter emits for
// node_nvmesubsystem_path_state.
var nodeControllerStates = []string{"live", "connecting", "resetting", "dead", "unknown"}

// anaStates are the state label values of mpathfs_path_ana_state.
var anaStates = []string{"optimized", "non-optimized", "inaccessible", "persistent-loss", "change"}

// Collector is a prometheus.Collector over a sysfsview.Tree.
type Collector struct {
	tree *sysfsview.Tree

	subsysInfo, nsInfo, paths, pathsLive, pathState *prometheus.Desc

	headIOs, headBytes, headLat, headInflight               *prometheus.Desc
	headRetries, headErrors, headRequeues, headNoPath       *prometheus.Desc
	headFenceWaits, headFenceTime                           *prometheus.Desc
	pathIOs, pathBytes, pathLat, pathInflight               *prometheus.Desc
	pathFailovers, pathRetries, pathErrors, pathANA, pathAT *prometheus.Desc
	ctrlState, ctrlResets, ctrlReconnects, ctrlErrors       *prometheus.Desc
	ctrlStateChanges                                        *prometheus.Desc
}

// New returns a collector reading tree.
func New(tree *sysfsview.Tree) *Collector {
	node := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("node_nvmesubsystem_"+name, help, labels, nil)
	}
	mp := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mpathfs_"+name, help, labels, nil)
	}
	head := []string{"device", "subsystem"}
	headDir := []string{"device", "subsystem", "direction"}
	path := []string{"device", "namespace", "controller"}
	pathDir := []string{"device", "namespace", "controller", "direction"}
	ctrl := []string{"controller", "subsystem"}
	return &Collector{
		tree: tree,

		subsysInfo: node("info", "Non-numeric information about an NVMe subsystem.", "subsystem", "nqn", "model", "serial", "iopolicy"),
		nsInfo:     node("namespace_info", "Maps an NVMe namespace block device to its subsystem.", "subsystem", "device"),
		paths:      node("paths", "Number of controller paths for an NVMe subsystem.", "subsystem"),
		pathsLive:  node("paths_live", "Number of controller paths in live state for an NVMe subsystem.", "subsystem"),
		pathState:  node("path_state", "Current NVMe controller path state (1 for the current state, 0 for all others).", "subsystem", "controller", "transport", "state"),

		headIOs:        mp("head_io_total", "Completed I/O requests of a multipath namespace.", headDir...),
		headBytes:      mp("head_bytes_total", "Bytes transferred by completed requests of a multipath namespace.", headDir...),
		headLat:        mp("head_io_duration_seconds", "Latency of whole requests of a multipath namespace (failovers and waits included).", headDir...),
		headInflight:   mp("head_inflight", "Requests in flight on a multipath namespace (inflight: read = reads and flushes, write = writes and discards).", headDir...),
		headRetries:    mp("head_retries_total", "Commands retried (diag/command_retry_count).", head...),
		headErrors:     mp("head_errors_total", "Commands completed with an error (diag/command_error_count).", head...),
		headRequeues:   mp("head_requeues_total", "I/O queued for lack of a usable path (diag/io_requeue_no_usable_path_count).", head...),
		headNoPath:     mp("head_no_path_failures_total", "I/O failed for lack of any path (diag/io_fail_no_available_path_count).", head...),
		headFenceWaits: mp("head_fence_waits_total", "In-doubt writes that waited for the write fence before being re-sent.", head...),
		headFenceTime:  mp("head_fence_wait_seconds_total", "Time in-doubt writes spent waiting for the write fence.", head...),

		pathIOs:       mp("path_io_total", "Commands completed on a path (one per submission attempt).", pathDir...),
		pathBytes:     mp("path_bytes_total", "Bytes transferred by commands on a path.", pathDir...),
		pathLat:       mp("path_io_duration_seconds", "Latency of commands on a path.", pathDir...),
		pathInflight:  mp("path_inflight", "Commands in flight on a path.", pathDir...),
		pathFailovers: mp("path_failovers_total", "Commands failed over away from this path (diag/multipath_failover_count).", path...),
		pathRetries:   mp("path_retries_total", "Commands retried on this path (diag/command_retry_count).", path...),
		pathErrors:    mp("path_errors_total", "Commands completed with an error on this path (diag/command_error_count).", path...),
		pathANA:       mp("path_ana_state", "ANA state of a path (1 for the current state, 0 for the others).", append(path, "state")...),
		pathAT:        mp("path_ana_transitions_total", "ANA state changes seen on a path.", path...),

		ctrlState:        mp("controller_state", "Controller state (1 for the current state, 0 for the others).", append(ctrl, "state")...),
		ctrlStateChanges: mp("controller_state_changes_total", "Controller state transitions.", ctrl...),
		ctrlResets:       mp("controller_resets_total", "Controller resets (diag/reset_count).", ctrl...),
		ctrlReconnects:   mp("controller_reconnects_total", "Controller reconnects (diag/reconnect_count).", ctrl...),
		ctrlErrors:       mp("controller_errors_total", "Commands completed with an error (diag/command_error_count).", ctrl...),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.subsysInfo, c.nsInfo, c.paths, c.pathsLive, c.pathState,
		c.headIOs, c.headBytes, c.headLat, c.headInflight, c.headRetries, c.headErrors, c.headRequeues, c.headNoPath,
		c.headFenceWaits, c.headFenceTime,
		c.pathIOs, c.pathBytes, c.pathLat, c.pathInflight, c.pathFailovers, c.pathRetries, c.pathErrors, c.pathANA, c.pathAT,
		c.ctrlState, c.ctrlStateChanges, c.ctrlResets, c.ctrlReconnects, c.ctrlErrors,
	} {
		ch <- d
	}
}

func trim(s string) string { return strings.TrimRight(strings.TrimRight(s, "\x00"), " \t\n") }

// nodeState is node_exporter's normalizeControllerState.
func nodeState(s string) string {
	switch s {
	case "live", "connecting", "resetting", "dead", "deleting", "deleting (no IO)", "new":
		return s
	}
	return "unknown"
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	o := c.tree.Objects()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	ctrlsOf := map[string][]sysfsview.ControllerObject{}
	for _, ct := range o.Controllers {
		ctrlsOf[ct.Subsystem] = append(ctrlsOf[ct.Subsystem], ct)
	}
	for _, s := range o.Subsystems {
		gauge(c.subsysInfo, 1, s.Name, s.Info.NQN, trim(s.Info.Model), trim(s.Info.Serial), s.Source.IOPolicy())
		live := 0
		for _, ct := range ctrlsOf[s.Name] {
			st := nodeState(ct.Source.State())
			if st == "live" {
				live++
			}
			for _, v := range nodeControllerStates {
				gauge(c.pathState, b2f(v == st), s.Name, ct.Name, ct.Info.Transport, v)
			}
		}
		gauge(c.paths, float64(len(ctrlsOf[s.Name])), s.Name)
		gauge(c.pathsLive, float64(live), s.Name)
	}
	for _, h := range o.Heads {
		gauge(c.nsInfo, 1, h.Subsystem, h.Name)
		st := h.Source.Stat()
		var lat *mpath.Latencies
		if ls, ok := h.Source.(latencySource); ok {
			l := ls.Latencies()
			lat = &l
		}
		c.io(ch, c.headIOs, c.headBytes, c.headLat, c.headInflight, st, lat, h.Name, h.Subsystem)
		k := h.Source.Counters()
		counter(c.headRetries, float64(k.RetryCount), h.Name, h.Subsystem)
		counter(c.headErrors, float64(k.ErrorCount), h.Name, h.Subsystem)
		counter(c.headRequeues, float64(k.RequeueNoUsablePath), h.Name, h.Subsystem)
		counter(c.headNoPath, float64(k.FailNoAvailablePath), h.Name, h.Subsystem)
		counter(c.headFenceWaits, float64(k.FenceWaits), h.Name, h.Subsystem)
		counter(c.headFenceTime, k.FenceWaitTotal.Seconds(), h.Name, h.Subsystem)
	}
	for _, p := range o.Paths {
		st := p.Source.Stat()
		var lat *mpath.Latencies
		if ls, ok := p.Source.(latencySource); ok {
			l := ls.Latencies()
			lat = &l
		}
		c.io(ch, c.pathIOs, c.pathBytes, c.pathLat, c.pathInflight, st, lat, p.Name, p.Head, p.Controller)
		k := p.Source.Counters()
		counter(c.pathFailovers, float64(k.FailoverCount), p.Name, p.Head, p.Controller)
		counter(c.pathRetries, float64(k.RetryCount), p.Name, p.Head, p.Controller)
		counter(c.pathErrors, float64(k.ErrorCount), p.Name, p.Head, p.Controller)
		if p.Source.UsesANA() {
			cur := p.Source.ANAState()
			for _, v := range anaStates {
				gauge(c.pathANA, b2f(v == cur), p.Name, p.Head, p.Controller, v)
			}
		}
		if a, ok := p.Source.(anaCounter); ok {
			counter(c.pathAT, float64(a.ANATransitions()), p.Name, p.Head, p.Controller)
		}
	}
	for _, ct := range o.Controllers {
		cur := ct.Source.State()
		for _, v := range []string{"new", "live", "resetting", "connecting", "deleting", "deleting (no IO)", "dead"} {
			gauge(c.ctrlState, b2f(v == cur), ct.Name, ct.Subsystem, v)
		}
		k := ct.Source.Counters()
		counter(c.ctrlResets, float64(k.Resets), ct.Name, ct.Subsystem)
		counter(c.ctrlReconnects, float64(k.Reconnects), ct.Name, ct.Subsystem)
		counter(c.ctrlErrors, float64(k.CommandErrors), ct.Name, ct.Subsystem)
		if sc, ok := ct.Source.(stateCounter); ok {
			counter(c.ctrlStateChanges, float64(sc.StateChanges()), ct.Name, ct.Subsystem)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// io emits the per-direction I/O series of one head or path.
func (c *Collector) io(ch chan<- prometheus.Metric, ios, bytes, lat, inflight *prometheus.Desc, st mpath.IOStat, l *mpath.Latencies, labels ...string) {
	with := func(dir string) []string { return append(append([]string(nil), labels...), dir) }
	dirs := []struct {
		name         string
		ios, sectors uint64
		hist         *mpath.LatencyHistogram
	}{
		{"read", st.ReadIOs, st.ReadSectors, nil},
		{"write", st.WriteIOs, st.WriteSectors, nil},
		{"discard", st.DiscardIOs, st.DiscardSectors, nil},
		{"flush", st.FlushIOs, 0, nil},
	}
	if l != nil {
		dirs[0].hist, dirs[1].hist, dirs[2].hist, dirs[3].hist = &l.Read, &l.Write, &l.Discard, &l.Flush
	}
	for _, d := range dirs {
		ch <- prometheus.MustNewConstMetric(ios, prometheus.CounterValue, float64(d.ios), with(d.name)...)
		ch <- prometheus.MustNewConstMetric(bytes, prometheus.CounterValue, float64(d.sectors*512), with(d.name)...)
		if d.hist != nil {
			ch <- histogram(lat, d.hist, with(d.name))
		}
	}
	ch <- prometheus.MustNewConstMetric(inflight, prometheus.GaugeValue, float64(st.InFlightRW[0]), with("read")...)
	ch <- prometheus.MustNewConstMetric(inflight, prometheus.GaugeValue, float64(st.InFlightRW[1]), with("write")...)
}

// histogram turns mpath's buckets (2^i microseconds) into a cumulative
// Prometheus histogram in seconds; the last bucket is +Inf.
func histogram(d *prometheus.Desc, h *mpath.LatencyHistogram, labels []string) prometheus.Metric {
	buckets := make(map[float64]uint64, mpath.NumLatencyBuckets-1)
	var cum uint64
	for i := 0; i < mpath.NumLatencyBuckets-1; i++ {
		cum += h.Buckets[i]
		buckets[mpath.LatencyBucketBound(i).Seconds()] = cum
	}
	cum += h.Buckets[mpath.NumLatencyBuckets-1]
	return prometheus.MustNewConstHistogram(d, cum, h.Sum.Seconds(), buckets, labels...)
}

// Handler serves the tree's metrics and the Go runtime's and process's in
// the Prometheus exposition format.
func Handler(tree *sysfsview.Tree) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(New(tree), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Server is a running /metrics endpoint.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan error
}

// Listen serves /metrics for tree on addr (host:port) until Close.
func Listen(addr string, tree *sysfsview.Tree, log hclog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(tree))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, `mpathfs: metrics at <a href="/metrics">/metrics</a>`)
	})
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, addr: ln.Addr(), done: make(chan error, 1)}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		if err != nil && log != nil {
			log.Error("metrics server stopped", "error", err)
		}
		s.done <- err
	}()
	if log != nil {
		log.Info("serving metrics", "url", "http://"+s.addr.String()+"/metrics")
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops the server.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
