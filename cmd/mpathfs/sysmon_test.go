package main

import (
	"slices"
	"testing"
)

func TestSysmonEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string // nil: no re-exec
	}{
		{"no GODEBUG", []string{"A=1"}, []string{"A=1", "GODEBUG=" + sysmonSetting}},
		{"empty GODEBUG", []string{"GODEBUG=", "B=2"}, []string{"GODEBUG=" + sysmonSetting, "B=2"}},
		{"other settings kept", []string{"GODEBUG=gctrace=1"}, []string{"GODEBUG=gctrace=1," + sysmonSetting}},
		{"operator's schedtrace wins", []string{"GODEBUG=gctrace=1,schedtrace=0"}, nil},
		{"already re-executed", []string{"GODEBUG=" + sysmonSetting}, nil},
	} {
		got, ok := sysmonEnv(tc.in)
		if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("%s: sysmonEnv(%q) = %q, %v; want %q", tc.name, tc.in, got, ok, tc.want)
		}
	}
}

func TestServingCommand(t *testing.T) {
	for cmd, want := range map[string]bool{"mount": true, "target": true, "demo": true, "ramfs": true,
		"list-subsys": false, "top": false, "resv-report": false, "/etc/mpathfs.toml": false} {
		if servingCommand(cmd) != want {
			t.Errorf("servingCommand(%q) = %v", cmd, !want)
		}
	}
}
