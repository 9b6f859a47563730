// Package sysfsdiff compares an mpathfs tree with the Linux kernel's NVMe
// sysfs tree, file by file: names, modes and values. The kernel side is the
// dump `ctl khost-sysfs` of shared/kernel-target prints (the guest's own
// NVMe/TCP host with native multipath); our side is read from a mounted tree
// with the same format ([Walk]). Both are put in a canonical form that names
// objects by what they are, not by their instance numbers ([Canon]), and
// compared under a list of [Rule]s that say which entries are out of scope
// and which values may differ, each with its reason ([Compare]).
package sysfsdiff

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Entry is one line of a dump.
type Entry struct {
	// Mode is the octal permission ("444", "644", "200", "755" for a
	// directory) or "link".
	Mode string
	// Value is the file content with \\ \n \t \r escaped, "<dir>",
	// "-> target" for a link, "<write-only>" or "<read-error>".
	Value string
}

// Dump maps absolute paths ("/sys/block/nvme0n1/size") to entries;
// directories have a trailing "/".
type Dump map[string]Entry

// Parse reads the khost-sysfs format: "<path>\t<mode>\t<value>" per line.
func Parse(r io.Reader) (Dump, error) {
	d := Dump{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		p, rest, ok1 := strings.Cut(line, "\t")
		mode, value, ok2 := strings.Cut(rest, "\t")
		if !ok1 || !ok2 || !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("line %d: want <path>\\t<mode>\\t<value>: %q", n, line)
		}
		if mode != "link" {
			if _, err := strconv.ParseUint(mode, 8, 32); err != nil {
				return nil, fmt.Errorf("line %d: mode %q: %w", n, mode, err)
			}
		}
		d[p] = Entry{Mode: mode, Value: value}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading dump: %w", err)
	}
	return d, nil
}

// Escape is the dump's value escaping: \\ \n \t \r.
func Escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\t", `\t`, "\r", `\r`).Replace(s)
}

// Walk dumps the tree under root/sys as khost-sysfs does (paths start with
// "/sys"). Links are listed, not followed; a file without read permission
// is "<write-only>"; a file whose read fails is "<read-error>". Files for
// which noRead (if not nil) returns true are listed as "<not-read>": reading
// them would send commands (resv_report).
func Walk(root string, noRead func(path string) bool) (Dump, error) {
	d := Dump{}
	err := filepath.WalkDir(filepath.Join(root, "sys"), func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(p, root)), "/")
		info, err := de.Info()
		if err != nil {
			return err
		}
		perm := fmt.Sprintf("%o", info.Mode().Perm())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			d[rel] = Entry{Mode: "link", Value: "-> " + t}
		case de.IsDir():
			d[rel+"/"] = Entry{Mode: perm, Value: "<dir>"}
		case info.Mode().Perm()&0o444 == 0:
			d[rel] = Entry{Mode: perm, Value: "<write-only>"}
		case noRead != nil && noRead(rel):
			d[rel] = Entry{Mode: perm, Value: "<not-read>"}
		default:
			b, err := os.ReadFile(p)
			v := Escape(string(b))
			if err != nil {
				v = "<read-error>"
			}
			d[rel] = Entry{Mode: perm, Value: v}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walking %s: %w", root, err)
	}
	return d, nil
}
