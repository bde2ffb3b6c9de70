#!/usr/bin/env python3
"""An independent implementation of tickgate protocol v2, written from docs/protocol.md alone.

It exists so that the Rust code is checked against a second reading of the spec: the Rust tests
run it to open tokens Rust minted and to mint tokens Rust must open. It needs only Python 3 and
the `cryptography` package (AESGCM). Usage:

  tickgate_v2.py mint KEYHEX PROTOCOL_ID CREATE EXPIRE TIMEOUT MATCH PLAYER USERDATAHEX NONCEHEX C2SHEX S2CHEX ADDR...
      prints the 2048-byte connect token in hex
  tickgate_v2.py open KEYHEX TOKENHEX
      prints the token's fields, public and private, one `name=value` per line
  tickgate_v2.py request TOKENHEX
      prints the connection request for the token, in hex
  tickgate_v2.py respond TOKENHEX CHALLENGEHEX
      opens the challenge with the token's s2c key and prints the response, in hex
  tickgate_v2.py seal KEYHEX KIND SESSION SEQ BODYHEX
      prints a sealed packet, in hex
  tickgate_v2.py unseal KEYHEX PACKETHEX
      prints `kind session seq bodyhex` of a sealed packet, or fails if it does not open
  tickgate_v2.py frames KEYHEX PACKETHEX
      opens a Frame packet and prints its body's head and one line per record
"""
import ipaddress
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION_INFO = b"TICKGATE TOKEN 2"
CONNECT_TOKEN_LEN = 2048
PRIVATE_LEN = 1008
TAG_LEN = 16


def encode_addresses(addrs):
    out = struct.pack(">I", len(addrs))
    for a in addrs:
        host, port = a.rsplit(":", 1)
        ip = ipaddress.ip_address(host.strip("[]"))
        out += (b"\x01" if ip.version == 4 else b"\x02") + ip.packed + struct.pack(">H", int(port))
    return out


def decode_addresses(b):
    (count,) = struct.unpack_from(">I", b, 0)
    at, addrs = 4, []
    for _ in range(count):
        kind = b[at]
        n = 4 if kind == 1 else 16
        ip = ipaddress.ip_address(bytes(b[at + 1:at + 1 + n]))
        (port,) = struct.unpack_from(">H", b, at + 1 + n)
        addrs.append(f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}")
        at += 1 + n + 2
    return addrs, at


def private_ad(protocol_id, expire):
    return VERSION_INFO + struct.pack(">QQ", protocol_id, expire)


def mint(key, protocol_id, create, expire, timeout, match, player, user_data, nonce, c2s, s2c, addrs):
    private = struct.pack(">QQQIH", player, match, create, timeout, len(user_data))
    private += user_data.ljust(256, b"\0") + c2s + s2c + encode_addresses(addrs)
    private = private.ljust(PRIVATE_LEN, b"\0")
    sealed = AESGCM(key).encrypt(nonce, private, private_ad(protocol_id, expire))  # ciphertext || tag
    token = VERSION_INFO + struct.pack(">QQQ", protocol_id, create, expire) + nonce + sealed
    token += struct.pack(">I", timeout) + encode_addresses(addrs) + c2s + s2c
    return token.ljust(CONNECT_TOKEN_LEN, b"\0")


def open_token(key, token):
    assert len(token) == CONNECT_TOKEN_LEN and token[:16] == VERSION_INFO
    protocol_id, create, expire = struct.unpack_from(">QQQ", token, 16)
    nonce = token[40:52]
    sealed = token[52:52 + PRIVATE_LEN + TAG_LEN]
    (timeout,) = struct.unpack_from(">I", token, 52 + PRIVATE_LEN + TAG_LEN)
    addrs, n = decode_addresses(token[52 + PRIVATE_LEN + TAG_LEN + 4:])
    keys_at = 52 + PRIVATE_LEN + TAG_LEN + 4 + n
    private = AESGCM(key).decrypt(nonce, sealed, private_ad(protocol_id, expire))
    player, match, p_create, p_timeout, ud_len = struct.unpack_from(">QQQIH", private, 0)
    p_addrs, _ = decode_addresses(private[350:])
    return {
        "protocol_id": protocol_id, "create_ts": create, "expire_ts": expire, "timeout_s": timeout,
        "addresses": ",".join(addrs), "c2s_key": token[keys_at:keys_at + 32].hex(),
        "s2c_key": token[keys_at + 32:keys_at + 64].hex(),
        "private.player_id": player, "private.match_id": match, "private.create_ts": p_create,
        "private.timeout_s": p_timeout, "private.user_data": private[30:30 + ud_len].hex(),
        "private.c2s_key": private[286:318].hex(), "private.s2c_key": private[318:350].hex(),
        "private.addresses": ",".join(p_addrs),
    }


