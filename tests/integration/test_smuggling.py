"""SMTP smuggling (CVE-2023-51764/51765/51766): only <CRLF>.<CRLF> ends
DATA, and with bare_newline = "reject" a message holding a bare CR or LF
is refused with 554 5.5.2 and never completed at the backend."""

import uuid

import pytest

import helpers

# Fake end-of-data shapes that some MTAs honour.
SHAPES = {
    "lf-dot-lf": b"\n.\n",
    "cr-dot-cr": b"\r.\r",
    "lf-dot-crlf": b"\n.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "crlf-dot-cr": b"\r\n.\r",
}


def smuggling_content(shape, victim, tok):
    """The outer message, then a fake end, then a whole second transaction
    whose own <CRLF>.<CRLF> is also the real end of the outer DATA."""
    return (b"From: <a@example.org>\r\nSubject: " + tok + b"\r\n\r\nhello"
            + shape
            + b"MAIL FROM:<smuggled@evil.example>\r\n"
            + b"RCPT TO:<" + victim + b">\r\n"
            + b"DATA\r\n"
            + b"Subject: smuggled " + tok + b"\r\n\r\nsmuggled\r\n")


def send_message(c, content):
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(content + b".\r\n")
    return c.read_reply()


def finish(c):
    """After the 554 the proxy may go on or end with 421; both are fine."""
    try:
        r = c.cmd("QUIT")
        assert r.code in (221, 421), r
    except (EOFError, ConnectionError):
        pass


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_smuggling_rejected_and_sink_sees_one_transaction_at_most(
        sink, proxy_factory, connect, shape):
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = send_message(c, smuggling_content(shape, b"victim@example.org",
                                          b"t"))
    assert (r.code, r.enhanced) == (554, "5.5.2"), r
    finish(c)
    sink.wait_closed()
    cmds = sink.all_commands()
    assert not any(b"smuggled@evil.example" in l for l in cmds), cmds
    assert not any(b"victim@example.org" in l for l in cmds), cmds
    assert sink.completed_messages() == [], sink.completed_messages()


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_smuggling_rejected_and_exim_delivers_nothing(
        exim, proxy_factory, connect, shape):
    tok = uuid.uuid4().hex.encode()
    victim = b"victim-" + tok[:12] + b"@example.org"
    c = connect(proxy_factory(exim))
    c.ehlo()
    r = send_message(c, smuggling_content(shape, victim, tok))
    assert (r.code, r.enhanced) == (554, "5.5.2"), r
    finish(c)
    # Give exim the time it would need to deliver anything it accepted.
    helpers.wait_until(lambda: exim.messages(tok), 2.0)
    assert exim.messages(tok) == [], exim.messages(tok)
    log = exim.mainlog()
    assert victim.decode() not in log, log[-3000:]


def test_session_usable_after_smuggling_refusal(sink, proxy_factory,
                                                connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = send_message(c, smuggling_content(b"\n.\n", b"victim@example.org",
                                          b"t"))
    assert (r.code, r.enhanced) == (554, "5.5.2"), r
    try:
        r = c.cmd("RSET")
    except EOFError:
        return          # ending the session (with or without 421) is allowed
    if r.code == 421:
        return
    assert r.code == 250, r
    r = send_message(c, b"Subject: clean\r\n\r\nclean\r\n")
    assert r.code == 250, r
    assert sink.wait_for(lambda: sink.completed_messages())
    (m,) = sink.completed_messages()
    assert helpers.split_received(bytes(m.content))[1] == \
        b"Subject: clean\r\n\r\nclean\r\n"


@pytest.mark.parametrize("content", [
    b"Subject: bare\r\n\r\nbare LF\nhere\r\n",
    b"Subject: bare\r\n\r\nbare CR\rhere\r\n",
    b"Subject: bare\n\r\nLF in header\r\n",
], ids=["bare-lf-in-body", "bare-cr-in-body", "bare-lf-in-header"])
def test_bare_newline_in_content_is_rejected(sink, proxy_factory, connect,
                                             content):
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = send_message(c, content)
    assert (r.code, r.enhanced) == (554, "5.5.2"), r
    finish(c)
    sink.wait_closed()
    assert sink.completed_messages() == []


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_bare_newline_pass_relays_bytes_in_one_transaction(
        sink, proxy_factory, connect, shape):
    proxy = proxy_factory(sink, listener={"policy": {"bare_newline": "pass"}})
    content = smuggling_content(shape, b"victim@example.org", b"t")
    c = connect(proxy)
    c.ehlo()
    r = send_message(c, content)
    assert r.code == 250, r
    c.cmd("QUIT")
    assert sink.wait_closed()
    cmds = sink.all_commands()
    assert not any(b"smuggled@evil.example" in l for l in cmds), cmds
    (m,) = sink.completed_messages()
    assert helpers.split_received(bytes(m.content))[1] == content
    assert [v for s in sink.all_sessions() for v in s.verbs()].count(
        b"DATA") == 1


def test_bdat_chunks_with_bare_newlines_are_not_rejected(
        sink, proxy_factory, connect):
    """BDAT is length-counted: bare CR/LF inside a chunk are relayed."""
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@example.org>")
    chunk = b"Subject: b\r\n\r\nx\n.\nMAIL FROM:<smuggled@evil.example>\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    r = c.read_reply()
    assert r.code == 250, r
    c.cmd("QUIT")
    assert sink.wait_closed()
    (m,) = sink.completed_messages()
    assert helpers.split_received(bytes(m.content))[1] == chunk
    assert not any(b"smuggled" in l for l in sink.all_commands())
