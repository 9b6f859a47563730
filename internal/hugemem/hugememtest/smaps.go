// Package hugememtest reads a process's mappings from /proc/PID/smaps, for
// tests that check memory is eligible for, and backed by, huge pages.
package hugememtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Mapping is one VMA of /proc/PID/smaps.
type Mapping struct {
	Start, End  uintptr
	THPEligible bool  // "THPeligible: 1": huge pages may back it
	AnonHugeKB  int64 // "AnonHugePages": how much huge pages do back
}

// Mappings parses /proc/pid/smaps.
func Mappings(pid int) ([]Mapping, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil, err
	}
	var ms []Mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && !strings.HasSuffix(f[0], ":") {
			s, err1 := strconv.ParseUint(lo, 16, 64)
			e, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				ms = append(ms, Mapping{Start: uintptr(s), End: uintptr(e)})
				continue
			}
		}
		if len(ms) == 0 || len(f) < 2 {
			continue
		}
		m := &ms[len(ms)-1]
		switch f[0] {
		case "THPeligible:":
			m.THPEligible = f[1] == "1"
		case "AnonHugePages:":
			m.AnonHugeKB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return ms, sc.Err()
}

// Containing returns the mapping that holds addr.
func Containing(ms []Mapping, addr uintptr) (Mapping, bool) {
	for _, m := range ms {
		if m.Start <= addr && addr < m.End {
			return m, true
		}
	}
	return Mapping{}, false
}

// Holding returns the mapping of process pid that holds addr, failing t
// if there is none.
func Holding(t testing.TB, pid int, addr uintptr) Mapping {
	t.Helper()
	ms, err := Mappings(pid)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := Containing(ms, addr)
	if !ok {
		t.Fatalf("no mapping of process %d holds %#x", pid, addr)
	}
	return m
}

// Enabled reports whether the kernel gives advised memory huge pages
// (transparent_hugepage "always" or "madvise").
func Enabled() bool {
	m := mode()
	return m == "always" || m == "madvise"
}

// Require skips t where advised memory never gets huge pages: there is
// nothing to check then.
func Require(t testing.TB) {
	t.Helper()
	if !Enabled() {
		t.Skipf("transparent huge pages are %q here", mode())
	}
}

// mode is the system's transparent huge page setting ("always", "madvise"
// or "never"), or "" if the kernel has none.
func mode() string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return ""
	}
	for _, w := range strings.Fields(string(b)) {
		if strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]") {
			return strings.Trim(w, "[]")
		}
	}
	return ""
}
