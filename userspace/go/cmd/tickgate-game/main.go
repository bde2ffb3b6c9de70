// tickgate-game is an example game server's reading loop: it attaches to one match's frame
// ring of a running `tickgate run --frame-rings DIR` and prints every record as a JSON line,
// the shape `tickgate ring dump` prints, so the two can be compared byte for byte.
//
//	tickgate-game [-follow] [-timeout 60s] [-stop-after N] [-say TEXT] /dev/shm/tickgate/match-7.ring
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"tickgate.dev/go/ring"
)

type jsonInput struct {
	Client   uint32 `json:"client"`
	Seq      uint64 `json:"seq"`
	Frame    uint32 `json:"frame"`
	RxTsNs   uint64 `json:"rx_ts_ns"`
	TsSource string `json:"ts_source"`
	Queue    uint16 `json:"queue"`
	Kind     string `json:"kind"`
	Payload  string `json:"payload"`
}

type jsonFrame struct {
	Match   uint64      `json:"match"`
	Tick    uint64      `json:"tick"`
	TickHz  uint32      `json:"tick_hz"`
	StartNs uint64      `json:"start_ns"`
	Hash    string      `json:"hash"`
	Inputs  []jsonInput `json:"inputs"`
	Absent  []uint32    `json:"absent"`
	Last    bool        `json:"last"`
}

var kinds = []string{"command", "join", "leave", "resync", "start", "end"}
var clocks = []string{"nic", "xdp"}

func name(names []string, i uint8) string {
	if int(i) < len(names) {
		return names[i]
	}
	return fmt.Sprint(i)
}

func main() {
	follow := flag.Bool("follow", false, "keep reading until the match ends or -timeout passes")
	timeout := flag.Duration("timeout", 60*time.Second, "with -follow, give up after this long")
	stopAfter := flag.Int("stop-after", 0, "exit after this many records (0: never), as a crashing game would")
	say := flag.String("say", "", "send this message to every player of the match (through its .out ring)")
	sayAfter := flag.Int("say-after", 5, "with -say, send it after this many records")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: tickgate-game [-follow] [-timeout D] [-stop-after N] RING")
		os.Exit(2)
	}
	r, err := ring.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tickgate-game:", err)
		os.Exit(1)
	}
	defer r.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	deadline := time.Now().Add(*timeout)
	records := 0
	for {
		rec, err := r.Next()
		switch {
		case errors.Is(err, ring.ErrEnded):
			return
		case errors.Is(err, ring.ErrEmpty):
			if !*follow || time.Now().After(deadline) {
				return
			}
			out.Flush()
			r.Wait(100 * time.Millisecond)
			continue
		case rec.Missed > 0:
			fmt.Fprintf(out, "{\"missed\":%d}\n", rec.Missed)
			continue
		}
		switch rec.Kind {
		case ring.KindMatchStart:
			fmt.Fprintf(out, "{\"seq\":%d,\"match_start\":%d}\n", rec.Seq, r.MatchID())
		case ring.KindMatchEnd:
			fmt.Fprintf(out, "{\"seq\":%d,\"match_end\":%d}\n", rec.Seq, r.MatchID())
		case ring.KindFrame:
			f, err := ring.DecodeFrame(rec.Body)
			if err != nil {
				fmt.Fprintf(out, "{\"seq\":%d,\"malformed\":true}\n", rec.Seq)
				break
			}
			j := jsonFrame{Match: r.MatchID(), Tick: f.Tick, TickHz: f.TickHz, StartNs: f.StartNs,
				Hash: hex.EncodeToString(f.Hash[:]), Inputs: []jsonInput{}, Absent: f.Absent, Last: f.Last}
			for _, in := range f.Inputs {
				j.Inputs = append(j.Inputs, jsonInput{Client: in.Player, Seq: in.Seq, Frame: in.ClientFrame,
					RxTsNs: in.RxNs, TsSource: name(clocks, in.Clock), Kind: name(kinds, in.Kind),
					Payload: base64.StdEncoding.EncodeToString(in.Payload)})
			}
			line, _ := json.Marshal(j)
			out.Write(append(line, '\n'))
		default:
			fmt.Fprintf(out, "{\"seq\":%d,\"unknown_kind\":%d}\n", rec.Seq, rec.Kind)
		}
		records++
		if *say != "" && records == *sayAfter {
			out := strings.TrimSuffix(flag.Arg(0), ".ring") + ".out"
			w, err := ring.OpenWriter(out)
			if err == nil {
				err = w.SendToMatch([]byte(*say))
				w.Close()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "tickgate-game: sending:", err)
			}
		}
		if *stopAfter > 0 && records >= *stopAfter {
			return
		}
	}
}
