package sysfsdiff

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Rule relaxes the comparison for the entries its Pattern matches.
type Rule struct {
	// Pattern matches generic keys (object numbers dropped: "ctrl/cntlid",
	// "path/diag/command_retries_count"), segment by segment with path.Match
	// syntax or "{a,b}" alternatives; a last segment "**" matches the
	// directory and everything below.
	Pattern string
	// Skip puts the entries out of scope: not compared, not counted.
	Skip bool
	// Value, if set, lets the values differ as long as both match it (names
	// must still agree).
	Value string
	// Mode, if set, is the mode we show where the kernel's differs (a
	// tunable of the kernel we show read-only). Neither Skip, Value nor
	// Mode is a programming error.
	Mode string
	// Why is the reason, printed with every relaxed entry.
	Why string
}

// Diff is one entry that differs.
type Diff struct {
	Key             string
	Kernel, Ours    *Entry // nil: absent on that side
	ModeOK, ValueOK bool
}

func (d Diff) String() string {
	show := func(e *Entry) string {
		if e == nil {
			return "(absent)"
		}
		v := e.Value
		if len(v) > 100 {
			v = v[:100] + "..."
		}
		return e.Mode + " " + v
	}
	return fmt.Sprintf("%-60s kernel: %-30s ours: %s", d.Key, show(d.Kernel), show(d.Ours))
}

// Result is the outcome of Compare.
type Result struct {
	Diffs []Diff
	// Compared and Agree count canonical entries in scope (every object's
	// copy counts); Kinds and KindsAgree count generic keys (an attribute
	// agrees when it agrees on every object).
	Compared, Agree   int
	Kinds, KindsAgree int
}

// Compare compares the kernel's tree with ours under rules (the first
// matching rule applies).
func Compare(kernel, ours Canonical, rules []Rule) (Result, error) {
	compiled := make([]*regexp.Regexp, len(rules))
	for i, r := range rules {
		if !r.Skip && r.Value == "" && r.Mode == "" {
			return Result{}, fmt.Errorf("rule %q: neither Skip, Value nor Mode", r.Pattern)
		}
		if r.Value != "" {
			re, err := regexp.Compile(r.Value)
			if err != nil {
				return Result{}, fmt.Errorf("rule %q: %w", r.Pattern, err)
			}
			compiled[i] = re
		}
	}
	rule := func(key string) int {
		g := generic(key)
		for i, r := range rules {
			if match(r.Pattern, g) {
				return i
			}
		}
		return -1
	}
	keys := map[string]bool{}
	for k := range kernel {
		keys[k] = true
	}
	for k := range ours {
		keys[k] = true
	}
	var res Result
	kinds := map[string]bool{} // generic key -> all agree
	for k := range keys {
		ri := rule(k)
		if ri >= 0 && rules[ri].Skip {
			continue
		}
		res.Compared++
		ke, kok := kernel[k]
		oe, ook := ours[k]
		d := Diff{Key: k}
		if kok {
			d.Kernel = &ke
		}
		if ook {
			d.Ours = &oe
		}
		if kok && ook {
			d.ModeOK = ke.Mode == oe.Mode || ri >= 0 && rules[ri].Mode == oe.Mode
			d.ValueOK = ke.Value == oe.Value
			if !d.ValueOK && ri >= 0 && compiled[ri] != nil {
				re := compiled[ri]
				d.ValueOK = re.MatchString(ke.Value) && re.MatchString(oe.Value)
			}
		}
		ok := d.ModeOK && d.ValueOK
		g := generic(k)
		if prev, seen := kinds[g]; !seen || prev {
			kinds[g] = ok
		}
		if ok {
			res.Agree++
			continue
		}
		res.Diffs = append(res.Diffs, d)
	}
	for _, ok := range kinds {
		res.Kinds++
		if ok {
			res.KindsAgree++
		}
	}
	sort.Slice(res.Diffs, func(i, j int) bool { return res.Diffs[i].Key < res.Diffs[j].Key })
	return res, nil
}

// match is path.Match per segment, with a trailing "**" for any depth.
func match(pattern, key string) bool {
	ps := strings.Split(strings.TrimSuffix(pattern, "/"), "/")
	ks := strings.Split(strings.TrimSuffix(key, "/"), "/")
	for i, p := range ps {
		if p == "**" && i == len(ps)-1 {
			return true
		}
		if i >= len(ks) || !segMatch(p, ks[i]) {
			return false
		}
	}
	return len(ks) == len(ps)
}

// segMatch is path.Match, and a whole segment "{a,b}" matches a or b.
func segMatch(p, s string) bool {
	if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
		for _, alt := range strings.Split(p[1:len(p)-1], ",") {
			if segMatch(alt, s) {
				return true
			}
		}
		return false
	}
	ok, err := path.Match(p, s)
	return err == nil && ok
}
