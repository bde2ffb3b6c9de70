package ring

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// An empty ring file as tickgate makes a match's .out ring.
func emptyRing(t *testing.T) string {
	file := make([]byte, HeaderLen+4096)
	copy(file, Magic[:])
	binary.LittleEndian.PutUint32(file[offVersion:], Version)
	binary.LittleEndian.PutUint32(file[offHeaderLen:], HeaderLen)
	binary.LittleEndian.PutUint64(file[offCapacity:], 4096)
	binary.LittleEndian.PutUint64(file[offMatchID:], 7)
	path := filepath.Join(t.TempDir(), "match-7.out")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// What the writer writes, a reader of the format reads; the writer never overwrites what the
// reader has not read, and a record that would cross the end is padded.
func TestMessagesWrittenAreReadBackAndAFullRingRefuses(t *testing.T) {
	path := emptyRing(t)
	w, err := OpenWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.SendToMatch([]byte("checksum 42")); err != nil {
		t.Fatal(err)
	}
	if err := w.SendToPlayer(9, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec, err := r.Next()
	if err != nil || rec.Kind != KindToMatch || string(rec.Body) != "checksum 42" || rec.Seq != 0 {
		t.Fatalf("%+v %v", rec, err)
	}
	rec, err = r.Next()
	if err != nil || rec.Kind != KindToPlayer || binary.LittleEndian.Uint64(rec.Body) != 9 || string(rec.Body[8:]) != "hi" {
		t.Fatalf("%+v %v", rec, err)
	}
	// 1000-byte messages: 1024 bytes a record. Three fit behind the two read ones, the fourth
	// must wait for the reader; after it reads, the next is padded across the end.
	big := make([]byte, 1000)
	sent := 0
	for ; sent < 10; sent++ {
		if err := w.SendToMatch(big); err == ErrFull {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if sent != 3 {
		t.Fatalf("%d big messages fit, want 3", sent)
	}
	for i := 0; i < 3; i++ {
		if rec, err := r.Next(); err != nil || len(rec.Body) != 1000 {
			t.Fatalf("big %d: %+v %v", i, rec, err)
		}
	}
	if err := w.SendToMatch(big); err != nil {
		t.Fatalf("after the reader caught up: %v", err)
	}
	if rec, err := r.Next(); err != nil || len(rec.Body) != 1000 || rec.Seq != 5 {
		t.Fatalf("across the end: %+v %v", rec, err)
	}
}
