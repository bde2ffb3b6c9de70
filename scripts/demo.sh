#!/usr/bin/env bash
# One-command demo on a veth lab (run as root): installs what is missing, builds tickgate,
# creates the lab, attaches the XDP program, sends game packets, junk and other traffic from
# the client namespace, shows what XDP did with each, then removes everything.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (sudo scripts/demo.sh)" >&2; exit 1; }
bash scripts/setup.sh >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -q -p tickgate
TG="$PWD/target/release/tickgate"
RXNS="nsenter --net=/run/netns/tglab-rx"

scripts/lab.sh down
trap 'scripts/lab.sh down' EXIT
scripts/lab.sh up 1 >/dev/null

echo "== features of the lab interface"
$RXNS "$TG" features tglab1
echo
echo "== load (game port 7777, native mode, NIC timestamps where available)"
$RXNS "$TG" load tglab1 --port 7777
echo
echo "== the client namespace sends 200 game inputs, 50 junk packets to the game port, 20 DNS-like packets"
ip netns exec tglab-tx python3 - <<'PY'
import socket, struct, time
game = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for seq in range(200):
    body = b"input-%d" % seq
    # magic, version, kind=input, payload_len, reserved, client, frame, seq, crc (unchecked by XDP)
    hdr = struct.pack("!HBBHHIIQI", 0xF1F2, 1, 1, len(body), 0, 1 + seq % 4, seq, seq, 0)
    game.sendto(hdr + body, ("10.88.0.2", 7777))
for i in range(50):
    game.sendto(b"\xde\xad" + bytes(40), ("10.88.0.2", 7777))
for i in range(20):
    game.sendto(b"not a game packet", ("10.88.0.2", 53))
time.sleep(0.2)
PY
echo
echo "== status (no AF_XDP socket is bound yet, so valid inputs go to the kernel as no_socket)"
$RXNS "$TG" status tglab1
echo
echo "== unload"
$RXNS "$TG" unload tglab1