HEADER_LEN = 20


def header(kind, payload_len, session, seq):
    return struct.pack(">HBBHHIQ", 0xF1F2, 2, kind, payload_len, 0, session, seq)


def nonce(kind, seq):
    return bytes([0, 0, 0, kind]) + struct.pack(">Q", seq)


def seal(key, kind, session, seq, body):
    head = header(kind, len(body) + TAG_LEN, session, seq)
    return head + AESGCM(key).encrypt(nonce(kind, seq), body, head)


def unseal(key, packet):
    magic, version, kind, payload_len, _, session, seq = struct.unpack_from(">HBBHHIQ", packet, 0)
    assert magic == 0xF1F2 and version == 2 and HEADER_LEN + payload_len == len(packet)
    body = AESGCM(key).decrypt(nonce(kind, seq), packet[HEADER_LEN:], packet[:HEADER_LEN])
    return kind, session, seq, body


def request(token):
    payload = token[0:16] + token[16:24] + token[32:40] + token[40:52] + token[52:52 + PRIVATE_LEN + TAG_LEN]
    return header(3, len(payload), 0, 0) + payload


def respond(token, challenge):
    fields = open_public(token)
    kind, _, seq, body = unseal(fields["s2c"], challenge)
    assert kind == 4 and struct.unpack_from(">Q", body, 0)[0] == seq
    payload_len = len(body) + TAG_LEN
    signed = header(5, payload_len, 0, 0) + body
    proof = AESGCM(fields["c2s"]).encrypt(nonce(5, 0), b"", signed)
    return signed + proof


def frames(body):
    """A Frame packet's body (docs/protocol.md, "Frames"), as one line per record."""
    tick_hz, ack, flags, count = struct.unpack_from(">IQBB", body, 0)
    at, lines = 14, [f"tick_hz={tick_hz} ack={ack} flags={flags} count={count}"]
    for _ in range(count):
        tick, start, digest, n_in, n_abs, n_msg, last = struct.unpack_from(">QQ32sHHHB", body, at)
        at += 55
        inputs = []
        for _ in range(n_in):
            rx, ck, player, seq, cframe, plen = struct.unpack_from(">QBIQII", body, at)
            at += 29
            payload = body[at:at + plen]
            at += plen
            inputs.append(f"{player}/{seq}/{cframe}/{ck >> 4}/{ck & 15}/{rx}/{payload.hex()}")
        absent = list(struct.unpack_from(f">{n_abs}I", body, at))
        at += 4 * n_abs
        messages = []
        for _ in range(n_msg):
            (mlen,) = struct.unpack_from(">H", body, at)
            messages.append(body[at + 2:at + 2 + mlen].hex())
            at += 2 + mlen
        lines.append(f"tick={tick} start={start} hash={digest.hex()} last={last} inputs={','.join(inputs)} "
                     f"absent={','.join(map(str, absent))} messages={','.join(messages)}")
    assert at == len(body), "trailing bytes"
    return lines


def open_public(token):
    _, n = decode_addresses(token[52 + PRIVATE_LEN + TAG_LEN + 4:])
    at = 52 + PRIVATE_LEN + TAG_LEN + 4 + n
    return {"c2s": token[at:at + 32], "s2c": token[at + 32:at + 64]}


def main(argv):
    h = bytes.fromhex
    if argv[1] == "mint":
        key, pid, create, expire, timeout, match, player, ud, nonce, c2s, s2c = argv[2:13]
        token = mint(h(key), int(pid), int(create), int(expire), int(timeout), int(match), int(player),
                     h(ud), h(nonce), h(c2s), h(s2c), argv[13:])
        print(token.hex())
    elif argv[1] == "open":
        for k, v in open_token(h(argv[2]), h(argv[3])).items():
            print(f"{k}={v}")
    elif argv[1] == "request":
        print(request(h(argv[2])).hex())
    elif argv[1] == "respond":
        print(respond(h(argv[2]), h(argv[3])).hex())
    elif argv[1] == "seal":
        print(seal(h(argv[2]), int(argv[3]), int(argv[4]), int(argv[5]), h(argv[6])).hex())
    elif argv[1] == "frames":
        kind, _, _, body = unseal(h(argv[2]), h(argv[3]))
        assert kind == 9
        print("\n".join(frames(body)))
    elif argv[1] == "unseal":
        kind, session, seq, body = unseal(h(argv[2]), h(argv[3]))
        print(kind, session, seq, body.hex())
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
