package auth

import (
	"bytes"
	"testing"
)

// FuzzParse: any bytes either fail to parse or parse into a message whose
// wire form parses to the same message.
func FuzzParse(f *testing.F) {
	f.Add((&Negotiate{TID: 1, Hashes: Hashes, Groups: DHGroups}).Marshal())
	f.Add((&Challenge{TID: 2, Hash: SHA256, Group: FFDHE2048, Seq: 3, C: make([]byte, 32), DHV: make([]byte, 256)}).Marshal())
	f.Add((&Reply{TID: 3, Response: make([]byte, 48), C2: make([]byte, 48), Seq: 4, DHV: []byte{1, 2, 3}}).Marshal())
	f.Add((&Success1{TID: 4, HL: 64, Response: make([]byte, 64)}).Marshal())
	f.Add((&Success2{TID: 5}).Marshal())
	f.Add((&Failure{ID: IDFailure1, TID: 6, Reason: 1, Explanation: 7}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		w := m.(interface{ Marshal() []byte }).Marshal()
		m2, err := Parse(w)
		if err != nil {
			t.Fatalf("re-parse of %x: %v", w, err)
		}
		if w2 := m2.(interface{ Marshal() []byte }).Marshal(); !bytes.Equal(w, w2) {
			t.Fatalf("unstable: %x then %x", w, w2)
		}
	})
}

// FuzzParseKey: the parser never panics and accepts only keys whose text
// it keeps verbatim with a secret of a valid length.
func FuzzParseKey(f *testing.F) {
	f.Add(testKey)
	f.Add(testKey2)
	f.Add(testOther)
	f.Add("DHHC-1:00:AAAA:")
	f.Add("DHHC-1:99:" + testKey[10:])
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		if n := k.Len(); n != 32 && n != 48 && n != 64 {
			t.Fatalf("secret of %d bytes", n)
		}
		if k2, err := ParseKey(k.Text()); err != nil || !k2.Equal(k) {
			t.Fatalf("text does not round trip: %v", err)
		}
	})
}

// FuzzController feeds arbitrary AUTH_Send payloads, each followed by an
// AUTH_Receive, into the controller state machine: it never panics and
// never counts a host as authenticated without the key.
func FuzzController(f *testing.F) {
	neg := (&Negotiate{TID: 1, Hashes: Hashes, Groups: DHGroups}).Marshal()
	f.Add(neg, (&Reply{TID: 1, Response: make([]byte, 32)}).Marshal(), (&Success2{TID: 1}).Marshal())
	f.Add(neg, (&Failure{ID: IDFailure2, TID: 1, Reason: 1, Explanation: 1}).Marshal(), []byte{})
	f.Add([]byte{1, 2}, neg, neg)
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		ctl := NewController(CtrlParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), CtrlKey: mustKey(t, testKey2), Hash: SHA256, Group: DHNull})
		for _, m := range [][]byte{a, b, c} {
			ctl.Send(m)
			if ctl.Authenticated() {
				t.Fatal("authenticated without a valid response")
			}
			if _, err := ctl.Receive(ReceiveSize); err != nil {
				t.Fatal(err)
			}
		}
	})
}
