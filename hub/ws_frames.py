"""RFC 6455 frames as a server sees them: building the ones it sends, reading the ones a
client sends, incrementally from whatever bytes have arrived. No I/O here."""

import struct

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013


class FrameError(Exception):
    """The client broke the protocol; `code` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked, uncompressed frame (what a server sends)."""
    first = 0x80 | opcode
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 65536:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def data_frame(payload: str | bytes) -> bytes:
    if isinstance(payload, str):
        return frame(OP_TEXT, payload.encode())
    return frame(OP_BINARY, payload)


def close_frame(code: int = CLOSE_NORMAL) -> bytes:
    return frame(OP_CLOSE, struct.pack("!H", code))


def unmask(data: bytes | bytearray, mask: bytes | bytearray) -> bytes:
    """XOR with the 4-byte mask, as one big-integer operation rather than per byte."""
    size = len(data)
    if not size:
        return b""
    key = (bytes(mask) * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


class FrameReader:
    """Turns the bytes a client sent into whole messages and control frames.

    feed() returns (opcode, payload) pairs: OP_TEXT payloads decoded to str, OP_BINARY as
    bytes, control frames (close, ping, pong) as bytes. Fragmented messages are joined.
    Raises FrameError for anything a server must refuse: unmasked frames, reserved bits
    (no extension is negotiated), unknown opcodes, bad fragmentation, invalid UTF-8, and
    messages over `max_message` bytes.
    """

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self.buffer = bytearray()
        self.fragments: list[bytes] | None = None
        self.fragment_opcode = 0
        self.fragment_bytes = 0

    def feed(self, data: bytes) -> list[tuple[int, str | bytes]]:
        self.buffer += data
        out: list[tuple[int, str | bytes]] = []
        while True:
            parsed = self._next_frame()
            if parsed is None:
                return out
            message = self._assemble(*parsed)
            if message is not None:
                out.append(message)

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        if first & 0x70:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if not second & 0x80:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        size, start = second & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                return None
            size, start = int.from_bytes(buffer[2:4], "big"), 4
        elif size == 127:
            if len(buffer) < 10:
                return None
            size, start = int.from_bytes(buffer[2:10], "big"), 10
        if size > self.max_message:
            raise FrameError(CLOSE_TOO_BIG, "message too large")
        end = start + 4 + size
        if len(buffer) < end:
            return None
        payload = unmask(buffer[start + 4:end], buffer[start:start + 4])
        del buffer[:end]
        return bool(first & 0x80), first & 0x0F, payload

    def _assemble(self, final: bool, opcode: int, payload: bytes) -> tuple[int, str | bytes] | None:
        if opcode >= OP_CLOSE:
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if not final or len(payload) > 125:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "bad control frame")
            return opcode, payload
        if opcode == OP_CONTINUATION:
            if self.fragments is None:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation without a message")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self.fragments is not None:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
            self.fragments, self.fragment_opcode, self.fragment_bytes = [], opcode, 0
        else:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        assert self.fragments is not None
        self.fragments.append(payload)
        self.fragment_bytes += len(payload)
        if self.fragment_bytes > self.max_message:
            raise FrameError(CLOSE_TOO_BIG, "message too large")
        if not final:
            return None
        whole = b"".join(self.fragments)
        self.fragments = None
        if self.fragment_opcode == OP_BINARY:
            return OP_BINARY, whole
        try:
            return OP_TEXT, whole.decode()
        except UnicodeDecodeError:
            raise FrameError(CLOSE_INVALID_DATA, "text frame is not UTF-8") from None
