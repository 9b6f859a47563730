package nvmecli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mpathfs/mpathfs/nvme"
)

func sampleReport() []byte {
	st := nvme.ReservationStatus{Gen: 5, RType: nvme.ResvWriteExclusiveRegOnly, Regs: []nvme.RegisteredController{
		{CNTLID: 0xffff, Holds: true, RKey: 0xa1, HostID: [16]byte{0xa0, 0x01, 0x02, 0, 0, 0, 0x4a, 0, 0x8a, 0, 0, 0, 0, 0, 0xae, 0x01}},
		{CNTLID: 3, RKey: 0xfedcba9876543210, HostID: [16]byte{0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0x4b, 0xb7, 0x8b, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0x02}},
	}}
	return st.AppendBinary(nil)
}

// TestResvReportMatchesNvmeCLI: Debian's nvme-cli prints the same report
// data (handed to it by an LD_PRELOAD shim answering its passthrough
// Reservation Report) exactly as WriteResvReport does, text and JSON.
func TestResvReportMatchesNvmeCLI(t *testing.T) {
	nvmeBin, err := exec.LookPath("nvme")
	if err != nil {
		t.Skip("no nvme binary (apt-get install nvme-cli)")
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc to build testdata/resvdev.c")
	}
	dir := t.TempDir()
	so := filepath.Join(dir, "resvdev.so")
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-O2", "-o", so, filepath.Join("testdata", "resvdev.c"), "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("building the shim: %v\n%s", err, out)
	}
	data := sampleReport()
	file := filepath.Join(dir, "report")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, json := range []bool{false, true} {
		args := []string{"resv-report", "/dev/nvme0n1", "--eds"}
		if json {
			args = append(args, "-o", "json")
		}
		cmd := exec.Command(nvmeBin, args...)
		cmd.Env = append(os.Environ(), "LD_PRELOAD="+so, "RESV_REPORT="+file)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("nvme %v: %v\n%s", args, err, out)
		}
		var b strings.Builder
		if err := WriteResvReport(&b, data, json); err != nil {
			t.Fatal(err)
		}
		if b.String() != string(out) {
			t.Errorf("json=%v:\nnvme-cli:\n%q\nours:\n%q", json, out, b.String())
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"resv-register", "/dev/nvme0n1", "--nrkey=1"}, ResvRegisterSuccess},
		{[]string{"resv-acquire", "/dev/nvme0n1", "--crkey=1", "--rtype=1"}, ResvAcquireSuccess},
		{[]string{"resv-release", "/dev/nvme0n1", "--crkey=1", "--rtype=1"}, ResvReleaseSuccess},
	} {
		cmd := exec.Command(nvmeBin, tc.args...)
		cmd.Env = append(os.Environ(), "LD_PRELOAD="+so, "RESV_REPORT="+file)
		out, err := cmd.Output()
		if err != nil || string(out) != tc.want+"\n" {
			t.Errorf("nvme %v: %v, %q; want %q", tc.args, err, out, tc.want)
		}
	}
}

func FuzzWriteResvReport(f *testing.F) {
	f.Add(sampleReport())
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		var out strings.Builder
		for _, json := range []bool{false, true} {
			if err := WriteResvReport(&out, b, json); (err == nil) != (len(b) >= 64) {
				t.Fatalf("%d bytes: %v", len(b), err)
			}
		}
	})
}
