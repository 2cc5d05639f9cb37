"""Connections that have not sent their PROXY header yet are bounded too:
the limits count real client addresses, known only from the header, so
until it arrives a worker holds at most max_connections such connections
and closes the ones beyond, without a reply."""

import socket
import time


def test_connections_waiting_for_proxy_header_are_bounded(sink,
                                                         proxy_factory):
    proxy = proxy_factory(sink, top={"workers": 1}, listener={
        "proxy_protocol": True, "limits": {"max_connections": 2}})
    held = []
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        held.append(s)
    time.sleep(0.2)
    extra = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    extra.settimeout(3)
    assert extra.recv(100) == b"", "third header-less connection kept"
    extra.close()
    for s in held:                    # the first two still wait
        s.settimeout(0.3)
        try:
            data = s.recv(100)
            assert False, "closed or answered early: %r" % data
        except socket.timeout:
            pass
    # A header frees the slot; the session then proceeds as usual.
    held[0].sendall(b"PROXY TCP4 198.51.100.9 192.0.2.25 40000 25\r\n")
    held[0].settimeout(5)
    assert held[0].recv(100).startswith(b"220 "), "no greeting after header"
    late = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    late.settimeout(0.5)
    try:
        data = late.recv(100)
        assert False, "new header-less connection refused: %r" % data
    except socket.timeout:
        pass
    for s in held + [late]:
        s.close()
