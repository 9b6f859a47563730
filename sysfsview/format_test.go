package sysfsview

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestFormatStatMatchesPartStatShow(t *testing.T) {
	t.Parallel()
	got := FormatStat(IOStat{
		ReadIOs: 1, ReadSectors: 8, ReadTicksMs: 3,
		WriteIOs: 123456789, WriteSectors: 987654321, WriteTicksMs: 1<<32 + 5, // %8u truncates to 32 bits
		InFlight: 2, IOTicksMs: 40, TimeInQueueMs: 50,
		DiscardIOs: 6, DiscardSectors: 7, DiscardTicksMs: 8,
		FlushIOs: 9, FlushTicksMs: 10,
	})
	want := "       1        0        8        3 123456789        0 987654321        5        2       40       50        6        0        7        8        9       10\n"
	if got != want {
		t.Fatalf("stat:\n got %q\nwant %q", got, want)
	}
	if n := len(strings.Fields(got)); n != 17 {
		t.Fatalf("stat has %d fields, want 17", n)
	}
}

func TestPrintkFormats(t *testing.T) {
	t.Parallel()
	u := [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	if got, want := formatUUID(u), "12345678-9abc-def0-0123-456789abcdef"; got != want {
		t.Errorf("%%pU = %q, want %q", got, want)
	}
	if got, want := formatHexSpaced([]byte{0x00, 0x25, 0x38, 0xb1, 0x21, 0xaa, 0xbb, 0xcc}), "00 25 38 b1 21 aa bb cc"; got != want {
		t.Errorf("%%8ph = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		nodes []int
		want  string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{0, 1}, "0-1"},
		{[]int{3, 0, 1}, "0-1,3"},
		{[]int{0, 2, 3, 4, 7}, "0,2-4,7"},
	} {
		if got := formatNodeList(tc.nodes); got != tc.want {
			t.Errorf("%%*pbl %v = %q, want %q", tc.nodes, got, tc.want)
		}
	}
}

func TestWWIDPrecedence(t *testing.T) {
	t.Parallel()
	s := SubsystemInfo{VID: 0x1b36, Serial: "ab  \x00", Model: "QEMU NVMe Ctrl                          "}
	uuid := [16]byte{1: 1}
	nguid := [16]byte{15: 2}
	eui := [8]byte{0: 0xaa, 7: 0xbb}
	for _, tc := range []struct {
		name string
		h    HeadInfo
		want string
	}{
		{"uuid first", HeadInfo{NSID: 1, UUID: uuid, NGUID: nguid, EUI64: eui}, "uuid.00010000-0000-0000-0000-000000000000"},
		{"then nguid as 32 hex", HeadInfo{NSID: 1, NGUID: nguid, EUI64: eui}, "eui.00000000000000000000000000000002"},
		{"then eui64 as 16 hex", HeadInfo{NSID: 1, EUI64: eui}, "eui.aa000000000000bb"},
		{"else vid-serial-model-nsid, trimmed", HeadInfo{NSID: 0x11}, "nvme.1b36-6162-51454d55204e564d65204374726c-00000011"},
	} {
		if got := wwid(s, tc.h); got != tc.want {
			t.Errorf("%s: wwid = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSysfsStreq(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"numa", true}, {"numa\n", true}, {"numa\n\n", false}, {"numa ", false}, {" numa", false},
		{"num", false}, {"numa2", false}, {"NUMA", false}, {"", false}, {"\n", false},
	} {
		if got := sysfsStreq(tc.in, "numa"); got != tc.want {
			t.Errorf("sysfs_streq(%q, numa) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestKstrto(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		base int
		want uint64
		err  syscall.Errno
	}{
		{"0", 10, 0, 0},
		{"42\n", 10, 42, 0},
		{"+42", 10, 42, 0},
		{"42\n\n", 10, 0, syscall.EINVAL},
		{" 42", 10, 0, syscall.EINVAL},
		{"42 ", 10, 0, syscall.EINVAL},
		{"", 10, 0, syscall.EINVAL},
		{"\n", 10, 0, syscall.EINVAL},
		{"0x10", 10, 0, syscall.EINVAL},
		{"0x10", 0, 16, 0},
		{"0X1f\n", 0, 31, 0},
		{"010", 0, 8, 0},
		{"09", 0, 0, syscall.EINVAL},
		{"0x", 0, 0, syscall.EINVAL},
		{"18446744073709551615", 10, 1<<64 - 1, 0},
		{"18446744073709551616", 10, 0, syscall.ERANGE},
		{"-1", 10, 0, syscall.EINVAL},
		{"7\x00junk", 10, 7, 0},
	} {
		got, err := kstrtoull(tc.in, tc.base)
		if err != tc.err || got != tc.want {
			t.Errorf("kstrtoull(%q, %d) = %d, %v; want %d, %v", tc.in, tc.base, got, err, tc.want, tc.err)
		}
	}
	if _, err := kstrtouint("4294967296", 10); err != syscall.ERANGE {
		t.Errorf("kstrtouint(2^32) err = %v, want ERANGE", err)
	}
	for _, tc := range []struct {
		in   string
		want int32
		err  syscall.Errno
	}{
		{"-1", -1, 0}, {"-2147483648", -2147483648, 0}, {"2147483647", 2147483647, 0},
		{"2147483648", 0, syscall.ERANGE}, {"-2147483649", 0, syscall.ERANGE},
		{"-+1", 0, syscall.EINVAL}, {"--1", 0, syscall.EINVAL}, {"off", 0, syscall.EINVAL},
	} {
		got, err := kstrtoint(tc.in, 10)
		if err != tc.err || got != tc.want {
			t.Errorf("kstrtoint(%q) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// FuzzKstrtoull checks the kernel-style parser against strconv for base 10 and
// that it never panics.
func FuzzKstrtoull(f *testing.F) {
	for _, s := range []string{"0", "42\n", "+7", "0x1f", "010", "18446744073709551616", "-1", "", "1\x002"} {
		f.Add(s, 0)
		f.Add(s, 10)
	}
	f.Fuzz(func(t *testing.T, s string, base int) {
		if base != 0 && base != 8 && base != 10 && base != 16 {
			base = 10
		}
		v, err := kstrtoull(s, base)
		if base != 10 {
			return
		}
		in := cstr(s)
		in = strings.TrimPrefix(in, "+")
		in = strings.TrimSuffix(in, "\n")
		want, perr := strconv.ParseUint(in, 10, 64)
		valid := in != "" && strings.Trim(in, "0123456789") == ""
		switch {
		case !valid:
			if err == 0 {
				t.Fatalf("kstrtoull(%q) accepted %d", s, v)
			}
		case perr != nil:
			if err != syscall.ERANGE {
				t.Fatalf("kstrtoull(%q) = %v, want ERANGE", s, err)
			}
		case err != 0 || v != want:
			t.Fatalf("kstrtoull(%q) = %d, %v; want %d", s, v, err, want)
		}
	})
}
