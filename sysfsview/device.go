package sysfsview

import (
	"fmt"
	"syscall"
)

// Device is a file whose every open descriptor carries its own state, like a
// misc character device: dev/nvme-fabrics takes an option string by write(2)
// and answers on the same descriptor by read(2).
type Device struct {
	Name string
	Mode uint32 // permission bits
	// Open starts the state of one open descriptor.
	Open func() DeviceSession

	ino uint64
}

// Ino implements Node.
func (d *Device) Ino() uint64 { return d.ino }
func (d *Device) node()       {}

// DeviceSession is one open descriptor of a Device. Its methods are called
// one at a time.
type DeviceSession interface {
	// Write receives one write(2) buffer. An error with an Errno() method
	// gives the errno.
	Write(p []byte) error
	// Show is the content a read from offset 0 sees (the seq_file show).
	Show() (string, error)
}

// AddDevice adds dev/<name>.
func (t *Tree) AddDevice(name string, mode uint32, open func() DeviceSession) error {
	if err := checkName(name); err != nil {
		return err
	}
	d := &Device{Name: name, Mode: mode, Open: open, ino: t.inos.Add(1)}
	if err := t.dev.put(name, d); err != nil {
		return fmt.Errorf("dev/%s: %w", name, syscall.EEXIST)
	}
	return nil
}
