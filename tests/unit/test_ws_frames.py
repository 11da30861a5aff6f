"""RFC 6455 frames: what the server builds matches eventlet's encoder; what a client sends
is read whole, in any split, and protocol violations are refused with the right code."""

import os
import struct

import pytest

from hub import ws_frames
from hub.ws_frames import FrameError, FrameReader


def client_frame(opcode: int, payload: bytes, final: bool = True, mask: bytes | None = None,
                 masked: bool = True, rsv: int = 0) -> bytes:
    """A frame as a browser sends it (masked), built the long way, byte by byte."""
    first = (0x80 if final else 0) | rsv | opcode
    size = len(payload)
    flag = 0x80 if masked else 0
    if size < 126:
        header = bytes((first, flag | size))
    elif size < 65536:
        header = struct.pack("!BBH", first, flag | 126, size)
    else:
        header = struct.pack("!BBQ", first, flag | 127, size)
    if not masked:
        return header + payload
    mask = mask or os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 100_000])
def test_server_frames_match_eventlets_encoder(size: int) -> None:
    pytest.importorskip("eventlet")
    from eventlet.websocket import RFC6455WebSocket

    payload = "é" * (size // 2) + "x" * (size % 2)
    ws = RFC6455WebSocket.__new__(RFC6455WebSocket)
    ws.extensions = {}
    assert ws_frames.data_frame(payload) == ws._pack_message(payload)
    assert ws_frames.data_frame(payload.encode()) == ws._pack_message(payload.encode())


@pytest.mark.parametrize("size", [0, 5, 125, 126, 1000, 65536])
def test_reads_masked_frames_of_every_length_in_any_split(size: int) -> None:
    text = ("42" + "a" * size)[:max(size, 1)]
    wire = client_frame(ws_frames.OP_TEXT, text.encode()) + client_frame(
        ws_frames.OP_BINARY, b"\x00\x01\x02")
    for step in (1, 3, 7, len(wire)):
        reader = FrameReader(max_message=1 << 20)
        out = []
        for start in range(0, len(wire), step):
            out += reader.feed(wire[start:start + step])
        assert out == [(ws_frames.OP_TEXT, text), (ws_frames.OP_BINARY, b"\x00\x01\x02")]


def test_joins_fragments_and_passes_control_frames_between_them() -> None:
    reader = FrameReader(max_message=100)
    wire = (client_frame(ws_frames.OP_TEXT, b"he", final=False)
            + client_frame(ws_frames.OP_PING, b"p")
            + client_frame(ws_frames.OP_CONTINUATION, b"llo"))
    assert reader.feed(wire) == [(ws_frames.OP_PING, b"p"), (ws_frames.OP_TEXT, "hello")]


@pytest.mark.parametrize(("wire", "code"), [
    (client_frame(ws_frames.OP_TEXT, b"x", masked=False), ws_frames.CLOSE_PROTOCOL_ERROR),
    (client_frame(ws_frames.OP_TEXT, b"x", rsv=0x40), ws_frames.CLOSE_PROTOCOL_ERROR),
    (client_frame(0x3, b"x"), ws_frames.CLOSE_PROTOCOL_ERROR),
    (client_frame(ws_frames.OP_CONTINUATION, b"x"), ws_frames.CLOSE_PROTOCOL_ERROR),
    (client_frame(ws_frames.OP_PING, b"x", final=False), ws_frames.CLOSE_PROTOCOL_ERROR),
    (client_frame(ws_frames.OP_TEXT, b"\xff\xfe"), ws_frames.CLOSE_INVALID_DATA),
    (client_frame(ws_frames.OP_TEXT, b"x" * 11), ws_frames.CLOSE_TOO_BIG),
    (client_frame(ws_frames.OP_TEXT, b"x" * 6, final=False)
     + client_frame(ws_frames.OP_CONTINUATION, b"x" * 6), ws_frames.CLOSE_TOO_BIG),
    (client_frame(ws_frames.OP_TEXT, b"x", final=False)
     + client_frame(ws_frames.OP_TEXT, b"y"), ws_frames.CLOSE_PROTOCOL_ERROR),
])
def test_refuses_what_a_server_must(wire: bytes, code: int) -> None:
    with pytest.raises(FrameError) as refused:
        FrameReader(max_message=10).feed(wire)
    assert refused.value.code == code


def test_an_oversized_header_is_refused_before_its_payload_arrives() -> None:
    header = struct.pack("!BBQ", 0x81, 0xFF, 1 << 40)  # claims a terabyte
    with pytest.raises(FrameError):
        FrameReader(max_message=1024).feed(header)


def test_close_frame_carries_the_code() -> None:
    assert ws_frames.close_frame(1009) == b"\x88\x02" + struct.pack("!H", 1009)
