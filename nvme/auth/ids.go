package auth

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"
)

// Hash is a DH-HMAC-CHAP hash function identifier (HashID).
type Hash uint8

// Hash identifiers.
const (
	SHA256 Hash = 1
	SHA384 Hash = 2
	SHA512 Hash = 3
)

// Hashes lists the hash functions in the order a host offers them.
var Hashes = []Hash{SHA256, SHA384, SHA512}

// Valid reports whether h is a known hash function.
func (h Hash) Valid() bool { return h >= SHA256 && h <= SHA512 }

// Size is the digest length in bytes (0 for an unknown identifier).
func (h Hash) Size() int {
	switch h {
	case SHA256:
		return 32
	case SHA384:
		return 48
	case SHA512:
		return 64
	}
	return 0
}

// New returns a new hash.Hash of h; h must be valid.
func (h Hash) New() hash.Hash {
	switch h {
	case SHA384:
		return sha512.New384()
	case SHA512:
		return sha512.New()
	}
	return sha256.New()
}

// String is the kernel's name: "hmac(sha256)".
func (h Hash) String() string {
	switch h {
	case SHA256:
		return "hmac(sha256)"
	case SHA384:
		return "hmac(sha384)"
	case SHA512:
		return "hmac(sha512)"
	}
	return fmt.Sprintf("hmac(unknown %d)", uint8(h))
}

// ParseHash accepts the kernel's names ("hmac(sha256)") and the bare digest
// names ("sha256").
func ParseHash(s string) (Hash, error) {
	switch strings.TrimSpace(s) {
	case "hmac(sha256)", "sha256", "SHA-256":
		return SHA256, nil
	case "hmac(sha384)", "sha384", "SHA-384":
		return SHA384, nil
	case "hmac(sha512)", "sha512", "SHA-512":
		return SHA512, nil
	}
	return 0, fmt.Errorf("nvme auth: unknown hash %q (hmac(sha256), hmac(sha384), hmac(sha512))", s)
}

// DHGroup is a DH-HMAC-CHAP Diffie-Hellman group identifier (DHgID).
type DHGroup uint8

// DH group identifiers.
const (
	DHNull    DHGroup = 0
	FFDHE2048 DHGroup = 1
	FFDHE3072 DHGroup = 2
	FFDHE4096 DHGroup = 3
	FFDHE6144 DHGroup = 4
	FFDHE8192 DHGroup = 5
)

// DHGroups lists the groups in the order a host offers them.
var DHGroups = []DHGroup{DHNull, FFDHE2048, FFDHE3072, FFDHE4096, FFDHE6144, FFDHE8192}

// Valid reports whether g is a known group.
func (g DHGroup) Valid() bool { return g <= FFDHE8192 }

// String is the kernel's name: "null", "ffdhe2048", ...
func (g DHGroup) String() string {
	switch g {
	case DHNull:
		return "null"
	case FFDHE2048:
		return "ffdhe2048"
	case FFDHE3072:
		return "ffdhe3072"
	case FFDHE4096:
		return "ffdhe4096"
	case FFDHE6144:
		return "ffdhe6144"
	case FFDHE8192:
		return "ffdhe8192"
	}
	return fmt.Sprintf("unknown dhgroup %d", uint8(g))
}

// ParseDHGroup accepts the kernel's names.
func ParseDHGroup(s string) (DHGroup, error) {
	s = strings.TrimSpace(s)
	for _, g := range DHGroups {
		if s == g.String() {
			return g, nil
		}
	}
	return 0, fmt.Errorf("nvme auth: unknown DH group %q (null, ffdhe2048 ... ffdhe8192)", s)
}
