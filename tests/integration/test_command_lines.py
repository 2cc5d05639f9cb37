"""Command-line framing: max_line, NUL, bare CR, bare LF (SPEC §4)."""

import pytest


def test_line_longer_than_max_line_is_500_and_session_goes_on(
        sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"limits": {"max_line": 512}})
    c = connect(proxy)
    c.ehlo()
    r = c.cmd(b"NOOP " + b"x" * 595)
    assert (r.code, r.enhanced) == (500, "5.5.2"), r
    assert c.cmd("NOOP").raw == b"250 2.0.0 Ok\r\n"
    assert c.pending(0.3) == b""
    c.cmd("QUIT")
    assert sink.wait_closed()
    assert all(len(l) <= 512 for l in sink.all_commands())
    assert b"xxxxxxxx" not in sink.all_raw()


def test_max_line_counts_the_crlf(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"limits": {"max_line": 512}})
    c = connect(proxy)
    c.ehlo()
    exact = b"NOOP " + b"a" * (512 - 5 - 2)          # 512 with CRLF
    assert len(exact) + 2 == 512
    r = c.cmd(exact)
    assert r.code == 250, r
    r = c.cmd(exact + b"b")                          # 513 with CRLF
    assert (r.code, r.enhanced) == (500, "5.5.2"), r
    c.cmd("QUIT")
    assert sink.wait_closed()
    assert exact + b"\r\n" in sink.all_commands()
    assert not any(l.endswith(b"ab\r\n") for l in sink.all_commands())


def test_rest_of_overlong_line_is_discarded_not_parsed(sink, proxy_factory,
                                                       connect):
    proxy = proxy_factory(sink, listener={"limits": {"max_line": 512}})
    c = connect(proxy)
    c.ehlo()
    head = b"NOOP " + b"a" * (512 - 5)
    line = head + b"MAIL FROM:<tail@example.org>\r\n"
    # Sent in pieces so a reader cannot see the whole line at once.
    c.send(line[:300])
    c.send(line[300:520])
    c.send(line[520:])
    r = c.read_reply()
    assert (r.code, r.enhanced) == (500, "5.5.2"), r
    assert c.cmd("NOOP").raw == b"250 2.0.0 Ok\r\n"
    assert c.pending(0.3) == b""
    c.cmd("QUIT")
    assert sink.wait_closed()
    assert not any(b"tail@example.org" in l for l in sink.all_commands())


def test_default_max_line_accepts_long_commands(sink, proxy_factory,
                                                connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = c.cmd(b"NOOP " + b"y" * 3000)
    assert r.code == 250, r
    r = c.cmd(b"NOOP " + b"y" * 5000)
    assert (r.code, r.enhanced) == (500, "5.5.2"), r


@pytest.mark.parametrize("line", [b"NOOP a\x00b", b"\x00NOOP",
                                  b"MAIL FROM:<a\x00@example.org>"],
                         ids=["nul-in-arg", "nul-first", "nul-in-mail"])
def test_nul_byte_in_command_is_500_and_not_forwarded(sink, proxy_factory,
                                                      connect, line):
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = c.cmd(line)
    assert (r.code, r.enhanced) == (500, "5.5.2"), r
    assert c.cmd("NOOP").code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    assert b"\x00" not in sink.all_raw()
    assert [v for s in sink.all_sessions() for v in s.verbs()].count(
        b"NOOP") == 1


@pytest.mark.parametrize("line", [b"NOOP a\rb", b"MAIL FROM:<a@example.org>\r"
                                  b"RCPT TO:<b@example.org>"],
                         ids=["cr-in-arg", "cr-between-commands"])
def test_bare_cr_in_command_is_500_and_not_forwarded(sink, proxy_factory,
                                                     connect, line):
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = c.cmd(line)
    assert (r.code, r.enhanced) == (500, "5.5.2"), r
    assert c.pending(0.3) == b""
    assert c.cmd("NOOP").code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    verbs = [v for s in sink.all_sessions() for v in s.verbs()]
    assert b"MAIL" not in verbs and b"RCPT" not in verbs
    assert verbs.count(b"NOOP") == 1


def test_bare_lf_command_forwarded_with_crlf(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.send(b"EHLO client.test\n")
    assert c.read_reply().code == 250
    c.send(b"NOOP\n")
    assert c.read_reply().code == 250
    c.send(b"MAIL FROM:<a@example.org>\n")
    assert c.read_reply().code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    cmds = sink.all_commands()
    assert b"EHLO client.test\r\n" in cmds
    assert b"NOOP\r\n" in cmds
    assert b"MAIL FROM:<a@example.org>\r\n" in cmds
    assert all(l.endswith(b"\r\n") for l in cmds), cmds


def test_bare_lf_pipelined_commands(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.send(b"NOOP\nRSET\nNOOP\n")
    assert [c.read_reply().code for _ in range(3)] == [250, 250, 250]


def test_empty_line_does_not_break_the_session(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.send(b"\r\n")
    r = c.read_reply()
    assert 500 <= r.code < 600, r
    assert c.cmd("NOOP").code == 250
