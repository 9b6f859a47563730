package auth

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"filippo.io/bigmod"
)

// ErrDHValue is a peer's DH public value outside 2..p-2 (or longer than p).
var ErrDHValue = errors.New("nvme auth: invalid DH public value")

// privBytes is the private exponent length per group: at least the
// exponent sizes RFC 7919 §5.2 recommends for each group (225, 275, 325,
// 375 and 400 bits), rounded up to bytes.
var privBytes = [...]int{FFDHE2048 - 1: 29, FFDHE3072 - 1: 35, FFDHE4096 - 1: 41, FFDHE6144 - 1: 47, FFDHE8192 - 1: 50}

// Size is the length in bytes of the group's prime, public values and
// shared secret (0 for the null group).
func (g DHGroup) Size() int {
	if g == DHNull || !g.Valid() {
		return 0
	}
	return len(ffdhePrimeHex[g-1]) / 2
}

func (g DHGroup) modulus() (*bigmod.Modulus, error) {
	if g == DHNull || !g.Valid() {
		return nil, fmt.Errorf("nvme auth: no modulus for DH group %v", g)
	}
	p, err := hex.DecodeString(ffdhePrimeHex[g-1])
	if err != nil {
		return nil, err
	}
	return bigmod.NewModulus(p)
}

// dhKey is one side's ephemeral DH key pair.
type dhKey struct {
	group DHGroup
	m     *bigmod.Modulus
	priv  []byte
	pub   []byte // g^priv mod p, Size() bytes big-endian
}

// newDHKey draws a private exponent from rand and computes 2^x mod p.
func newDHKey(g DHGroup, rand io.Reader) (*dhKey, error) {
	m, err := g.modulus()
	if err != nil {
		return nil, err
	}
	k := &dhKey{group: g, m: m, priv: make([]byte, privBytes[g-1])}
	for {
		if _, err := io.ReadFull(rand, k.priv); err != nil {
			return nil, fmt.Errorf("nvme auth: DH private key: %w", err)
		}
		if !allZero(k.priv) {
			break
		}
	}
	two, err := bigmod.NewNat().SetBytes([]byte{2}, m)
	if err != nil {
		return nil, err
	}
	k.pub = bigmod.NewNat().Exp(two, k.priv, m).Bytes(m)
	return k, nil
}

// shared is peer^x mod p, left-padded to Size() bytes (what the kernel's
// crypto_kpp_compute_shared_secret writes). The peer value must be in
// 2..p-2: 0, 1 and p-1 would force the result into a subgroup of order
// at most 2.
func (k *dhKey) shared(peer []byte) ([]byte, error) {
	if len(peer) == 0 || len(peer) > k.m.Size() {
		return nil, fmt.Errorf("%w: %d bytes for %v", ErrDHValue, len(peer), k.group)
	}
	y, err := bigmod.NewNat().SetBytes(peer, k.m)
	if err != nil {
		return nil, fmt.Errorf("%w: not below the prime", ErrDHValue)
	}
	if y.IsZero()|y.IsOne()|y.IsMinusOne(k.m) != 0 {
		return nil, fmt.Errorf("%w: 0, 1 or p-1", ErrDHValue)
	}
	return bigmod.NewNat().Exp(y, k.priv, k.m).Bytes(k.m), nil
}

func (k *dhKey) zero() {
	if k != nil {
		zero(k.priv)
	}
}

func allZero(b []byte) bool {
	var v byte
	for _, c := range b {
		v |= c
	}
	return v == 0
}
