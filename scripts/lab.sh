#!/usr/bin/env bash
# A two-namespace veth lab for trying tickgate by hand, or for the demo:
#   scripts/lab.sh up [QUEUES]   creates tglab-tx / tglab-rx joined by veth tglab0 <-> tglab1
#   scripts/lab.sh down          deletes both namespaces (and with them the veths and any XDP)
# Only 10.88.0.0/24 and fd00:88::/64 on the lab's own veths; nothing touches the host's interfaces.
set -euo pipefail
TX=tglab-tx RX=tglab-rx
case "${1:-}" in
  up)
    q=${2:-1}
    ip netns add $TX
    ip netns add $RX
    ip link add tglab0 netns $TX numtxqueues "$q" numrxqueues "$q" type veth \
      peer name tglab1 netns $RX numtxqueues "$q" numrxqueues "$q"
    ip -n $TX link set tglab0 address 02:88:00:00:00:01
    ip -n $RX link set tglab1 address 02:88:00:00:00:02
    for ns in $TX $RX; do ip -n $ns link set lo up; done
    ip -n $TX addr add 10.88.0.1/24 dev tglab0
    ip -n $RX addr add 10.88.0.2/24 dev tglab1
    ip -n $TX addr add fd00:88::1/64 dev tglab0 nodad
    ip -n $RX addr add fd00:88::2/64 dev tglab1 nodad
    ip -n $TX link set tglab0 up
    ip -n $RX link set tglab1 up
    ip -n $TX neigh replace 10.88.0.2 lladdr 02:88:00:00:00:02 dev tglab0 nud permanent
    ip -n $RX neigh replace 10.88.0.1 lladdr 02:88:00:00:00:01 dev tglab1 nud permanent
    ip -n $TX neigh replace fd00:88::2 lladdr 02:88:00:00:00:02 dev tglab0 nud permanent
    ip -n $RX neigh replace fd00:88::1 lladdr 02:88:00:00:00:01 dev tglab1 nud permanent
    echo "lab up: run tickgate with: nsenter --net=/run/netns/$RX tickgate ... tglab1"
    ;;
  down)
    ip netns del $RX 2>/dev/null || true
    ip netns del $TX 2>/dev/null || true
    rm -rf /sys/fs/bpf/tickgate/tglab1
    ;;
  *)
    echo "usage: scripts/lab.sh up [QUEUES] | down" >&2
    exit 2
    ;;
esac
