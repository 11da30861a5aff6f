"""eventlet's HTTP protocol with small per-connection buffers.

eventlet gives every connection a 16 KB write buffer and an 8 KB read buffer. A websocket
keeps its HTTP connection open for hours but only uses those buffers for the upgrade
request; measured with tracemalloc they were ~25 KB of a connection's ~47 KB. 2 KB holds
any handshake or ordinary request line and headers; larger bodies and responses bypass
a buffered file's buffer anyway (one extra write per response at most).
"""

from eventlet import wsgi

BUFFER_BYTES = 2048


class SmallBufferHttpProtocol(wsgi.HttpProtocol):
    rbufsize = BUFFER_BYTES
    wbufsize = BUFFER_BYTES
