package nvme

import (
	"syscall"
	"testing"
)

// TestErrnoLikeKernel checks Status.Errno against nvme_error_status +
// blk_status_to_errno for statuses that are easy to get wrong.
func TestErrnoLikeKernel(t *testing.T) {
	for _, tc := range []struct {
		st   Status
		want syscall.Errno
	}{
		{StatusNSWriteProtected, syscall.EIO}, // 0x20: not listed, BLK_STS_IOERR
		{StatusNSWriteProtected | StatusDNR, syscall.EIO},
		{StatusCapacityExceeded, syscall.ENOSPC},
		{StatusLBARange, syscall.EREMOTEIO},
		{StatusInvalidField, syscall.EOPNOTSUPP},
		{StatusReservationConflict, syscall.EBADE},
		{StatusHostPathError, syscall.ENOLINK},
		{StatusWriteFault, syscall.ENODATA},
		{0x182, syscall.ENODATA}, // Attempted Write to Read Only Range: BLK_STS_MEDIUM
	} {
		if got := tc.st.Errno(); got != tc.want {
			t.Errorf("status %#x: errno %v, want %v", uint16(tc.st), got, tc.want)
		}
	}
}
