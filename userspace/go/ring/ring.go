// Package ring reads tickgate's frame rings: one shared-memory file per match that tickgate
// writes (`tickgate run --frame-rings DIR`) and a game server reads, in any language.
// docs/frame-ring.md is the format; this package implements its reader side with the Go
// standard library only.
//
// The ring overwrites its oldest records when the reader falls behind: Next reports the
// number of records missed, then goes on from the oldest one still held. A reader that
// restarts resumes where the last reader of the file stopped (the read position lives in
// the file), so a restart neither repeats nor silently skips a record.
package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Layout constants (docs/frame-ring.md, "Header").
const (
	HeaderLen      = 4096
	Version        = 1
	Align          = 16
	RecordHeadLen  = 16
	offMagic       = 0
	offVersion     = 8
	offHeaderLen   = 12
	offCapacity    = 16
	offMatchID     = 24
	offTickHz      = 32
	offWritePos    = 64
	offOldestPos   = 72
	offRecords     = 80
	offWake        = 88
	offState       = 92
	offReadPos     = 128
	offReaderPid   = 136
	offReadSeq     = 144
	futexWait      = 0
	KindPad        = 0
	KindMatchStart = 1
	KindFrame      = 2
	KindMatchEnd   = 3
)

// Magic is the first 8 bytes of a ring file.
var Magic = [8]byte{'T', 'G', 'R', 'I', 'N', 'G', '0', '1'}

// ErrEmpty: nothing new yet. ErrEnded: the match ended (or tickgate stopped) and every
// record was read.
var (
	ErrEmpty = errors.New("ring: no new record")
	ErrEnded = errors.New("ring: the match ended")
)

// Record is one record, or (Missed > 0) a gap of that many records the writer overwrote
// before they were read.
type Record struct {
	Kind   uint16
	Seq    uint64
	Body   []byte
	Missed uint64
}

// Reader reads one ring.
type Reader struct {
	data     []byte
	capacity uint64
	pos      uint64
	nextSeq  uint64
	pending  *Record
}

func align(n uint64) uint64 { return (n + Align - 1) / Align * Align }

// mapRing maps the ring file at path read-write and checks its header (magic, version, header
// length, a power-of-two capacity of at least 4096 that matches the file): the frames ring the
// Reader reads and the .out ring the Writer writes share it.
func mapRing(path string) ([]byte, uint64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := st.Size()
	if size < HeaderLen {
		return nil, 0, fmt.Errorf("ring: %s is shorter than the header", path)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, 0, err
	}
	bad := func(why string) ([]byte, uint64, error) {
		syscall.Munmap(data)
		return nil, 0, fmt.Errorf("ring: %s is not a tickgate ring: %s", path, why)
	}
	if string(data[offMagic:offMagic+8]) != string(Magic[:]) {
		return bad("bad magic")
	}
	if atomic.LoadUint32((*uint32)(unsafe.Pointer(&data[offVersion]))) != Version {
		return bad("unknown version")
	}
	if binary.LittleEndian.Uint32(data[offHeaderLen:]) != HeaderLen {
		return bad("unexpected header length")
	}
	capacity := binary.LittleEndian.Uint64(data[offCapacity:])
	if capacity < 4096 || capacity&(capacity-1) != 0 || HeaderLen+capacity != uint64(size) {
		return bad("capacity does not match the file")
	}
	return data, capacity, nil
}

// Open maps the ring file at path, checks its header and resumes after the last record the
// previous reader of the file read (or at the oldest record still held).
func Open(path string) (*Reader, error) {
	data, capacity, err := mapRing(path)
	if err != nil {
		return nil, err
	}
	r := &Reader{data: data}
	r.capacity = capacity
	atomic.StoreUint32(r.u32(offReaderPid), uint32(os.Getpid()))
	saved, oldest, write := r.load(offReadPos), r.load(offOldestPos), r.load(offWritePos)
	if saved >= oldest && saved <= write && saved%Align == 0 {
		r.pos = saved
	} else {
		r.pos = oldest
	}
	r.nextSeq = r.load(offReadSeq)
	return r, nil
}

// Close unmaps the ring.
func (r *Reader) Close() error { return syscall.Munmap(r.data) }

func (r *Reader) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&r.data[off])) }

func unsafe64(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }
func (r *Reader) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.data[off])) }
func (r *Reader) load(off int) uint64 { return atomic.LoadUint64(r.u64(off)) }

// MatchID is the ring's match.
func (r *Reader) MatchID() uint64 { return r.load(offMatchID) }

// TickHz is the match's tick rate.
func (r *Reader) TickHz() uint32 { return atomic.LoadUint32(r.u32(offTickHz)) }

