"""STARTTLS: delivery through TLS, CVE-2011-0411 injection, the state reset
after the handshake and the proxy's own STARTTLS replies (SPEC §4)."""

import re
import smtplib
import ssl
import time
import uuid

import pytest

import helpers


def smtplib_tls_session(proxy, ctx, sni):
    s = smtplib.SMTP(timeout=15)
    s.connect("127.0.0.1", proxy.port)
    s._host = sni           # smtplib uses it as server_hostname for TLS
    code, _ = s.ehlo("client.test")
    assert code == 250
    code, msg = s.starttls(context=ctx)
    assert code == 220, msg
    assert msg == b"2.0.0 Ready to start TLS"
    code, _ = s.ehlo("client.test")
    assert code == 250
    return s


@pytest.mark.parametrize("sni", ["mx1.example.org", "mx2.example.org"])
def test_starttls_message_delivered_by_exim_with_one_received_header(
        exim, proxy_factory, tls_ctx, sni):
    proxy = proxy_factory(exim)
    tok = "tok-" + uuid.uuid4().hex
    content = ("From: <sender@example.org>\r\n"
               "To: <rcpt@example.org>\r\n"
               "Subject: %s\r\n"
               "\r\n"
               "Hello through TLS.\r\n"
               "\r\n"
               "  indented line\t with tab\r\n"
               "8bit: \xe9t\xe9\r\n" % tok).encode("latin-1")
    s = smtplib_tls_session(proxy, tls_ctx, sni)
    version, cipher = s.sock.version(), s.sock.cipher()[0]
    assert version == "TLSv1.3"
    s.sendmail("sender@example.org", ["rcpt@example.org"], content)
    s.quit()

    (got,) = exim.wait_messages(tok)
    _, rest = helpers.exim_headers_and_rest(got)
    # Exactly one more Received header (the proxy's), then our message.
    m = re.match(rb"\AReceived:[^\n]*\n(?:[ \t][^\n]*\n)*", rest)
    assert m, "no proxy Received header in %r" % got[:600]
    body = rest[m.end():]
    assert body == content.replace(b"\r\n", b"\n")
    assert len(helpers.received_headers(got)) == 2, got[:800]
    hdr = helpers.received_headers(m.group(0))[0]
    assert "TLSv1.3" in hdr, hdr
    assert cipher in hdr, hdr
    assert re.search(r"(?<![\w.-])mx(?![\w.-])", hdr), hdr
    assert "127.0.0.1" in hdr, hdr
    assert sni in hdr, hdr


