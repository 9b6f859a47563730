package nvmecli

import (
	"errors"
	"fmt"
	"strings"
)

// AddressField is one key=value field of a controller's sysfs address.
type AddressField struct {
	Key, Value string
}

// Address is a parsed sysfs address, fields in the order the kernel printed them
// ("traddr=<a>,trsvcid=<p>[,host_traddr=<h>][,host_iface=<if>][,src_addr=<ip>]").
type Address []AddressField

// ErrBadAddress is wrapped by ParseAddress errors.
var ErrBadAddress = errors.New("bad controller address")

// ParseAddress splits a sysfs address on ',' and then on the first '=' of each field; the
// order and presence of fields are not assumed. Empty fields (",,") are skipped, as libnvme's
// strtok does. The file's one trailing newline is dropped; any other newline
// (the kernel never prints one inside the address), a field without '=' or
// with an empty key is an error.
func ParseAddress(s string) (Address, error) {
	var a Address
	s = strings.TrimSuffix(s, "\n")
	if strings.ContainsRune(s, '\n') {
		return nil, fmt.Errorf("nvmecli: newline inside %q: %w", s, ErrBadAddress)
	}
	for _, f := range strings.Split(s, ",") {
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("nvmecli: field %q of %q: %w", f, s, ErrBadAddress)
		}
		a = append(a, AddressField{Key: k, Value: v})
	}
	return a, nil
}

// Get returns the value of the first field named key and whether it was present.
func (a Address) Get(key string) (string, bool) {
	for _, f := range a {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// String formats a the way the kernel does: fields joined with ','.
func (a Address) String() string {
	var b strings.Builder
	for i, f := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f.Key)
		b.WriteByte('=')
		b.WriteString(f.Value)
	}
	return b.String()
}
