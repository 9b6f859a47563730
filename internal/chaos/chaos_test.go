package chaos

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeCtl makes the fault files of a control tree as plain files.
func fakeCtl(t *testing.T) string {
	dir := t.TempDir()
	for p := 1; p <= 2; p++ {
		base := filepath.Join(dir, "ports", string(rune('0'+p)))
		for _, d := range []string{"fault", "ana_groups/1", "ana_groups/2"} {
			if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func read(t *testing.T, dir, rel string) string {
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Overlapping faults restore a port only when the last one ends.
func TestOverlappingFaultsRestoreOnLastUndo(t *testing.T) {
	ctl := fakeCtl(t)
	in := newInjector(ctl, [2]int{1, 2})
	rng := rand.New(rand.NewPCG(1, 2))
	undoListen := in.apply(Listen, 0, rng)
	undoBoth := in.apply(BothDown, 0, rng)
	if got := read(t, ctl, "ports/1/fault/listen"); got != "0" {
		t.Fatalf("port 1 listen = %s, want 0", got)
	}
	undoListen()
	if got := read(t, ctl, "ports/1/fault/listen"); got != "0" {
		t.Fatalf("port 1 listen = %s after one of two faults ended, want 0", got)
	}
	undoBoth()
	for _, p := range []string{"1", "2"} {
		if got := read(t, ctl, "ports/"+p+"/fault/listen"); got != "1" {
			t.Fatalf("port %s listen = %s after both faults ended, want 1", p, got)
		}
	}
	undoStall1 := in.apply(Stall, 1, rng)
	undoStall2 := in.apply(Stall, 1, rng)
	undoStall2()
	if got := read(t, ctl, "ports/2/fault/stall"); got != "1" {
		t.Fatalf("stall = %s with one stall left, want 1", got)
	}
	undoStall1()
	if got := read(t, ctl, "ports/2/fault/stall"); got != "0" {
		t.Fatalf("stall = %s, want 0", got)
	}
	if len(in.errs) != 0 {
		t.Fatal(in.errs)
	}
}

func TestFioResultAndSummary(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, "f.json")
	os.WriteFile(js, []byte("note: something\n{\"jobs\":[{\"error\":5,\"total_err\":3,\"read\":{\"io_bytes\":2097152},\"write\":{\"io_bytes\":1048576}}]}"), 0o644)
	var r fioResult
	if err := r.add(js); err != nil {
		t.Fatal(err)
	}
	if r.errors != 3 || r.readBytes != 2<<20 || r.writeBytes != 1<<20 {
		t.Fatalf("%+v", r)
	}
	errs := filepath.Join(dir, "fio.err")
	os.WriteFile(errs, []byte("fio: io_u error on file x: Input/output error: write offset=0, buflen=4096\n"+
		"verify: bad magic header 0, wanted acca at file x offset 0, length 4096\n"+
		"crc32c: verify failed at file x offset 4096, length 4096\n"), 0o644)
	s := Summary{Faults: map[Kind]int{Drop: 2, Stall: 1}, VerifyErrors: countVerify(errs), EIO: countLines(errs, "Input/output error"), ReadMB: 1, WriteMB: 1}
	if s.VerifyErrors != 2 || s.EIO != 1 || s.OK() {
		t.Fatalf("verify %d eio %d ok %v", s.VerifyErrors, s.EIO, s.OK())
	}
	line := s.String()
	for _, want := range []string{"chaos FAIL", "faults=3 (drop=2 stall=1)", "verify_errors=2", "eio=1"} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %q lacks %q", line, want)
		}
	}
	s.VerifyErrors, s.EIO = 0, 0
	if !s.OK() || !strings.HasPrefix(s.String(), "chaos PASS") {
		t.Errorf("clean run: %s", s)
	}
}
