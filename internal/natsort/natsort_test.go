package natsort

import (
	"sort"
	"testing"
)

func TestLess(t *testing.T) {
	in := []string{"nvme10", "nvme2", "nvme0c10n1", "nvme0c2n1", "nvme1", "nvme-subsys0", "nvme99999999999999999999"}
	sort.Slice(in, func(i, j int) bool { return Less(in[i], in[j]) })
	want := []string{"nvme-subsys0", "nvme0c2n1", "nvme0c10n1", "nvme1", "nvme2", "nvme10", "nvme99999999999999999999"}
	for i := range want {
		if in[i] != want[i] {
			t.Fatalf("sorted %q, want %q", in, want)
		}
	}
}
