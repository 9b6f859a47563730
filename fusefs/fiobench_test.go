package fusefs_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mpathfs/mpathfs/fusefs"
	"github.com/mpathfs/mpathfs/fusefs/fusefstest"
	"github.com/mpathfs/mpathfs/internal/ramfs"
)

// TestFioBaseline compares fio on a fusefs namespace file over a RAM device
// with fio on the ramfs ceiling, same mount options. It is a measurement, not
// a check: it runs only with MPATHFS_FIO_BENCH=1 (optionally
// MPATHFS_FUSE_READERS=n), e.g.
//
//	MPATHFS_FIO_BENCH=1 go test -run FioBaseline -v ./fusefs/
func TestFioBaseline(t *testing.T) {
	if os.Getenv("MPATHFS_FIO_BENCH") != "1" {
		t.Skip("measurement; set MPATHFS_FIO_BENCH=1 to run")
	}
	requireFUSE(t)
	if _, err := exec.LookPath("fio"); err != nil {
		t.Skipf("fio not installed: %v", err)
	}
	readers, _ := strconv.Atoi(os.Getenv("MPATHFS_FUSE_READERS"))
	opts := fusefs.Options{Readers: readers}
	const size = 256 << 20

	mntR := t.TempDir()
	srvR, err := ramfs.Mount(mntR, size, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer srvR.Unmount()

	mntN := t.TempDir()
	root := fusefs.NewRoot(nil, nil)
	if err := root.AddNamespace("nvme0n1", fusefstest.NewRAM(size, 4096)); err != nil {
		t.Fatal(err)
	}
	srvN, err := fusefs.Mount(mntN, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer srvN.Unmount()

	jobs := []struct {
		name string
		args []string
	}{
		{"seq read 1M qd8", []string{"--rw=read", "--bs=1M", "--iodepth=8"}},
		{"seq write 1M qd8", []string{"--rw=write", "--bs=1M", "--iodepth=8"}},
		{"rand read 4k qd32", []string{"--rw=randread", "--bs=4k", "--iodepth=32"}},
		{"rand write 4k qd32", []string{"--rw=randwrite", "--bs=4k", "--iodepth=32"}},
	}
	for _, j := range jobs {
		r := fio(t, filepath.Join(mntR, ramfs.FileName), j.args)
		n := fio(t, filepath.Join(mntN, "nvme0n1"), j.args)
		t.Logf("%-20s ramfs %8.0f IOPS %7.1f MiB/s | fusefs+RAM %8.0f IOPS %7.1f MiB/s | ratio %.2f",
			j.name, r.iops, r.mibs, n.iops, n.mibs, n.iops/r.iops)
	}
}

type fioResult struct{ iops, mibs float64 }

func fio(t *testing.T, file string, args []string) fioResult {
	t.Helper()
	all := append([]string{"--name=b", "--filename=" + file, "--ioengine=libaio", "--direct=1",
		"--size=256M", "--runtime=5", "--time_based", "--output-format=json"}, args...)
	out, err := exec.Command("fio", all...).Output()
	if err != nil {
		t.Fatalf("fio %v: %v", args, err)
	}
	var res struct {
		Jobs []struct {
			Read, Write struct {
				IOPS float64 `json:"iops"`
				BW   float64 `json:"bw"` // KiB/s
			}
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Jobs) != 1 {
		t.Fatalf("fio output: %v\n%s", err, out)
	}
	j := res.Jobs[0]
	r := fioResult{iops: j.Read.IOPS + j.Write.IOPS, mibs: (j.Read.BW + j.Write.BW) / 1024}
	if r.iops == 0 {
		t.Fatal(fmt.Sprintf("fio %v did no I/O", args))
	}
	return r
}