// Next returns the next record or gap; ErrEmpty when there is nothing new, ErrEnded when the
// match ended and everything was read. It never blocks (see Wait).
func (r *Reader) Next() (Record, error) {
	if r.pending != nil {
		rec := *r.pending
		r.pending = nil
		return rec, nil
	}
	for {
		write := r.load(offWritePos)
		oldest := r.load(offOldestPos)
		if r.pos == write {
			if atomic.LoadUint32(r.u32(offState)) == 0 {
				return Record{}, ErrEmpty
			}
			return Record{}, ErrEnded
		}
		if oldest > write {
			// No writer of this format does that: a damaged or foreign header.
			r.pos = write
			r.storePos()
			return Record{Missed: 0}, nil
		}
		if r.pos < oldest || r.pos > write {
			r.pos = oldest
			continue
		}
		if r.pos%Align != 0 {
			// Records start at multiples of 16: anything else is damage.
			r.pos = write
			r.storePos()
			return Record{Missed: 0}, nil
		}
		at := r.pos % r.capacity
		base := HeaderLen + at
		head := make([]byte, RecordHeadLen)
		copy(head, r.data[base:base+RecordHeadLen])
		length := uint64(binary.LittleEndian.Uint32(head[0:]))
		kind := binary.LittleEndian.Uint16(head[4:])
		seq := binary.LittleEndian.Uint64(head[8:])
		sane := length >= RecordHeadLen && align(length) <= r.capacity-at
		var body []byte
		if sane {
			body = make([]byte, length-RecordHeadLen)
			copy(body, r.data[base+RecordHeadLen:base+length])
		}
		// The record is good only if the writer had not started overwriting it by now.
		if r.load(offOldestPos) > r.pos {
			continue
		}
		if !sane {
			r.pos = write
			r.storePos()
			return Record{Missed: 0}, nil
		}
		r.pos += align(length)
		r.storePos()
		if kind == KindPad {
			continue
		}
		rec := Record{Kind: kind, Seq: seq, Body: body}
		var gap uint64
		if seq > r.nextSeq {
			gap = seq - r.nextSeq
		}
		if seq < ^uint64(0) {
			r.nextSeq = seq + 1
		}
		atomic.StoreUint64(r.u64(offReadSeq), r.nextSeq)
		if gap > 0 {
			r.pending = &rec
			return Record{Missed: gap}, nil
		}
		return rec, nil
	}
}

func (r *Reader) storePos() { atomic.StoreUint64(r.u64(offReadPos), r.pos) }

// Wait sleeps until tickgate publishes a record (a futex on the header's wake word) or the
// timeout passes.
func (r *Reader) Wait(timeout time.Duration) {
	word := r.u32(offWake)
	seen := atomic.LoadUint32(word)
	if r.load(offWritePos) != r.pos || atomic.LoadUint32(r.u32(offState)) != 0 {
		return
	}
	ts := syscall.NsecToTimespec(timeout.Nanoseconds())
	syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(word)), futexWait, uintptr(seen),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// Input is one input of a frame (docs/frame-ring.md, "Frame").
type Input struct {
	Kind        uint8 // 0 command, 1 join, 2 leave, 3 resync, 4 start, 5 end
	Clock       uint8 // 0 the NIC, 1 the XDP hook
	Player      uint32
	Seq         uint64
	RxNs        uint64
	ClientFrame uint32
	Payload     []byte
}

// Frame is one sealed tick of the ring's match.
type Frame struct {
	Tick    uint64
	StartNs uint64
	Hash    [32]byte
	TickHz  uint32
	Last    bool
	Inputs  []Input
	Absent  []uint32
}

// DecodeFrame decodes a frame record's body; every length is checked.
func DecodeFrame(b []byte) (Frame, error) {
	var f Frame
	short := errors.New("ring: frame record cut short")
	if len(b) < 64 {
		return f, short
	}
	le := binary.LittleEndian
	f.Tick, f.StartNs = le.Uint64(b[0:]), le.Uint64(b[8:])
	copy(f.Hash[:], b[16:48])
	f.TickHz = le.Uint32(b[48:])
	f.Last = le.Uint32(b[52:])&1 == 1
	inputs, absent := le.Uint32(b[56:]), le.Uint32(b[60:])
	if uint64(inputs) > uint64(len(b))/32 || uint64(absent) > uint64(len(b))/4 {
		return f, errors.New("ring: frame record counts exceed its length")
	}
	b = b[64:]
	f.Inputs = make([]Input, 0, inputs)
	for i := uint32(0); i < inputs; i++ {
		if len(b) < 32 {
			return f, short
		}
		in := Input{Kind: b[0], Clock: b[1], Player: le.Uint32(b[4:]), Seq: le.Uint64(b[8:]),
			RxNs: le.Uint64(b[16:]), ClientFrame: le.Uint32(b[24:])}
		n := uint64(le.Uint32(b[28:]))
		padded := (n + 7) / 8 * 8
		if uint64(len(b)-32) < padded {
			return f, short
		}
		in.Payload = append([]byte{}, b[32:32+n]...)
		f.Inputs = append(f.Inputs, in)
		b = b[32+padded:]
	}
	if uint64(len(b)) != 4*uint64(absent) {
		return f, errors.New("ring: frame record length does not match its absent players")
	}
	f.Absent = make([]uint32, absent)
	for i := range f.Absent {
		f.Absent[i] = le.Uint32(b[4*i:])
	}
	return f, nil
}
