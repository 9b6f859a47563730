package nvme

import "testing"

// Reference §4.4: AEN completion DW0 = type 2:0, info 15:8, LID 23:16.
func TestAsyncEventDW0(t *testing.T) {
	tests := []struct {
		name string
		dw0  uint32
		want AsyncEvent
	}{
		{"NS attribute changed reads the Changed NS list", AENNSChanged, AsyncEvent{AENTypeNotice, AENInfoNSAttr, LogChangedNS}},
		{"ANA change reads the ANA log", AENANAChange, AsyncEvent{AENTypeNotice, AENInfoANAChange, LogANA}},
		{"discovery change reads the discovery log", AENDiscoveryChange, AsyncEvent{AENTypeNotice, AENInfoDiscoveryChange, LogDiscovery}},
		{"reservation log available", 0x00800006, AsyncEvent{AENTypeIOCS, 0, LogResvNotify}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseAsyncEvent(tt.dw0); got != tt.want {
				t.Fatalf("ParseAsyncEvent(%#x) = %+v, want %+v", tt.dw0, got, tt.want)
			}
			if got := tt.want.DW0(); got != tt.dw0 {
				t.Fatalf("DW0() = %#x, want %#x", got, tt.dw0)
			}
		})
	}
}

// Reference §4.3: NSQR 15:0, NCQR 31:16, both 0's based; AEC bits.
func TestFeatureValues(t *testing.T) {
	if got := NumQueues(128); got != 127|127<<16 {
		t.Fatalf("NumQueues(128) = %#x", got)
	}
	if sq, cq := ParseNumQueues(0x0003_0007); sq != 8 || cq != 4 {
		t.Fatalf("ParseNumQueues = %d %d", sq, cq)
	}
	if AENCfgNSAttr|AENCfgANAChange|AENCfgDiscoveryChange != 0x80000900 {
		t.Fatal("AEC bits wrong")
	}
}

func TestResvNotificationRoundTrip(t *testing.T) {
	n := ResvNotification{Count: 7, Type: ResvNotifyRegPreempt, Available: 2, NSID: 1}
	b := n.AppendBinary(nil)
	if len(b) != ResvNotifyLogSize || b[8] != 1 || b[9] != 2 || b[12] != 1 {
		t.Fatalf("layout % x", b[:16])
	}
	if got, err := ParseResvNotification(b); err != nil || got != n {
		t.Fatalf("ParseResvNotification = %+v, %v", got, err)
	}
	if _, err := ParseResvNotification(b[:15]); err == nil {
		t.Fatal("short page accepted")
	}
}

func FuzzParseResvNotification(f *testing.F) {
	f.Add(ResvNotification{Count: 1, Type: 3, NSID: 1}.AppendBinary(nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseResvNotification(b)
		if err != nil {
			return
		}
		if got, _ := ParseResvNotification(n.AppendBinary(nil)); got != n {
			t.Fatalf("round trip %+v -> %+v", n, got)
		}
	})
}
