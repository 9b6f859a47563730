package sysfsdiff

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Unescape reverses Escape.
func Unescape(s string) string {
	return strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\t`, "\t", `\r`, "\r").Replace(s)
}

// Materialize writes d as a directory tree under root (root/sys/...), so
// that code reading a sysfs tree can be run on a kernel's dump: directories,
// links as links, files with their values and modes ("<write-only>" and
// "<read-error>" files are created empty). A link whose tree the dump
// also lists below it (/sys/block/nvme0n1 and /sys/block/nvme0n1/...)
// becomes that directory.
func Materialize(d Dump, root string) error {
	paths := make([]string, 0, len(d))
	parents := map[string]bool{}
	for p := range d {
		paths = append(paths, p)
		for dir := filepath.Dir(strings.TrimSuffix(p, "/")); dir != "/" && dir != "."; dir = filepath.Dir(dir) {
			parents[dir] = true
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		e := d[p]
		dst := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(p, "/") || parents[p]:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case e.Mode == "link":
			if err := os.Symlink(strings.TrimPrefix(e.Value, "-> "), dst); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		default:
			mode, err := strconv.ParseUint(e.Mode, 8, 32)
			if err != nil {
				return fmt.Errorf("%s: mode %q: %w", p, e.Mode, err)
			}
			v := Unescape(e.Value)
			if e.Value == "<write-only>" || e.Value == "<read-error>" || e.Value == "<not-read>" {
				v = ""
			}
			if err := os.WriteFile(dst, []byte(v), os.FileMode(mode)|0o200); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	return nil
}
