"""Backend failures become 4xx replies; nothing is lost, nothing invented
(SPEC §4 table, "Nothing is lost", "Unsolicited backend output")."""

import time

import helpers


def test_backend_unreachable_gives_421_430_and_close(proxy_factory,
                                                     connect):
    proxy = proxy_factory("127.0.0.1:%d" % helpers.closed_port())
    c = connect(proxy, greet=False)
    r = c.read_reply()
    assert (r.code, r.enhanced) == (421, "4.3.0"), r
    assert c.read_until_closed(5) == b""


def test_backend_unreachable_proxy_keeps_serving(proxy_factory, connect):
    proxy = proxy_factory("127.0.0.1:%d" % helpers.closed_port())
    for _ in range(3):
        c = connect(proxy, greet=False)
        assert c.read_reply().code == 421
        c.close()


def test_backend_closes_before_greeting_gives_421(sink_factory,
                                                  proxy_factory, connect):
    sink = sink_factory(accept_and_close=True)
    c = connect(proxy_factory(sink), greet=False)
    r = c.read_reply()
    assert r.code == 421 and r.enhanced.startswith("4."), r
    assert c.read_until_closed(5) == b""


def test_backend_dies_mid_data_gives_4xx_never_250(sink_factory,
                                                   proxy_factory, connect):
    sink = sink_factory(die_after_data_bytes=200)
    c = connect(proxy_factory(sink))
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    try:
        c.send(b"Subject: doomed\r\n\r\n" + b"x" * 70 + b"\r\n" * 1
               + (b"y" * 76 + b"\r\n") * 100 + b".\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = c.read_reply()
    assert (r.code, r.enhanced) == (421, "4.4.2"), r
    assert c.read_until_closed(5) == b""


def test_backend_dies_while_idle_gives_421_on_next_command(
        sink_factory, proxy_factory, connect):
    sink = sink_factory()
    c = connect(proxy_factory(sink))
    c.ehlo()
    sink.stop()     # closes the sink's sessions
    time.sleep(0.5)
    try:
        c.send(b"NOOP\r\n")
        r = c.read_reply()
    except EOFError:
        return      # closing without a reply is acceptable before a command
    assert r.code == 421 and r.enhanced == "4.4.2", r


def test_unsolicited_backend_output_is_dropped(sink_factory, proxy_factory,
                                               connect):
    sink = sink_factory(unsolicited={
        "after": b"NOOP", "data": b"250 2.0.0 UNSOLICITED-EXTRA\r\n"})
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = c.cmd("NOOP")
    assert r.raw == b"250 2.0.0 Ok\r\n"
    r = c.cmd("RSET")
    assert r.raw == b"250 2.0.0 Ok\r\n", r
    assert c.pending(0.5) == b""


def test_late_unsolicited_backend_output_is_dropped(sink_factory,
                                                    proxy_factory, connect):
    sink = sink_factory(unsolicited={
        "after": b"NOOP", "data": b"250 2.0.0 UNSOLICITED-LATE\r\n",
        "delay": 0.3})
    c = connect(proxy_factory(sink))
    c.ehlo()
    assert c.cmd("NOOP").raw == b"250 2.0.0 Ok\r\n"
    assert c.pending(1.0) == b""
    r = c.cmd("MAIL FROM:<a@example.org>")
    assert r.raw == b"250 2.1.0 Ok\r\n", r


def test_backend_output_before_handshake_never_reaches_tls_client(
        sink_factory, proxy_factory, connect, tls_ctx):
    sink = sink_factory(unsolicited={
        "after": b"EHLO", "data": b"250 2.0.0 STALE-PLAINTEXT\r\n"})
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.starttls(tls_ctx)
    r = c.ehlo()
    assert b"STALE" not in r.raw, r
    r = c.cmd("NOOP")
    assert r.raw == b"250 2.0.0 Ok\r\n", r
    assert c.pending(0.5) == b""


def test_backend_refusal_relayed_verbatim(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = c.cmd("RCPT TO:<b@example.org>")      # no MAIL yet: sink says 503
    assert r.raw == b"503 5.5.1 Error: need MAIL command\r\n"
    r = c.cmd("XYZZY plugh")
    assert r.raw == b"502 5.5.2 Error: command not recognized\r\n"


def test_backend_temporary_refusal_of_message_relayed(sink_factory,
                                                      proxy_factory,
                                                      connect):
    sink = sink_factory(data_reply=b"451 4.3.0 Try again later, sink\r\n")
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@example.org>")
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    assert c.read_reply().raw == b"451 4.3.0 Try again later, sink\r\n"
    assert c.cmd("NOOP").code == 250


def test_backend_permanent_refusal_of_message_relayed(sink_factory,
                                                      proxy_factory,
                                                      connect):
    sink = sink_factory(data_reply=(b"554-5.7.1 first line\r\n"
                                    b"554 5.7.1 Rejected by the sink\r\n"))
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@example.org>")
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    assert c.read_reply().raw == (b"554-5.7.1 first line\r\n"
                                  b"554 5.7.1 Rejected by the sink\r\n")


def test_late_backend_output_before_starttls_never_reaches_tls_client(
        sink_factory, proxy_factory, connect, tls_ctx):
    sink = sink_factory(unsolicited={
        "after": b"EHLO", "data": b"250 2.0.0 STALE-LATE\r\n",
        "delay": 0.1})
    c = connect(proxy_factory(sink))
    c.ehlo()
    time.sleep(0.5)         # the stale line has reached the proxy by now
    c.starttls(tls_ctx)
    r = c.ehlo()
    assert b"STALE" not in r.raw, r
    assert r.texts[0] == "sink.test greets client.test", r
    assert c.cmd("NOOP").raw == b"250 2.0.0 Ok\r\n"
