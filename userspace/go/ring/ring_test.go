package ring

import (
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The hex blocks of docs/frame-ring.md's worked example, in order: header 0..32, header
// 64..96, the data area's first 224 bytes.
func docBlocks(t *testing.T) [][]byte {
	doc, err := os.ReadFile("../../../docs/frame-ring.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]byte
	parts := strings.Split(string(doc), "```text\n")
	for _, p := range parts[1:] {
		text := strings.SplitN(p, "```", 2)[0]
		b, err := hex.DecodeString(strings.Join(strings.Fields(text), ""))
		if err != nil {
			continue // not a hex block
		}
		blocks = append(blocks, b)
	}
	if len(blocks) != 3 {
		t.Fatalf("expected 3 hex blocks in the worked example, found %d", len(blocks))
	}
	return blocks
}

// A ring file built from the doc's bytes reads back as the doc says.
func TestTheWorkedExampleReadsAsTheDocSays(t *testing.T) {
	blocks := docBlocks(t)
	file := make([]byte, HeaderLen+4096)
	copy(file[0:], blocks[0])
	copy(file[64:], blocks[1])
	// tick_hz is not in the shown bytes: the table gives it.
	binary.LittleEndian.PutUint32(file[32:], 60)
	copy(file[HeaderLen:], blocks[2])
	path := filepath.Join(t.TempDir(), "match-7.ring")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.MatchID() != 7 || r.TickHz() != 60 {
		t.Fatalf("match %d at %d Hz", r.MatchID(), r.TickHz())
	}
	start, err := r.Next()
	if err != nil || start.Kind != KindMatchStart || start.Seq != 0 || binary.LittleEndian.Uint64(start.Body) != 7 {
		t.Fatalf("match start: %+v %v", start, err)
	}
	rec, err := r.Next()
	if err != nil || rec.Kind != KindFrame || rec.Seq != 1 {
		t.Fatalf("frame record: %+v %v", rec, err)
	}
	f, err := DecodeFrame(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if f.Tick != 2 || f.StartNs != 33_333_334 || f.TickHz != 60 || f.Last || len(f.Inputs) != 2 {
		t.Fatalf("frame: %+v", f)
	}
	join, cmd := f.Inputs[0], f.Inputs[1]
	if join.Kind != 1 || join.Player != 42 || join.Seq != 3 || string(join.Payload) != "ab" || join.RxNs != 39_000_000 {
		t.Fatalf("join: %+v", join)
	}
	if cmd.Kind != 0 || cmd.Clock != 1 || cmd.Seq != 5 || cmd.ClientFrame != 1001 || hex.EncodeToString(cmd.Payload) != "0805" {
		t.Fatalf("command: %+v", cmd)
	}
	if len(f.Absent) != 1 || f.Absent[0] != 43 {
		t.Fatalf("absent: %v", f.Absent)
	}
	if _, err := r.Next(); err != ErrEmpty {
		t.Fatalf("after the last record: %v", err)
	}
	// A reader that opens the file again resumes after what was read: nothing to repeat.
	again, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := again.Next(); err != ErrEmpty {
		t.Fatalf("a restarted reader repeated a record: %v", err)
	}
}

// Every cut of a frame body is refused, never read past.
func TestEveryCutOfAFrameIsRefused(t *testing.T) {
	body := docBlocks(t)[2][48+16 : 48+164]
	if _, err := DecodeFrame(body); err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(body); cut++ {
		if _, err := DecodeFrame(body[:cut]); err == nil {
			t.Fatalf("a frame cut at %d decoded", cut)
		}
	}
}

// A file that is not a ring is refused.
func TestForeignFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"short": []byte("TGRING01"),
		"magic": make([]byte, HeaderLen+4096),
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if r, err := Open(path); err == nil {
			r.Close()
			t.Fatalf("%s: opened", name)
		}
	}
}
