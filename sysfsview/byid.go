package sysfsview

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// byIDNames are the disk/by-id link names udev's 60-persistent-storage.rules
// give a whole NVMe namespace: nvme-$ID_WWN (the wwid attribute: uuid.…,
// eui.… or nvme.…), nvme-$ID_MODEL_$ID_SERIAL_SHORT and
// nvme-$ID_MODEL_$ID_SERIAL_SHORT_$ID_NSID. The model and serial come from
// the subsystem (ATTRS looks up the parents), trailing blanks trimmed as
// udev trims attribute values; the names are escaped like udev's
// string_escape=replace.
func byIDNames(s SubsystemInfo, h HeadInfo) []string {
	names := []string{"nvme-" + udevEscape(wwid(s, h))}
	model, serial := strings.TrimRight(cstr(s.Model), " \t\n"), strings.TrimRight(cstr(s.Serial), " \t\n")
	if model != "" && serial != "" {
		id := udevEscape(model + "_" + serial)
		names = append(names, "nvme-"+id, "nvme-"+id+"_"+strconv.FormatUint(uint64(h.NSID), 10))
	}
	return names
}

// udevEscape is udev_replace_chars(s, NULL): ASCII letters, digits and
// "#+-.:=@_" and valid UTF-8 sequences stay, any other byte (blanks, '/',
// control characters) becomes '_'.
func udevEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("#+-.:=@_", c) >= 0:
			b.WriteByte(c)
			i++
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n <= 1 {
				b.WriteByte('_')
				i++
				continue
			}
			b.WriteString(s[i : i+n])
			i += n
		default:
			b.WriteByte('_')
			i++
		}
	}
	return b.String()
}

// addByID points the head's by-id links at it. A name several heads claim
// (the model_serial form, shared by every namespace of a subsystem) points
// at the latest, as udev's last event wins; t.mu held.
func (t *Tree) addByID(head string, names []string) {
	for _, n := range names {
		t.byIDClaims[n] = append(t.byIDClaims[n], head)
		t.setByID(n)
	}
}

// removeByID drops the head's claims; a shared name falls back to the
// latest remaining claimant; t.mu held.
func (t *Tree) removeByID(head string, names []string) {
	for _, n := range names {
		cl := t.byIDClaims[n]
		out := cl[:0]
		for _, h := range cl {
			if h != head {
				out = append(out, h)
			}
		}
		if len(out) == 0 {
			delete(t.byIDClaims, n)
		} else {
			t.byIDClaims[n] = out
		}
		t.setByID(n)
	}
}

func (t *Tree) setByID(name string) {
	t.byID.remove(name)
	if cl := t.byIDClaims[name]; len(cl) > 0 {
		_ = t.link(t.byID, name, "../../"+cl[len(cl)-1])
	}
}
