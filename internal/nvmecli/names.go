package nvmecli

import "strconv"

// Kernel object names: nvme-subsysN (subsystem), nvmeX (controller), nvmeSnN (head, S is the
// subsystem instance), nvmeScCnN (path of head nvmeSnN through controller nvmeC).

// number parses a leading run of decimal digits of s.
func number(s string) (v uint32, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, s, false
	}
	n, err := strconv.ParseUint(s[:i], 10, 32)
	if err != nil {
		return 0, s, false
	}
	return uint32(n), s[i:], true
}

func parseSubsysName(s string) (uint32, bool) {
	const p = "nvme-subsys"
	if len(s) <= len(p) || s[:len(p)] != p {
		return 0, false
	}
	n, rest, ok := number(s[len(p):])
	return n, ok && rest == ""
}

func isCtrlName(s string) bool {
	if len(s) <= 4 || s[:4] != "nvme" {
		return false
	}
	_, rest, ok := number(s[4:])
	return ok && rest == ""
}

func parseHeadName(s string) (subsys, nsid uint32, ok bool) {
	if len(s) <= 4 || s[:4] != "nvme" {
		return 0, 0, false
	}
	a, rest, ok := number(s[4:])
	if !ok || len(rest) < 2 || rest[0] != 'n' {
		return 0, 0, false
	}
	b, rest, ok := number(rest[1:])
	return a, b, ok && rest == ""
}

func isHeadName(s string) bool {
	_, _, ok := parseHeadName(s)
	return ok
}

func parsePathName(s string) (subsys, ctrl, nsid uint32, ok bool) {
	if len(s) <= 4 || s[:4] != "nvme" {
		return 0, 0, 0, false
	}
	a, rest, ok := number(s[4:])
	if !ok || len(rest) < 2 || rest[0] != 'c' {
		return 0, 0, 0, false
	}
	b, rest, ok := number(rest[1:])
	if !ok || len(rest) < 2 || rest[0] != 'n' {
		return 0, 0, 0, false
	}
	c, rest, ok := number(rest[1:])
	return a, b, c, ok && rest == ""
}

func isPathName(s string) bool {
	_, _, _, ok := parsePathName(s)
	return ok
}

// naturalLess orders names with embedded numbers numerically: nvme2 < nvme10.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		an, arest, aok := number(a)
		bn, brest, bok := number(b)
		switch {
		case aok && bok:
			if an != bn {
				return an < bn
			}
			a, b = arest, brest
		case a[0] != b[0]:
			return a[0] < b[0]
		default:
			a, b = a[1:], b[1:]
		}
	}
	return len(a) < len(b)
}
