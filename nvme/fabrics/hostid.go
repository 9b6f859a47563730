package fabrics

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Files nvme-cli and libnvme keep the host identity in.
const (
	HostNQNFile = "/etc/nvme/hostnqn"
	HostIDFile  = "/etc/nvme/hostid"
)

// HostNQNPrefix is the prefix of a UUID-based host NQN.
const HostNQNPrefix = "nqn.2014-08.org.nvmexpress:uuid:"

// FormatUUID formats u as a 36-character lowercase UUID string
// (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), as Linux's %pU does.
func FormatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// ParseUUID parses the 36-character form FormatUUID writes (hex digits in
// either case), like Linux's uuid_parse.
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("invalid UUID %q: want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	compact := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(u[:], []byte(compact)); err != nil {
		return [16]byte{}, fmt.Errorf("invalid UUID %q: %w", s, err)
	}
	return u, nil
}

// NewRandomUUID returns a random (version 4) UUID read from r.
func NewRandomUUID(r io.Reader) ([16]byte, error) {
	var u [16]byte
	if _, err := io.ReadFull(r, u[:]); err != nil {
		return [16]byte{}, fmt.Errorf("random UUID: %w", err)
	}
	u[6] = u[6]&0x0F | 0x40
	u[8] = u[8]&0x3F | 0x80
	return u, nil
}

// HostNQNFromUUID returns the UUID-based host NQN for id.
func HostNQNFromUUID(id [16]byte) string { return HostNQNPrefix + FormatUUID(id) }

// DefaultHostIdentity returns the host NQN and host ID the way nvme-cli
// finds them: /etc/nvme/hostnqn and /etc/nvme/hostid if present; a missing
// host ID is taken from a UUID-based host NQN, and a missing host NQN is
// built from the host ID. With neither file it generates a random v4 UUID
// (crypto/rand) and "nqn.2014-08.org.nvmexpress:uuid:<uuid>". Nothing is
// written to disk.
func DefaultHostIdentity() (nqn string, id [16]byte, err error) {
	return hostIdentity(os.ReadFile, rand.Reader)
}

func hostIdentity(readFile func(string) ([]byte, error), rnd io.Reader) (string, [16]byte, error) {
	var id [16]byte
	read := func(name string) (string, error) {
		b, err := readFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("host identity: %w", err)
		}
		return string(bytes.TrimSpace(b)), nil
	}
	nqn, err := read(HostNQNFile)
	if err != nil {
		return "", id, err
	}
	idStr, err := read(HostIDFile)
	if err != nil {
		return "", id, err
	}
	haveID := false
	if idStr != "" {
		if id, err = ParseUUID(idStr); err != nil {
			return "", [16]byte{}, fmt.Errorf("host identity: %s: %w", HostIDFile, err)
		}
		haveID = true
	} else if i := strings.LastIndex(nqn, ":uuid:"); i >= 0 {
		if u, err := ParseUUID(nqn[i+len(":uuid:"):]); err == nil {
			id, haveID = u, true
		}
	}
	if !haveID {
		if id, err = NewRandomUUID(rnd); err != nil {
			return "", [16]byte{}, fmt.Errorf("host identity: %w", err)
		}
	}
	if nqn == "" {
		nqn = HostNQNFromUUID(id)
	}
	return nqn, id, nil
}
