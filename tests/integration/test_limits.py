"""Connection limits (SPEC §3 limits, §4 "too many connections")."""

import time

import helpers


def test_max_connections_per_ip(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={
        "limits": {"max_connections_per_ip": 2}})
    a = connect(proxy)
    b = connect(proxy)
    c = connect(proxy, greet=False)
    r = c.read_reply()
    assert (r.code, r.enhanced) == (421, "4.7.0"), r
    assert c.read_until_closed(5) == b""
    # The two sessions still work; after one leaves a new one is accepted.
    assert a.cmd("NOOP").code == 250
    assert b.cmd("NOOP").code == 250
    a.cmd("QUIT")
    a.read_until_closed(5)

    def admitted():
        d = helpers.Client(proxy.port)
        try:
            return d.read_reply().code == 220
        finally:
            d.close()

    assert helpers.wait_until(admitted, 5)


def test_max_connections_per_listener(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"limits": {"max_connections": 1}})
    a = connect(proxy)
    c = connect(proxy, greet=False)
    r = c.read_reply()
    assert (r.code, r.enhanced) == (421, "4.7.0"), r
    assert a.cmd("NOOP").code == 250


def test_many_sequential_sessions(sink, proxy_factory, connect):
    proxy = proxy_factory(sink)
    for i in range(50):
        c = connect(proxy)
        c.ehlo()
        assert c.cmd("QUIT").code == 221
        c.close()


def test_many_concurrent_sessions(sink, proxy_factory, connect, tls_ctx):
    proxy = proxy_factory(sink)
    clients = [connect(proxy) for _ in range(40)]
    for c in clients:
        c.send(b"EHLO client.test\r\n")
    for c in clients:
        assert c.read_reply().code == 250
    for c in clients[:10]:
        c.starttls(tls_ctx)
        assert c.ehlo().code == 250
    for c in clients:
        assert c.cmd("NOOP").code == 250


def test_abrupt_client_disconnects_do_not_hurt(sink, proxy_factory, connect,
                                               tls_ctx):
    proxy = proxy_factory(sink)
    for i in range(10):
        c = connect(proxy)
        c.ehlo()
        if i % 2:
            c.cmd("STARTTLS")
            c.send(b"\x16\x03\x01\x00")     # half a TLS record
        else:
            c.send(b"MAIL FROM:<a@example.org>\r\nDATA\r\nhalf a mess")
        c.close()
    time.sleep(0.3)
    c = connect(proxy)
    assert c.ehlo().code == 250
