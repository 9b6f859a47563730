package target

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/kttest"
	"github.com/mpathfs/mpathfs/nvme/auth"
)

// ctlTry runs ctl like k.Ctl but returns a failure instead of failing t.
func ctlTry(k *kttest.Target, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(k.Dir, "ctl"), args...)
	if k.Run != "" {
		cmd.Env = append(os.Environ(), "KT_RUN="+k.Run)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func genKeyText(t *testing.T, nqn string, hmac int) string {
	t.Helper()
	key, err := kttest.GenDHCHAPKey(nqn, hmac)
	if err != nil {
		t.Skip(err)
	}
	return key
}

// TestKernelHostAuth: the Linux 7.2 host (inside the kernel-target VM)
// authenticates to this target over both paths — bidirectional SHA-256 /
// ffdhe2048 and unidirectional SHA-512 / null — reads and writes through
// its multipath device, and is refused with a wrong host or controller
// key.
func TestKernelHostAuth(t *testing.T) {
	k := kttest.RequireUnstable(t)
	hostNQN := strings.TrimSpace(k.Ctl(t, "khost", "hostnqn"))
	t.Cleanup(func() { ctlTry(k, "khost", "disconnect") })
	f := newFixture(t, PortConfig{})
	f.s.SetAllowAnyHost(false)
	f.s.AllowHost(hostNQN)
	_, p1, _ := strings.Cut(f.a1, ":")
	_, p2, _ := strings.Cut(f.a2, ":")
	hk, ck, other := genKeyText(t, hostNQN, 1), genKeyText(t, hostNQN, 0), genKeyText(t, hostNQN, 2)
	type tcase struct {
		hash  auth.Hash
		group auth.DHGroup
		bi    bool
	}
	cases := []tcase{{auth.SHA256, auth.FFDHE2048, true}, {auth.SHA512, auth.DHNull, false}}
	if os.Getenv("MPATHFS_AUTH_ALL_GROUPS") == "1" {
		cases = nil // every group, bidirectional SHA-512, for timings
		for _, g := range auth.DHGroups {
			cases = append(cases, tcase{auth.SHA512, g, true})
		}
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v/%v/bi=%v", tc.hash, tc.group, tc.bi), func(t *testing.T) {
			a := HostAuth{Key: mustKey(t, hk), Hash: tc.hash, Group: tc.group}
			opts := []string{"dhchap_secret=" + hk}
			if tc.bi {
				a.CtrlKey = mustKey(t, ck)
				opts = append(opts, "dhchap_ctrl_secret="+ck)
			}
			f.t.SetHostAuth(hostNQN, a)
			start := time.Now()
			for _, p := range [][2]string{{"10.0.3.2", p1}, {"10.0.4.2", p2}} {
				out, err := ctlTry(k, append([]string{"khost", "connect", p[0], p[1], testNQN}, opts...)...)
				if err != nil || strings.Contains(out, "FAILED") {
					t.Fatalf("khost connect %s:%s: %v\n%s", p[0], p[1], err, out)
				}
			}
			t.Logf("kernel host connected both paths (2 controllers, with their I/O queues, authenticated) in %v", time.Since(start))
			dm := k.Ctl(t, "dmesg", "40")
			if !strings.Contains(dm, fmt.Sprintf("authenticated with hash %v dhgroup %v", tc.hash, tc.group)) {
				t.Errorf("kernel log lacks the authentication:\n%s", dm)
			}
			if tc.bi && !strings.Contains(dm, "controller authenticated") {
				t.Errorf("kernel log lacks the controller authentication:\n%s", dm)
			}
			status := k.Ctl(t, "khost", "status")
			dev := ""
			for _, l := range strings.Split(status, "\n") {
				if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "/dev/nvme") && !strings.Contains(f[0], "c") {
					dev = strings.TrimSuffix(f[0], ":")
					break
				}
			}
			if dev == "" || strings.Count(status, "state=live") != 2 {
				t.Fatalf("kernel host status:\n%s", status)
			}
			if out := k.Ctl(t, "khost", "dd", dev, "4"); !strings.Contains(out, "data verified OK") {
				t.Fatalf("dd: %s", out)
			}
			if tc.bi {
				// Key rotation: the new key here, then the kernel host's
				// sysfs dhchap_secret: it re-authenticates every queue.
				nk := genKeyText(t, hostNQN, 3)
				a.Key = mustKey(t, nk)
				f.t.SetHostAuth(hostNQN, a)
				count := func() int { return strings.Count(k.Ctl(t, "dmesg", "400"), "qid 0: authenticated with hash") }
				before := count()
				k.Ctl(t, "sh", "for c in /sys/class/nvme/nvme*; do echo '"+nk+"' > $c/dhchap_secret; done")
				deadline := time.Now().Add(30 * time.Second)
				for count() < before+2 {
					if time.Now().After(deadline) {
						t.Fatalf("no re-authentication after the key change:\n%s", k.Ctl(t, "dmesg", "30"))
					}
					time.Sleep(500 * time.Millisecond)
				}
				if dm := k.Ctl(t, "dmesg", "30"); strings.Contains(dm, "authentication failed") {
					t.Fatalf("re-authentication failed:\n%s", dm)
				}
				if out := k.Ctl(t, "khost", "dd", dev, "2"); !strings.Contains(out, "data verified OK") {
					t.Fatalf("dd after the key change: %s", out)
				}
			}
			k.Ctl(t, "khost", "disconnect")
		})
	}
	t.Run("refused", func(t *testing.T) {
		f.t.SetHostAuth(hostNQN, HostAuth{Key: mustKey(t, hk), CtrlKey: mustKey(t, ck), Hash: auth.SHA256, Group: auth.FFDHE2048})
		for name, opts := range map[string][]string{
			"wrong host key": {"dhchap_secret=" + other},
			"wrong ctrl key": {"dhchap_secret=" + hk, "dhchap_ctrl_secret=" + other},
		} {
			out, err := ctlTry(k, append([]string{"khost", "connect", "10.0.3.2", p1, testNQN}, opts...)...)
			if err == nil || !strings.Contains(out, "FAILED") {
				t.Errorf("%s: connected:\n%s", name, out)
			}
			ctlTry(k, "khost", "disconnect")
		}
		if n := len(f.s.controllers()); n != 0 {
			t.Errorf("%d controllers left after refused hosts", n)
		}
	})
}
