package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"syscall"
)

// response is the DH-HMAC-CHAP response (NVMe Base 2.x §8.3.4.5.4/5):
// HMAC(key, challenge || le32(seq) || le16(tid) || SC_C || role || nqn1 ||
// 0x00 || nqn2), with role "HostHost" (nqn1 = host, nqn2 = subsystem) or
// "Controller" (nqn1 = subsystem, nqn2 = host).
func response(h Hash, key, challenge []byte, seq uint32, tid uint16, scc uint8, role, nqn1, nqn2 string) []byte {
	m := hmac.New(h.New, key)
	m.Write(challenge)
	var b [7]byte
	binary.LittleEndian.PutUint32(b[0:], seq)
	binary.LittleEndian.PutUint16(b[4:], tid)
	b[6] = scc
	m.Write(b[:])
	m.Write([]byte(role))
	m.Write([]byte(nqn1))
	m.Write([]byte{0})
	m.Write([]byte(nqn2))
	return m.Sum(nil)
}

// augment is the augmented challenge: HMAC(H(session key), challenge)
// (nvme_auth_augmented_challenge).
func augment(h Hash, sess, challenge []byte) []byte {
	d := h.New()
	d.Write(sess)
	hk := d.Sum(nil)
	defer zero(hk)
	m := hmac.New(h.New, hk)
	m.Write(challenge)
	return m.Sum(nil)
}

// HostResponse computes the host's response R1 for challenge c1 (already
// augmented when a DH group is in use) with the untransformed key k.
func HostResponse(h Hash, k *Key, c1 []byte, s1 uint32, tid uint16, hostNQN, subNQN string) []byte {
	kt := k.Transform(hostNQN)
	defer zero(kt)
	return response(h, kt, c1, s1, tid, 0, "HostHost", hostNQN, subNQN)
}

// CtrlResponse computes the controller's response R2 for challenge c2
// (already augmented when a DH group is in use) with the controller key k.
func CtrlResponse(h Hash, k *Key, c2 []byte, s2 uint32, tid uint16, hostNQN, subNQN string) []byte {
	kt := k.Transform(subNQN)
	defer zero(kt)
	return response(h, kt, c2, s2, tid, 0, "Controller", subNQN, hostNQN)
}

// SeqNum hands out sequence numbers as nvme_auth_get_seqnum does: a
// random non-zero start, then incrementing, never 0.
type SeqNum struct {
	mu sync.Mutex
	v  uint32
}

// Next returns the next sequence number.
func (s *SeqNum) Next() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.v == 0 {
		var b [4]byte
		for s.v == 0 {
			if _, err := rand.Read(b[:]); err != nil {
				panic(err) // crypto/rand does not fail on Linux
			}
			s.v = binary.LittleEndian.Uint32(b[:])
		}
		return s.v
	}
	s.v++
	if s.v == 0 {
		s.v++
	}
	return s.v
}

// Error is a failed authentication. It unwraps to syscall.EKEYREJECTED,
// the errno Linux reports for it.
type Error struct {
	// Explanation is the failure reason code explanation, sent (Failure2)
	// or received (Failure1).
	Explanation uint8
	// Remote: the controller refused (AUTH_Failure1); else the host did.
	Remote bool
	// Msg says what went wrong, in the kernel's words where it has them.
	Msg string
}

func (e *Error) Error() string {
	if e.Remote {
		return fmt.Sprintf("nvme auth: controller refused authentication: %s (%#02x): %v", ExplanationString(e.Explanation), e.Explanation, syscall.EKEYREJECTED)
	}
	return fmt.Sprintf("nvme auth: %s (%s): %v", e.Msg, ExplanationString(e.Explanation), syscall.EKEYREJECTED)
}

// Unwrap returns syscall.EKEYREJECTED.
func (e *Error) Unwrap() error { return syscall.EKEYREJECTED }

func randBytes(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("nvme auth: random: %w", err)
	}
	return b, nil
}

func orRand(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}