def test_starttls_reply_text(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = c.cmd("STARTTLS")
    assert r.raw == b"220 2.0.0 Ready to start TLS\r\n"


def test_starttls_is_never_forwarded_and_ehlo_after_tls_is(
        sink, proxy_factory, connect, tls_ctx):
    c = connect(proxy_factory(sink))
    c.ehlo("first.test")
    c.starttls(tls_ctx)
    c.ehlo("second.test")
    c.cmd("QUIT")
    assert sink.wait_closed()
    verbs = [v for s in sink.all_sessions() for v in s.verbs()]
    assert b"STARTTLS" not in verbs
    assert b"STARTTLS" not in sink.all_raw()
    assert b"EHLO second.test\r\n" in sink.all_commands()


@pytest.mark.parametrize("injected", [
    b"MAIL FROM:<evil@x.example>\r\n",
    b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@example.org>\r\n",
    b"RSET\r\n",
], ids=["mail", "mail-rcpt", "rset"])
def test_starttls_injected_commands_are_discarded(
        sink, proxy_factory, connect, tls_ctx, injected):
    """CVE-2011-0411: commands pipelined after STARTTLS in the same write
    must die with the plaintext phase."""
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.send(b"STARTTLS\r\n" + injected)
    r = c.read_reply()
    assert (r.code, r.enhanced) == (220, "2.0.0"), r
    c.wrap(tls_ctx, "mx1.example.org")      # asserts nothing followed the 220
    r = c.ehlo("client.test")
    # The first reply after TLS answers our EHLO, not an injected command.
    assert r.texts[0] == "sink.test greets client.test", r
    r = c.cmd("NOOP")
    assert r.raw == b"250 2.0.0 Ok\r\n"
    assert c.pending(0.5) == b""
    c.cmd("QUIT")
    assert sink.wait_closed()
    cmds = sink.all_commands()
    assert not any(b"evil@x.example" in l for l in cmds), cmds
    assert not any(b"victim@" in l for l in cmds), cmds
    if injected.startswith(b"RSET"):
        assert b"RSET" not in [v for s in sink.all_sessions()
                               for v in s.verbs()], cmds
    assert b"evil@x.example" not in sink.all_raw()


def test_mail_after_tls_before_ehlo_is_refused(sink, proxy_factory, connect,
                                               tls_ctx):
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.starttls(tls_ctx)
    r = c.cmd("MAIL FROM:<a@example.org>")
    assert (r.code, r.enhanced) == (503, "5.5.1"), r
    r = c.cmd("RCPT TO:<b@example.org>")
    assert (r.code, r.enhanced) == (503, "5.5.1"), r
    # NOOP and RSET are allowed before the new EHLO.
    assert c.cmd("NOOP").code == 250
    assert c.cmd("RSET").code == 250
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    mails = [l for l in sink.all_commands() if l.upper().startswith(b"MAIL")]
    assert len(mails) == 1, sink.all_commands()


def test_helo_after_tls_also_resets_state(sink, proxy_factory, connect,
                                          tls_ctx):
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.starttls(tls_ctx)
    assert c.cmd("HELO client.test").code == 250
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250


def test_ehlo_and_starttls_pipelined_in_one_write(sink, proxy_factory,
                                                  connect, tls_ctx):
    c = connect(proxy_factory(sink))
    c.send(b"EHLO client.test\r\nSTARTTLS\r\n")
    r1 = c.read_reply()
    assert r1.code == 250 and "STARTTLS" in r1.keywords(), r1
    r2 = c.read_reply()
    assert (r2.code, r2.enhanced) == (220, "2.0.0"), r2
    c.wrap(tls_ctx, "mx1.example.org")
    r = c.ehlo()
    assert "STARTTLS" not in r.keywords()
    assert c.cmd("NOOP").code == 250


def test_starttls_with_argument_is_501(sink, proxy_factory, connect, tls_ctx):
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = c.cmd("STARTTLS now")
    assert (r.code, r.enhanced) == (501, "5.5.4"), r
    # The session goes on and a proper STARTTLS still works.
    assert c.cmd("NOOP").code == 250
    c.starttls(tls_ctx)
    assert c.ehlo().code == 250


def test_starttls_twice_is_503(sink, proxy_factory, connect, tls_ctx):
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    r = c.cmd("STARTTLS")
    assert (r.code, r.enhanced) == (503, "5.5.1"), r
    assert c.cmd("NOOP").code == 250


def test_starttls_lowercase_is_accepted(sink, proxy_factory, connect,
                                        tls_ctx):
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = c.cmd("starttls")
    assert (r.code, r.enhanced) == (220, "2.0.0"), r
    c.wrap(tls_ctx, "mx1.example.org")
    assert c.ehlo().code == 250


def test_tls_handshake_failure_does_not_reach_backend(sink, proxy_factory,
                                                      connect):
    """Garbage instead of a ClientHello: the session ends, the proxy lives."""
    proxy = proxy_factory(sink)
    c = connect(proxy)
    c.ehlo()
    c.cmd("STARTTLS")
    c.send(b"MAIL FROM:<plain@example.org>\r\n" * 4)
    c.read_until_closed(15)
    assert sink.wait_closed()
    assert b"plain@example.org" not in sink.all_raw()
    # Still serving.
    c2 = connect(proxy)
    assert c2.ehlo().code == 250


def test_tls_min_version_refuses_older_clients(sink, proxy_factory, connect,
                                               certs):
    proxy = proxy_factory(sink, listener={"tls": {"min_version": "TLSv1.3"}})
    c = connect(proxy)
    c.ehlo()
    c.cmd("STARTTLS")
    ctx = certs.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        c.wrap(ctx, "mx1.example.org")
        c.ehlo()


def test_tls12_client_works_by_default(sink, proxy_factory, connect, certs):
    c = connect(proxy_factory(sink))
    c.ehlo()
    ctx = certs.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    c.starttls(ctx)
    assert c.sock.version() == "TLSv1.2"
    assert c.ehlo().code == 250
