"""Listener and backend variants: implicit TLS, unix-socket backend, PROXY
protocol in and out, XCLIENT, /metrics."""

import re
import socket
import ssl
import struct
import urllib.request

import pytest

import helpers
from sink import PROXY_V2_SIG


def test_implicit_tls_listener(sink, proxy_factory, certs, tls_ctx):
    proxy = proxy_factory(sink, listener={"tls_mode": "implicit"})
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    tls = tls_ctx.wrap_socket(raw, server_hostname="mx2.example.org")
    c = helpers.Client(proxy.port, sock=tls)
    try:
        assert c.greeting().raw == b"220 sink.test ESMTP RecordingSink ready\r\n"
        r = c.ehlo()
        assert "STARTTLS" not in r.keywords(), r
        assert "AUTH" in r.keywords(), r
        r = c.cmd("STARTTLS")
        assert (r.code, r.enhanced) == (503, "5.5.1"), r
        assert tls.getpeercert(binary_form=True) == certs.der("mx2")
    finally:
        c.close()


def test_unix_socket_backend(sink_factory, proxy_factory, connect, tmp_path):
    sink = sink_factory(unix_path=str(tmp_path / "sink.sock"))
    proxy = proxy_factory(sink)
    c = connect(proxy)
    assert c.ehlo().code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    assert sink.all_commands()[0] == b"EHLO client.test\r\n"


def test_proxy_protocol_v1_to_backend(sink_factory, proxy_factory, connect):
    sink = sink_factory(expect_proxy="v1")
    proxy = proxy_factory(sink, listener={"backend": {"proxy_protocol": "v1"}})
    c = connect(proxy)
    cport = c.sock.getsockname()[1]
    assert c.ehlo().code == 250
    (s,) = sink.all_sessions()
    assert s.proxy_header == b"PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n" % (
        cport, proxy.port)


def test_proxy_protocol_v2_to_backend(sink_factory, proxy_factory, connect):
    sink = sink_factory(expect_proxy="v2")
    proxy = proxy_factory(sink, listener={"backend": {"proxy_protocol": "v2"}})
    c = connect(proxy)
    cport = c.sock.getsockname()[1]
    assert c.ehlo().code == 250
    (s,) = sink.all_sessions()
    h = s.proxy_header
    assert h[:12] == PROXY_V2_SIG
    assert h[12] == 0x21, h            # version 2, PROXY
    assert h[13] == 0x11, h            # TCP over IPv4
    src, dst, sport, dport = struct.unpack("!4s4sHH", h[16:28])
    assert socket.inet_ntoa(src) == "127.0.0.1"
    assert socket.inet_ntoa(dst) == "127.0.0.1"
    assert (sport, dport) == (cport, proxy.port)


def test_proxy_protocol_in_is_passed_on(sink_factory, proxy_factory,
                                        connect):
    sink = sink_factory(expect_proxy="v1")
    proxy = proxy_factory(sink, listener={
        "proxy_protocol": True, "backend": {"proxy_protocol": "v1"}})
    c = connect(proxy, greet=False)
    c.send(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n")
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    (s,) = sink.all_sessions()
    assert s.proxy_header.startswith(b"PROXY TCP4 192.0.2.7 "), s.proxy_header
    assert s.proxy_header.split()[4] == b"40000", s.proxy_header


@pytest.mark.parametrize("first", [b"EHLO client.test\r\n",
                                   b"PROXY GARBAGE\r\n"],
                         ids=["missing", "malformed"])
def test_proxy_protocol_in_required(sink, proxy_factory, connect, first):
    proxy = proxy_factory(sink, listener={"proxy_protocol": True})
    c = connect(proxy, greet=False)
    c.send(first)
    assert c.read_until_closed(15) == b""


def _xtext_ok(value):
    return re.fullmatch(rb"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*", value) is not None


def test_xclient_sent_when_backend_offers_it(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"backend": {"xclient": True}})
    c = connect(proxy)
    r = c.ehlo("odd+helo=name")
    assert "XCLIENT" not in r.keywords()
    assert c.cmd("NOOP").code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    xl = [l for l in sink.all_commands() if l.upper().startswith(b"XCLIENT")]
    assert xl, sink.all_commands()
    assert any(b"ADDR=127.0.0.1" in l for l in xl), xl
    for l in xl:
        assert len(l) <= 512 and l.endswith(b"\r\n"), l
        for attr in l[:-2].split(b" ")[1:]:
            name, eq, value = attr.partition(b"=")
            assert eq and re.fullmatch(rb"[A-Z]+", name), l
            assert _xtext_ok(value), l
    # The client never sees the XCLIENT exchange: its EHLO reply is normal.
    assert r.texts[0].startswith("sink.test greets"), r


def test_xclient_not_sent_when_backend_lacks_it(sink_factory, proxy_factory,
                                                connect):
    sink = sink_factory(ehlo_keywords=["PIPELINING", "8BITMIME"])
    proxy = proxy_factory(sink, listener={"backend": {"xclient": True}})
    c = connect(proxy)
    c.ehlo()
    c.cmd("QUIT")
    assert sink.wait_closed()
    assert b"XCLIENT" not in sink.all_raw()


def test_metrics_endpoint(sink, proxy_factory, connect):
    mport = helpers.free_port()
    proxy = proxy_factory(sink, top={"stats": {
        "listen": "127.0.0.1:%d" % mport}})
    c = connect(proxy)
    c.ehlo()
    c.cmd("QUIT")
    assert helpers.wait_until(lambda: helpers.port_listening(mport), 5)
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                timeout=10) as resp:
        assert resp.status == 200
        body = resp.read().decode()
    assert "# TYPE" in body, body
    assert re.search(r"^\w+(\{[^}]*\})? \d", body, re.M), body


def test_two_workers_serve_sessions(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, top={"workers": 2})
    for _ in range(6):
        c = connect(proxy)
        assert c.ehlo().code == 250
        c.cmd("QUIT")
