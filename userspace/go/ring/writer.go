package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
)

// Record kinds of a match's .out ring: the game's messages back to its players.
const (
	KindToMatch  = 16
	KindToPlayer = 17
	// MaxMessage is the longest message tickgate sends on (longer ones are refused, counted).
	MaxMessage = 1024
)

// ErrFull: tickgate has not read enough of the ring yet for this message; try again later.
var ErrFull = errors.New("ring: the .out ring is full")

// Writer writes the game's messages into a match's .out ring (tickgate made the file;
// docs/frame-ring.md, "The game's messages").
type Writer struct {
	data     []byte
	capacity uint64
	writePos uint64
	seq      uint64
}

// OpenWriter maps the .out ring at path and continues after what was written into it before.
func OpenWriter(path string) (*Writer, error) {
	data, capacity, err := mapRing(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{data: data}
	w.capacity = capacity
	w.writePos = atomic.LoadUint64(w.u64(offWritePos))
	w.seq = atomic.LoadUint64(w.u64(offRecords))
	return w, nil
}

// Close unmaps the ring.
func (w *Writer) Close() error { return syscall.Munmap(w.data) }

func (w *Writer) u64(off int) *uint64 { return (*uint64)(unsafe64(&w.data[off])) }

// SendToMatch queues msg for every player of the match, with its next frame.
func (w *Writer) SendToMatch(msg []byte) error { return w.append(KindToMatch, msg) }

// SendToPlayer queues msg for one player.
func (w *Writer) SendToPlayer(player uint64, msg []byte) error {
	body := make([]byte, 8+len(msg))
	binary.LittleEndian.PutUint64(body, player)
	copy(body[8:], msg)
	return w.append(KindToPlayer, body)
}

func (w *Writer) append(kind uint16, body []byte) error {
	length := uint64(RecordHeadLen + len(body))
	need := align(length)
	if need > w.capacity/2 {
		return fmt.Errorf("ring: a %d-byte record does not fit", length)
	}
	read := atomic.LoadUint64(w.u64(offReadPos))
	room := w.capacity - w.writePos%w.capacity
	var pad uint64
	if room < need {
		pad = room
	}
	if w.writePos+pad+need-read > w.capacity {
		return ErrFull
	}
	if pad > 0 {
		w.head(w.writePos, uint32(pad), KindPad, 0)
		w.writePos += pad
	}
	at := HeaderLen + w.writePos%w.capacity
	w.head(w.writePos, uint32(length), kind, w.seq)
	copy(w.data[at+RecordHeadLen:], body)
	w.writePos += need
	w.seq++
	atomic.StoreUint64(w.u64(offRecords), w.seq)
	atomic.StoreUint64(w.u64(offWritePos), w.writePos)
	return nil
}

func (w *Writer) head(pos uint64, length uint32, kind uint16, seq uint64) {
	at := HeaderLen + pos%w.capacity
	binary.LittleEndian.PutUint32(w.data[at:], length)
	binary.LittleEndian.PutUint16(w.data[at+4:], kind)
	binary.LittleEndian.PutUint16(w.data[at+6:], 0)
	binary.LittleEndian.PutUint64(w.data[at+8:], seq)
}
