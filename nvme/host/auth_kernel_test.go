package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/kttest"
	"github.com/mpathfs/mpathfs/nvme/auth"
)

// genKey runs Debian's nvme gen-dhchap-key, the independent key source.
func genKey(t *testing.T, nqn string, hmac int) *auth.Key {
	t.Helper()
	out, err := exec.Command("nvme", "gen-dhchap-key", "--nqn", nqn, fmt.Sprintf("--hmac=%d", hmac)).Output()
	if err != nil {
		t.Skipf("nvme gen-dhchap-key: %v", err)
	}
	k, err := auth.ParseKey(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKernelTargetAuth: DH-HMAC-CHAP against Linux 7.2's nvmet — the
// matrix of hash × DH group × uni/bidirectional, a read/write on the
// authenticated I/O queues, a reset (new association) re-authenticating,
// and wrong host / controller keys refused with EKEYREJECTED.
func TestKernelTargetAuth(t *testing.T) {
	kt := &kernelTarget{kttest.RequireUnstable(t)}
	hostKey, ctrlKey, other := genKey(t, testHostNQN, 1), genKey(t, testHostNQN, 2), genKey(t, testHostNQN, 3)
	cases := []struct {
		hash  string
		group string
		bi    bool
	}{
		{"hmac(sha256)", "null", false},
		{"hmac(sha256)", "ffdhe2048", false},
		{"hmac(sha256)", "ffdhe2048", true},
		{"hmac(sha384)", "ffdhe3072", true},
		{"hmac(sha512)", "null", true},
		{"hmac(sha512)", "ffdhe8192", false},
		{"hmac(sha512)", "ffdhe8192", true},
	}
	if os.Getenv("MPATHFS_AUTH_ALL_GROUPS") == "1" {
		// Every group once, for timings (about a minute under TCG).
		cases = nil
		for _, g := range []string{"null", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192"} {
			cases = append(cases, struct {
				hash  string
				group string
				bi    bool
			}{"hmac(sha512)", g, true})
		}
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s/bi=%v", tc.hash, tc.group, tc.bi), func(t *testing.T) {
			args := []string{"auth", "on", testHostNQN, hostKey.Text(), "none", tc.hash, tc.group}
			if tc.bi {
				args[4] = ctrlKey.Text()
			}
			kt.ctl(t, args...)
			o := kt.opts(1)
			o.NrIOQueues = 1
			// nvmet's keep-alive timer runs from Connect, and nothing but
			// the authentication messages can reset it before the queue
			// authenticated: ffdhe8192 in the emulated guest takes seconds.
			o.KeepAliveTmo = 10 * time.Second
			o.DHCHAPSecret = hostKey
			if tc.bi {
				o.DHCHAPCtrlSecret = ctrlKey
			}
			start := time.Now()
			c := ktConnect(t, o)
			t.Logf("connect with 2 authentications (admin + 1 I/O queue): %v", time.Since(start))
			ctx0, cancel0 := context.WithTimeout(context.Background(), 30*time.Second)
			start = time.Now()
			if err := c.Reauthenticate(ctx0); err != nil {
				t.Fatalf("re-authentication: %v", err)
			}
			cancel0()
			t.Logf("re-authentication of 2 queues: %v (one: %v)", time.Since(start), time.Since(start)/2)
			data := make([]byte, 4096)
			rand.Read(data)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := c.Write(ctx, 1, 8, data); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(data))
			if err := c.Read(ctx, 1, 8, got); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back: %v", err)
			}
			if tc.group == "ffdhe2048" && tc.bi {
				// A reset is a new association, which nvmet will not admit
				// unauthenticated. Its cntlid may be the old one: nvmet
				// hands out the lowest free ID, and the old controller is
				// often gone by the time the new one connects.
				old := c.cur.Load()
				if err := c.Reset(ctx); err != nil {
					t.Fatalf("reset (re-authenticating): %v", err)
				}
				if c.cur.Load() == old {
					t.Fatal("reset kept the old association")
				}
				if err := c.Read(ctx, 1, 8, got); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("after reset: %v", err)
				}
				if err := c.Reauthenticate(ctx); err != nil {
					t.Fatalf("re-authentication on the live controller: %v", err)
				}
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		kt.ctl(t, "auth", "on", testHostNQN, hostKey.Text(), ctrlKey.Text(), "hmac(sha256)", "ffdhe2048")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for name, keys := range map[string][2]*auth.Key{
			"wrong host key":       {other, nil},
			"wrong ctrl key":       {hostKey, other},
			"no key":               {nil, nil},
			"wrong host, bidirect": {other, ctrlKey},
		} {
			o := kt.opts(1)
			o.DHCHAPSecret, o.DHCHAPCtrlSecret = keys[0], keys[1]
			c, err := Connect(ctx, o, testLogger(t).Named(strings.ReplaceAll(name, " ", "-")), testOpts(WithAdminTimeout(10*time.Second))...)
			if err == nil {
				c.Close(ctx)
				t.Fatalf("%s: connected", name)
			}
			want := syscall.EKEYREJECTED
			if keys[0] == nil {
				want = syscall.ENOKEY
			}
			if !errors.Is(err, want) {
				t.Errorf("%s: %v, want %v", name, err, want)
			}
		}
		// A host the subsystem does not list is refused at Connect.
		o := kt.opts(1)
		o.HostNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000ff"
		if _, err := Connect(ctx, o, testLogger(t), testOpts(WithAdminTimeout(10*time.Second))...); err == nil || !strings.Contains(err.Error(), "0x184") && !strings.Contains(strings.ToLower(err.Error()), "invalid host") {
			t.Errorf("unlisted host: %v", err)
		}
	})
}
