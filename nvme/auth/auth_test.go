package auth

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

type katFile struct {
	HostNQN string `json:"hostnqn"`
	SubNQN  string `json:"subnqn"`
	Keys    []struct {
		Text          string `json:"text"`
		Hash          Hash   `json:"hash"`
		TransformHost string `json:"transform_host"`
		TransformSub  string `json:"transform_sub"`
		C1, C2        string
		S1, S2        uint32
		TID           uint16 `json:"tid"`
		HostResponse  string `json:"host_response"`
		CtrlResponse  string `json:"ctrl_response"`
		Sess          string `json:"sess"`
		AugC1         string `json:"aug_c1"`
	} `json:"keys"`
	DH []struct {
		Group                   DHGroup
		Priv, Pub, Peer, Shared string
	} `json:"dh"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKnownAnswers checks the key parser, transform, responses, augmented
// challenge and DH against testdata/kat.json, which testdata/kat.py
// computes with Python's hashlib, hmac, zlib and pow.
func TestKnownAnswers(t *testing.T) {
	raw, err := os.ReadFile("testdata/kat.json")
	if err != nil {
		t.Fatal(err)
	}
	if py, err := exec.LookPath("python3"); err == nil {
		out, err := exec.Command(py, "testdata/kat.py").Output()
		if err != nil {
			t.Fatalf("kat.py: %v", err)
		}
		if !bytes.Equal(bytes.TrimSpace(out), bytes.TrimSpace(raw)) {
			t.Fatal("testdata/kat.json is stale: python3 testdata/kat.py > testdata/kat.json")
		}
	}
	var kat katFile
	if err := json.Unmarshal(raw, &kat); err != nil {
		t.Fatal(err)
	}
	for _, v := range kat.Keys {
		k, err := ParseKey(v.Text)
		if err != nil {
			t.Fatalf("ParseKey(%s): %v", v.Text, err)
		}
		if got := hex.EncodeToString(k.Transform(kat.HostNQN)); got != v.TransformHost {
			t.Errorf("%s transform(host) = %s, want %s", v.Text, got, v.TransformHost)
		}
		if got := hex.EncodeToString(k.Transform(kat.SubNQN)); got != v.TransformSub {
			t.Errorf("%s transform(sub) = %s, want %s", v.Text, got, v.TransformSub)
		}
		hr := HostResponse(v.Hash, k, unhex(t, v.C1), v.S1, v.TID, kat.HostNQN, kat.SubNQN)
		if got := hex.EncodeToString(hr); got != v.HostResponse {
			t.Errorf("%s %v host response = %s, want %s", v.Text, v.Hash, got, v.HostResponse)
		}
		cr := CtrlResponse(v.Hash, k, unhex(t, v.C2), v.S2, v.TID, kat.HostNQN, kat.SubNQN)
		if got := hex.EncodeToString(cr); got != v.CtrlResponse {
			t.Errorf("%s %v ctrl response = %s, want %s", v.Text, v.Hash, got, v.CtrlResponse)
		}
		if got := hex.EncodeToString(augment(v.Hash, unhex(t, v.Sess), unhex(t, v.C1))); got != v.AugC1 {
			t.Errorf("%v augmented challenge = %s, want %s", v.Hash, got, v.AugC1)
		}
	}
	for _, v := range kat.DH {
		m, err := v.Group.modulus()
		if err != nil {
			t.Fatal(err)
		}
		k := &dhKey{group: v.Group, m: m, priv: unhex(t, v.Priv)}
		s, err := k.shared(unhex(t, v.Peer))
		if err != nil {
			t.Fatalf("%v: %v", v.Group, err)
		}
		if got := hex.EncodeToString(s); got != v.Shared {
			t.Errorf("%v shared = %s..., want %s...", v.Group, got[:32], v.Shared[:32])
		}
		two := unhex(t, strings.Repeat("0", v.Group.Size()*2-2)+"02")
		p, _ := k.shared(two)
		if got := hex.EncodeToString(p); got != v.Pub {
			t.Errorf("%v public = %s..., want %s...", v.Group, got[:32], v.Pub[:32])
		}
	}
}

// TestFFDHEPrimes derives the RFC 7919 primes from the RFC's formula
// p = 2^b - 2^{b-64} + {[2^{b-130} e] + X} * 2^64 - 1 and checks that p and
// (p-1)/2 are primes (Baillie-PSW; (p-1)/2 for ffdhe2048 only, p of
// ffdhe6144 and ffdhe8192 with MPATHFS_AUTH_PRIMES=1).
func TestFFDHEPrimes(t *testing.T) {
	xs := map[DHGroup]int64{FFDHE2048: 560316, FFDHE3072: 2625351, FFDHE4096: 5736041, FFDHE6144: 15705020, FFDHE8192: 10965728}
	for _, g := range DHGroups[1:] {
		b := uint(g.Size() * 8)
		// floor(2^(b-130) * e) from the series sum 1/k!, with 64 guard bits.
		one := new(big.Int).Lsh(big.NewInt(1), b-130+64)
		sum, term := new(big.Int), new(big.Int).Set(one)
		for k := int64(1); term.Sign() > 0; k++ {
			sum.Add(sum, term)
			term.Quo(term, big.NewInt(k))
		}
		sum.Rsh(sum, 64)
		p := new(big.Int).Lsh(big.NewInt(1), b)
		p.Sub(p, new(big.Int).Lsh(big.NewInt(1), b-64))
		sum.Add(sum, big.NewInt(xs[g]))
		p.Add(p, sum.Lsh(sum, 64))
		p.Sub(p, big.NewInt(1))
		if got := p.Text(16); got != ffdhePrimeHex[g-1] {
			t.Errorf("%v: prime differs from the RFC formula", g)
		}
		if g > FFDHE4096 && os.Getenv("MPATHFS_AUTH_PRIMES") == "" {
			continue // seconds each under -race; ffdhe8192 is checked against Linux in the interop tests
		}
		if !p.ProbablyPrime(0) {
			t.Errorf("%v: not a prime", g)
		}
		// (p-1)/2 too for the smallest group; the larger ones take
		// seconds each and a wrong X already fails the check of p.
		if q := new(big.Int).Rsh(p, 1); g == FFDHE2048 && !q.ProbablyPrime(0) {
			t.Errorf("%v: not a safe prime", g)
		}
	}
}

func TestParseKey(t *testing.T) {
	good := "DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:"
	k, err := ParseKey(good)
	if err != nil || k.Len() != 32 || k.Text() != good || strings.Contains(k.String(), "AAcO") {
		t.Fatalf("ParseKey = %v, %v", k, err)
	}
	if _, err := ParseKey(strings.TrimSuffix(good, ":")); err != nil {
		t.Errorf("without trailing colon: %v", err)
	}
	bad := []byte(good)
	bad[12] ^= 1 // flips a secret bit: CRC mismatch
	if _, err := ParseKey(string(bad)); !errors.Is(err, syscall.EKEYREJECTED) {
		t.Errorf("corrupted key: %v, want EKEYREJECTED", err)
	}
	for _, s := range []string{"", "DHHC-1", "DHHC-2:00:" + good[10:], "DHHC-1:04:" + good[10:], "DHHC-1:0a:" + good[10:],
		"DHHC-1:00:AAAA:", "DHHC-1:00:!!!!:", good + "x"} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
}

// TestNvmeCliKeys parses keys from Debian's nvme gen-dhchap-key, the
// independent source of DHHC-1 secrets.
func TestNvmeCliKeys(t *testing.T) {
	nvme, err := exec.LookPath("nvme")
	if err != nil {
		t.Skip("nvme-cli not installed")
	}
	for _, args := range [][]string{{"-m", "0"}, {"-m", "1"}, {"-m", "2"}, {"-m", "3"}, {"-m", "0", "-l", "48"}, {"-m", "0", "-l", "64"}} {
		out, err := exec.Command(nvme, append([]string{"gen-dhchap-key", "--nqn", "nqn.2014-08.org.nvmexpress:uuid:x"}, args...)...).Output()
		if err != nil {
			t.Fatalf("nvme gen-dhchap-key %v: %v", args, err)
		}
		s := strings.TrimSpace(string(out))
		k, err := ParseKey(s)
		if err != nil {
			t.Fatalf("ParseKey(nvme gen-dhchap-key %v): %v", args, err)
		}
		if want := "DHHC-1:0" + args[1] + ":"; !strings.HasPrefix(s, want) || int(k.TransformHash()) != int(args[1][0]-'0') {
			t.Errorf("%s: transform %v", s, k.TransformHash())
		}
	}
}

// memTransport connects a host run to a Controller in memory.
type memTransport struct {
	c      *Controller
	tamper func(b []byte) // applied to what the controller sends
	sent   [][]byte
}

func (m *memTransport) Send(_ context.Context, b []byte) error {
	m.sent = append(m.sent, b)
	m.c.Send(b)
	return nil
}

func (m *memTransport) Receive(_ context.Context, n int) ([]byte, error) {
	b, err := m.c.Receive(n)
	if err == nil && m.tamper != nil {
		m.tamper(b)
	}
	return b, err
}

func mustKey(t testing.TB, s string) *Key {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	testHost  = "nqn.2014-08.org.nvmexpress:uuid:6b740000-0000-4000-8000-00000000beef"
	testSub   = "nqn.2026-11.io.example:mpath-test"
	testKey   = "DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:"
	testKey2  = "DHHC-1:01:AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09pl1OOC:"
	testOther = "DHHC-1:03:AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vPDs2cs=:"
)

func TestHostControllerMatrix(t *testing.T) {
	type tc struct {
		h Hash
		g DHGroup
	}
	var cases []tc
	for _, h := range Hashes {
		cases = append(cases, tc{h, DHNull}, tc{h, FFDHE2048})
	}
	// The larger groups once each (seconds under -race).
	cases = append(cases, tc{SHA384, FFDHE3072}, tc{SHA256, FFDHE4096}, tc{SHA384, FFDHE6144}, tc{SHA512, FFDHE8192})
	for _, x := range cases {
		h, g := x.h, x.g
		{
			for _, bi := range []bool{false, true} {
				if g > FFDHE2048 && !bi {
					continue
				}
				c := NewController(CtrlParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), Hash: h, Group: g})
				hp := HostParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), TID: 7}
				if bi {
					c.p.CtrlKey = mustKey(t, testKey2)
					hp.CtrlKey = mustKey(t, testKey2)
				}
				res, err := Authenticate(context.Background(), &memTransport{c: c}, hp)
				if err != nil {
					t.Fatalf("%v %v bi=%v: %v", h, g, bi, err)
				}
				if res.Hash != h || res.Group != g || res.Bidirectional != bi || !c.Authenticated() || c.Fatal() {
					t.Errorf("%v %v bi=%v: result %+v, controller authenticated %v fatal %v", h, g, bi, res, c.Authenticated(), c.Fatal())
				}
			}
		}
	}
}

func TestWrongKeys(t *testing.T) {
	ctx := context.Background()
	// Wrong host key: the controller answers Failure1 and ends the controller.
	c := NewController(CtrlParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), Hash: SHA256, Group: FFDHE2048})
	_, err := Authenticate(ctx, &memTransport{c: c}, HostParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testOther), TID: 1})
	var ae *Error
	if !errors.As(err, &ae) || !ae.Remote || ae.Explanation != ExplFailed || !errors.Is(err, syscall.EKEYREJECTED) {
		t.Fatalf("wrong host key: %v", err)
	}
	if c.Authenticated() || !c.Fatal() {
		t.Errorf("controller authenticated %v fatal %v", c.Authenticated(), c.Fatal())
	}
	// Wrong controller key on the host: the host refuses with Failure2.
	c = NewController(CtrlParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), CtrlKey: mustKey(t, testOther), Hash: SHA512, Group: DHNull})
	tr := &memTransport{c: c}
	_, err = Authenticate(ctx, tr, HostParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), CtrlKey: mustKey(t, testKey2), TID: 2})
	if !errors.As(err, &ae) || ae.Remote || !strings.Contains(err.Error(), "controller authentication failed") {
		t.Fatalf("wrong ctrl key: %v", err)
	}
	if last := tr.sent[len(tr.sent)-1]; last[1] != IDFailure2 || c.Authenticated() || !c.Fatal() {
		t.Errorf("last message %x, controller authenticated %v fatal %v", last[:8], c.Authenticated(), c.Fatal())
	}
	// A controller that drops RVALID when asked for bidirectional.
	c = NewController(CtrlParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), CtrlKey: mustKey(t, testKey2), Hash: SHA256})
	_, err = Authenticate(ctx, &memTransport{c: c, tamper: func(b []byte) {
		if b[1] == IDSuccess1 {
			b[8] = 0
		}
	}}, HostParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), CtrlKey: mustKey(t, testKey2), TID: 3})
	if err == nil {
		t.Fatal("Success1 without RVALID accepted for bidirectional authentication")
	}
	// A tampered DH value fails the host response check.
	c = NewController(CtrlParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), Hash: SHA256, Group: FFDHE2048})
	_, err = Authenticate(ctx, &memTransport{c: c, tamper: func(b []byte) {
		if b[1] == IDChallenge {
			b[16+32+100] ^= 1
		}
	}}, HostParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), TID: 4})
	if !errors.As(err, &ae) || !ae.Remote {
		t.Fatalf("tampered DH value: %v", err)
	}
}

func TestControllerOrder(t *testing.T) {
	// A reply before negotiate is an incorrect message and fatal.
	c := NewController(CtrlParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), Hash: SHA256})
	c.Send((&Reply{TID: 1, Response: make([]byte, 32)}).Marshal())
	if !c.Fatal() || c.Authenticated() {
		t.Fatal("reply before negotiate accepted")
	}
	// An unusable negotiate (no known hash) yields Failure1 on receive.
	c = NewController(CtrlParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(t, testKey), Hash: SHA256})
	c.Send((&Negotiate{TID: 9, Hashes: []Hash{9}, Groups: []DHGroup{DHNull}}).Marshal())
	b, err := c.Receive(ReceiveSize)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseFailure(b)
	if err != nil || f.ID != IDFailure1 || f.TID != 9 || f.Explanation != ExplHashUnusable || !c.Fatal() {
		t.Fatalf("failure1 = %+v, %v", f, err)
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	msgs := []interface{ Marshal() []byte }{
		&Negotiate{TID: 1, Hashes: Hashes, Groups: DHGroups},
		&Challenge{TID: 2, Hash: SHA384, Group: FFDHE2048, Seq: 5, C: bytes.Repeat([]byte{1}, 48), DHV: bytes.Repeat([]byte{2}, 256)},
		&Reply{TID: 3, Response: bytes.Repeat([]byte{3}, 32), C2: bytes.Repeat([]byte{4}, 32), Seq: 6, DHV: []byte{5, 6}},
		&Reply{TID: 3, Response: bytes.Repeat([]byte{3}, 32)},
		&Success1{TID: 4, HL: 64, Response: bytes.Repeat([]byte{7}, 64)},
		&Success1{TID: 4, HL: 32},
		&Success2{TID: 5},
		&Failure{ID: IDFailure1, TID: 6, Reason: ReasonFailed, Explanation: ExplFailed},
	}
	for _, m := range msgs {
		b := m.Marshal()
		got, err := Parse(append(b, make([]byte, 10)...)) // trailing padding as AUTH_Receive brings
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !bytes.Equal(got.(interface{ Marshal() []byte }).Marshal(), b) {
			t.Errorf("%T round trip differs", m)
		}
	}
	// Linux's layout: a 72-byte negotiate with ids at 12.. and 42..
	b := msgs[0].Marshal()
	if len(b) != 72 || b[7] != 1 || b[8] != 1 || b[10] != 3 || b[11] != 6 || b[12] != 1 || b[14] != 3 || b[42] != 0 || b[47] != 5 {
		t.Errorf("negotiate layout %x", b)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	for _, g := range DHGroups {
		b.Run(g.String(), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c := NewController(CtrlParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(b, testKey), CtrlKey: mustKey(b, testKey2), Hash: SHA512, Group: g})
				if _, err := Authenticate(context.Background(), &memTransport{c: c}, HostParams{HostNQN: testHost, SubNQN: testSub, Key: mustKey(b, testKey), CtrlKey: mustKey(b, testKey2)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
