// tickgate-ringbench measures how long a frame takes from tickgate (its writer stamps
// CLOCK_MONOTONIC into the frame's start_ns just before publishing) to this Go process, over a
// frame ring or, for comparison, a Unix datagram socket carrying the same record bodies.
// tickgate-bench starts it (scenario "ring") and reads its one JSON line of percentiles.
//
//	tickgate-ringbench -ring PATH|-unix PATH -frames N [-spin]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"syscall"
	"time"
	"unsafe"

	"tickgate.dev/go/ring"
)

func monotonicNs() uint64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1 /* CLOCK_MONOTONIC */, uintptr(unsafe.Pointer(&ts)), 0)
	return uint64(ts.Sec)*1_000_000_000 + uint64(ts.Nsec)
}

type summary struct {
	Frames int     `json:"frames"`
	P50    float64 `json:"p50_us"`
	P99    float64 `json:"p99_us"`
	P999   float64 `json:"p999_us"`
	Max    float64 `json:"max_us"`
	Missed uint64  `json:"missed"`
}

func main() {
	ringPath := flag.String("ring", "", "read this frame ring")
	unixPath := flag.String("unix", "", "or bind this Unix datagram socket and read frame bodies from it")
	frames := flag.Int("frames", 1000, "frames to read")
	spin := flag.Bool("spin", false, "spin instead of sleeping (futex / blocking recv)")
	flag.Parse()
	lat := make([]float64, 0, *frames)
	var missed uint64
	record := func(body []byte) {
		f, err := ring.DecodeFrame(body)
		if err == nil {
			lat = append(lat, float64(monotonicNs()-f.StartNs)/1e3)
		}
	}
	switch {
	case *ringPath != "":
		r, err := ring.Open(*ringPath)
		if err != nil {
			fail(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for len(lat) < *frames && time.Now().Before(deadline) {
			rec, err := r.Next()
			switch {
			case errors.Is(err, ring.ErrEmpty):
				if !*spin {
					r.Wait(100 * time.Millisecond)
				}
			case errors.Is(err, ring.ErrEnded):
				deadline = time.Now()
			case rec.Missed > 0:
				missed += rec.Missed
			case rec.Kind == ring.KindFrame:
				record(rec.Body)
			}
		}
	case *unixPath != "":
		os.Remove(*unixPath)
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: *unixPath, Net: "unixgram"})
		if err != nil {
			fail(err)
		}
		defer os.Remove(*unixPath)
		fmt.Println("ready")
		buf := make([]byte, 65536)
		raw, _ := conn.SyscallConn()
		for len(lat) < *frames {
			var n int
			var rerr error
			if *spin {
				raw.Read(func(fd uintptr) bool {
					for {
						n, _, rerr = syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT)
						if rerr != syscall.EAGAIN {
							return true
						}
					}
				})
			} else {
				conn.SetReadDeadline(time.Now().Add(60 * time.Second))
				n, rerr = conn.Read(buf)
			}
			if rerr != nil {
				fail(rerr)
			}
			record(buf[:n])
		}
	default:
		fail(errors.New("give -ring or -unix"))
	}
	sort.Float64s(lat)
	at := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(q*float64(len(lat)-1))]
	}
	s := summary{Frames: len(lat), P50: at(0.5), P99: at(0.99), P999: at(0.999), Max: at(1), Missed: missed}
	line, _ := json.Marshal(s)
	fmt.Println(string(line))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tickgate-ringbench:", err)
	os.Exit(1)
}
