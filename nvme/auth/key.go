package auth

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"syscall"
)

// ErrKeyRejected is a secret whose CRC does not match (the kernel's
// -EKEYREJECTED from nvme_auth_extract_key).
var ErrKeyRejected = fmt.Errorf("nvme auth: key crc mismatch: %w", syscall.EKEYREJECTED)

// ErrKeyFormat is a secret not of the form DHHC-1:hh:base64:.
var ErrKeyFormat = errors.New("nvme auth: invalid secret (want DHHC-1:<hh>:<base64 of 32, 48 or 64 bytes + CRC-32>:)")

// Key is a DH-HMAC-CHAP secret as nvme gen-dhchap-key writes it:
// "DHHC-1:hh:<base64(secret || crc32le(secret))>:", where hh is the hash
// of the key transform (00 none, 01 SHA-256, 02 SHA-384, 03 SHA-512).
// String does not reveal it; Text does (for the sysfs attribute).
type Key struct {
	text      string
	transform Hash // 0: used as is
	secret    []byte
}

// ParseKey parses and checks a secret like nvme_auth_parse_key and
// nvme_auth_extract_key: the hash field, base64 of 36, 52 or 68 bytes, and
// the trailing little-endian CRC-32 (IEEE) of the secret.
func ParseKey(s string) (*Key, error) {
	s = strings.TrimRight(s, "\n")
	const prefix = "DHHC-1:"
	if !strings.HasPrefix(s, prefix) || len(s) < len(prefix)+3 || s[len(prefix)+2] != ':' {
		return nil, ErrKeyFormat
	}
	hh := s[len(prefix) : len(prefix)+2]
	if hh[0] < '0' || hh[0] > '9' || hh[1] < '0' || hh[1] > '9' {
		return nil, ErrKeyFormat
	}
	t := Hash((hh[0]-'0')*10 + hh[1] - '0')
	if t != 0 && !t.Valid() {
		return nil, fmt.Errorf("nvme auth: invalid key transform hash %s: %w", hh, ErrKeyFormat)
	}
	b64 := s[len(prefix)+3:]
	if i := strings.LastIndexByte(b64, ':'); i >= 0 {
		if i != len(b64)-1 {
			return nil, ErrKeyFormat
		}
		b64 = b64[:i]
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("nvme auth: base64 key decoding error: %w", ErrKeyFormat)
	}
	if n := len(raw); n != 36 && n != 52 && n != 68 {
		zero(raw)
		return nil, fmt.Errorf("nvme auth: invalid key len %d: %w", len(raw), ErrKeyFormat)
	}
	n := len(raw) - 4
	if binary.LittleEndian.Uint32(raw[n:]) != crc32.ChecksumIEEE(raw[:n]) {
		zero(raw)
		return nil, ErrKeyRejected
	}
	return &Key{text: s, transform: t, secret: raw[:n:n]}, nil
}

// Text is the secret in DHHC-1 form, as given.
func (k *Key) Text() string { return k.text }

// String hides the secret.
func (k *Key) String() string { return "DHHC-1:<secret>" }

// Len is the secret's length in bytes (32, 48 or 64).
func (k *Key) Len() int { return len(k.secret) }

// TransformHash is the hash of the key transform (0: none).
func (k *Key) TransformHash() Hash { return k.transform }

// Equal compares two keys' secrets in constant time.
func (k *Key) Equal(o *Key) bool {
	if k == nil || o == nil {
		return k == o
	}
	return k.transform == o.transform && hmac.Equal(k.secret, o.secret)
}

// Transform is nvme_auth_transform_key: the secret itself for hash 0,
// else HMAC-hh(secret, nqn || "NVMe-over-Fabrics"). The caller zeroes the
// result after use.
func (k *Key) Transform(nqn string) []byte {
	if k.transform == 0 {
		return append([]byte(nil), k.secret...)
	}
	m := hmac.New(k.transform.New, k.secret)
	m.Write([]byte(nqn))
	m.Write([]byte("NVMe-over-Fabrics"))
	return m.Sum(nil)
}

// Zero overwrites the secret; the Key is unusable afterwards.
func (k *Key) Zero() {
	if k != nil {
		zero(k.secret)
		k.text = ""
	}
}

func zero(b []byte) { clear(b) }
