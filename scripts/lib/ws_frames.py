"""The server side of RFC 6455 framing, shared by the local exchange stand-ins
(scripts/demo/exchanges.py, scripts/lib/fake_exchange.py)."""

import struct


def encode(opcode, payload):
    """One unmasked, final frame (servers never mask)."""
    header = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        header += bytes([n])
    elif n < 65536:
        header += bytes([126]) + struct.pack(">H", n)
    else:
        header += bytes([127]) + struct.pack(">Q", n)
    return header + payload


def read_frame(read_exact):
    """(opcode, unmasked payload) of the next frame; read_exact(n) returns exactly n bytes or
    raises ConnectionError."""
    b0, b1 = read_exact(2)
    opcode, n = b0 & 0x0F, b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", read_exact(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", read_exact(8))[0]
    mask = read_exact(4) if b1 & 0x80 else b"\0\0\0\0"
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(read_exact(n)))
