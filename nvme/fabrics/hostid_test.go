package fabrics

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestUUIDFormatAndParse(t *testing.T) {
	u := [16]byte{0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF}
	const s = "12345678-9abc-def0-0123-456789abcdef"
	if got := FormatUUID(u); got != s {
		t.Fatalf("FormatUUID = %q", got)
	}
	for _, in := range []string{s, strings.ToUpper(s)} {
		if got, err := ParseUUID(in); err != nil || got != u {
			t.Fatalf("ParseUUID(%q) = %x, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", s[:35], s + "0", "12345678-9abc-def0-0123_456789abcdef", "g2345678-9abc-def0-0123-456789abcdef", "{12345678-9abc-def0-0123-456789abcdef}"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("ParseUUID(%q) succeeded", bad)
		}
	}
}

func TestNewRandomUUIDIsVersion4(t *testing.T) {
	u, err := NewRandomUUID(bytes.NewReader(bytes.Repeat([]byte{0xFF}, 16)))
	if err != nil {
		t.Fatal(err)
	}
	if u[6]>>4 != 4 || u[8]>>6 != 2 {
		t.Fatalf("version/variant bytes %#x %#x", u[6], u[8])
	}
	if _, err := NewRandomUUID(bytes.NewReader(nil)); err == nil {
		t.Fatal("short random source accepted")
	}
}

func fakeFiles(files map[string]string, fail error) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if fail != nil {
			return nil, fail
		}
		s, ok := files[name]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return []byte(s), nil
	}
}

func TestHostIdentityLikeNvmeCLI(t *testing.T) {
	const id = "f81d4fae-7dec-41d0-a765-00a0c91e6bf6"
	idBytes, _ := ParseUUID(id)
	zeroRand := bytes.NewReader(make([]byte, 16))
	randID, _ := NewRandomUUID(bytes.NewReader(make([]byte, 16)))
	tests := []struct {
		name    string
		files   map[string]string
		wantNQN string
		wantID  [16]byte
	}{
		{"both files, trailing newlines trimmed", map[string]string{HostNQNFile: "nqn.2014-08.org.example:host1\n", HostIDFile: id + "\n"},
			"nqn.2014-08.org.example:host1", idBytes},
		{"hostid derived from a UUID host NQN", map[string]string{HostNQNFile: HostNQNPrefix + id},
			HostNQNPrefix + id, idBytes},
		{"host NQN built from hostid", map[string]string{HostIDFile: id}, HostNQNPrefix + id, idBytes},
		{"neither file: random v4 UUID", nil, HostNQNPrefix + FormatUUID(randID), randID},
		{"non-UUID host NQN without hostid gets a random ID", map[string]string{HostNQNFile: "nqn.2014-08.org.example:host1"},
			"nqn.2014-08.org.example:host1", randID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zeroRand.Reset(make([]byte, 16))
			nqn, got, err := hostIdentity(fakeFiles(tt.files, nil), zeroRand)
			if err != nil || nqn != tt.wantNQN || got != tt.wantID {
				t.Fatalf("= %q %s %v; want %q %s", nqn, FormatUUID(got), err, tt.wantNQN, FormatUUID(tt.wantID))
			}
		})
	}
	if _, _, err := hostIdentity(fakeFiles(map[string]string{HostIDFile: "junk"}, nil), zeroRand); err == nil || !strings.Contains(err.Error(), HostIDFile) {
		t.Errorf("bad hostid file err = %v", err)
	}
	if _, _, err := hostIdentity(fakeFiles(nil, fs.ErrPermission), zeroRand); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("unreadable file err = %v, want wrapped ErrPermission", err)
	}
}

func TestDefaultHostIdentity(t *testing.T) {
	nqn, id, err := DefaultHostIdentity()
	if err != nil {
		t.Skipf("cannot read the host identity files here: %v", err)
	}
	if nqn == "" || id == [16]byte{} {
		t.Fatalf("DefaultHostIdentity = %q %x", nqn, id)
	}
}
