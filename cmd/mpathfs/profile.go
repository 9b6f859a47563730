package main

import (
	"os"
	"runtime/pprof"
)

// startProfile writes a CPU profile to $MPATHFS_CPUPROFILE until the
// returned stop is called (for performance work; off by default).
func startProfile() (stop func()) {
	path := os.Getenv("MPATHFS_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
