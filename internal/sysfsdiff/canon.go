package sysfsdiff

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Canonical entries are keyed by object and relative path, with every
// object name replaced by what the object is:
//
//	subsys            the subsystem (nvme-subsysN)
//	ctrl1, ctrl2      controllers, numbered in order of their trsvcid
//	head1, head2      multipath heads, by NSID (the kernel numbers heads in
//	                  scan order, so nvme0n1 is not always NSID 1)
//	path1n2           the path of NSID 2 through ctrl1
//	ng2               the generic character device of NSID 2 (kernel only)
//
// An object listed inside another one (a controller link in the subsystem,
// a path directory in its controller, a head in its subsystem) becomes a
// "member" entry there; its content is compared at its own place
// (sys/class/nvme-subsystem/S, sys/class/nvme/C, sys/block/H and
// sys/block/P). Links point to the canonical name of the last component of
// their target when it is an object ("-> ctrl1"), else to that component.
type Canonical map[string]Entry

// ModeMember marks an object listed inside another one.
const ModeMember = "member"

var (
	reCtrlAddr  = regexp.MustCompile(`^/sys/class/nvme/([^/]+)/address$`)
	reSubsysNQN = regexp.MustCompile(`^/sys/class/nvme-subsystem/([^/]+)/subsysnqn$`)
	reNSID      = regexp.MustCompile(`^/sys/block/(nvme(\d+)(?:c(\d+))?n(\d+))/nsid$`)
	reGeneric   = regexp.MustCompile(`^ng(\d+)n(\d+)$`)
	reTrSvcID   = regexp.MustCompile(`trsvcid=([^,\\]+)`)
	reObject    = regexp.MustCompile(`^(?:(subsys)\d*|(ctrl)\d+|(head)\d+|(path)\d+n\d+|(ng)\d+)$`)
)

// Canon puts a dump in canonical form.
func Canon(d Dump) (Canonical, error) {
	names, err := objectNames(d)
	if err != nil {
		return nil, err
	}
	c := Canonical{}
	for p, e := range d {
		obj, rest, ok := split(p)
		if !ok || rest == "" {
			continue
		}
		cobj, ok := names[obj]
		if !ok {
			continue // a block device or controller of another driver
		}
		comps := strings.Split(strings.TrimSuffix(rest, "/"), "/")
		if m, ok := names[comps[0]]; ok && !strings.HasPrefix(cobj, "head") && !strings.HasPrefix(cobj, "path") {
			if len(comps) == 1 {
				c[cobj+"/"+m] = Entry{Mode: ModeMember}
			}
			continue
		}
		for i, comp := range comps {
			if m, ok := names[comp]; ok {
				comps[i] = m
			}
		}
		key := cobj + "/" + strings.Join(comps, "/")
		if strings.HasSuffix(rest, "/") {
			key += "/"
		}
		if e.Mode == "link" {
			t := strings.TrimPrefix(e.Value, "-> ")
			last := t[strings.LastIndexByte(t, '/')+1:]
			if m, ok := names[last]; ok {
				last = m
			}
			e.Value = "-> " + last
		}
		c[key] = e
	}
	return c, nil
}

// split returns the object directory name and the path below it for the
// three places objects live.
func split(p string) (obj, rest string, ok bool) {
	for _, base := range []string{"/sys/class/nvme-subsystem/", "/sys/class/nvme/", "/sys/block/"} {
		if r, found := strings.CutPrefix(p, base); found {
			obj, rest, _ = strings.Cut(r, "/")
			return obj, rest, obj != ""
		}
	}
	return "", "", false
}

// objectNames maps instance names (nvme0, nvme0c1n2, ...) to canonical ones.
func objectNames(d Dump) (map[string]string, error) {
	type ctrl struct{ name, svc string }
	var ctrls []ctrl
	var subsys []string
	for p, e := range d {
		if m := reCtrlAddr.FindStringSubmatch(p); m != nil {
			svc := ""
			if s := reTrSvcID.FindStringSubmatch(e.Value); s != nil {
				svc = s[1]
			}
			ctrls = append(ctrls, ctrl{m[1], svc})
		}
		if m := reSubsysNQN.FindStringSubmatch(p); m != nil {
			subsys = append(subsys, m[1])
		}
	}
	sort.Slice(ctrls, func(i, j int) bool {
		a, _ := strconv.Atoi(ctrls[i].svc)
		b, _ := strconv.Atoi(ctrls[j].svc)
		if a != b {
			return a < b
		}
		return ctrls[i].name < ctrls[j].name
	})
	names := map[string]string{}
	for i, c := range ctrls {
		names[c.name] = "ctrl" + strconv.Itoa(i+1)
	}
	sort.Strings(subsys)
	for i, s := range subsys {
		names[s] = "subsys"
		if len(subsys) > 1 {
			names[s] += strconv.Itoa(i + 1)
		}
	}
	heads := map[string]string{} // "S n H" -> NSID, for the generic devices
	for p, e := range d {
		m := reNSID.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		nsid := strings.TrimSuffix(e.Value, `\n`)
		if _, err := strconv.ParseUint(nsid, 10, 32); err != nil {
			return nil, fmt.Errorf("%s: nsid %q", p, e.Value)
		}
		if m[3] == "" {
			names[m[1]] = "head" + nsid
			heads[m[2]+"n"+m[4]] = nsid
			continue
		}
		c, ok := names["nvme"+m[3]]
		if !ok {
			return nil, fmt.Errorf("%s: no controller nvme%s", p, m[3])
		}
		names[m[1]] = "path" + strings.TrimPrefix(c, "ctrl") + "n" + nsid
	}
	for p := range d {
		obj, rest, ok := split(p)
		if !ok {
			continue
		}
		g, _, _ := strings.Cut(rest, "/")
		if m := reGeneric.FindStringSubmatch(g); m != nil && strings.HasPrefix(p, "/sys/class/nvme-subsystem/"+obj+"/") {
			if nsid, ok := heads[m[1]+"n"+m[2]]; ok {
				names[g] = "ng" + nsid
			}
		}
	}
	return names, nil
}

// generic is a canonical key with the object numbers dropped
// ("path1n2/diag/x" -> "path/diag/x"), for rules.
func generic(key string) string {
	comps := strings.Split(key, "/")
	for i, c := range comps {
		if m := reObject.FindStringSubmatch(c); m != nil {
			comps[i] = m[1] + m[2] + m[3] + m[4] + m[5]
		}
	}
	return strings.Join(comps, "/")
}
