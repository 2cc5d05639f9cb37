"""The harness's own pieces, checked without the proxy: if these fail, the
other failures are not the proxy's fault."""

import smtplib
import ssl
import uuid

import helpers


def test_harness_exim_delivers_to_maildir(exim):
    tok = "h-" + uuid.uuid4().hex
    body = ("Subject: %s\r\n\r\nline one\r\n.leading dot\r\n" % tok).encode()
    with smtplib.SMTP("127.0.0.1", exim.port, timeout=10) as s:
        code, msg = s.ehlo("harness.test")
        assert code == 250
        assert b"CHUNKING" in msg and b"PIPELINING" in msg
        s.sendmail("h@example.org", ["x@example.org"], body)
    (got,) = exim.wait_messages(tok)
    _, rest = helpers.exim_headers_and_rest(got)
    assert rest == body.replace(b"\r\n", b"\n")


def test_harness_sink_records_data_and_bdat(sink):
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as s:
        s.ehlo("harness.test")
        s.sendmail("a@example.org", ["b@example.org"],
                   b"Subject: x\r\n\r\n.dot\r\n")
        s.mail("a@example.org")
        s.rcpt("b@example.org")
        s.putcmd("BDAT 5")
        s.send(b"ab\n\r\n")
        assert s.getreply()[0] == 250
        s.putcmd("BDAT 3 LAST")
        s.send(b"xyz")
        assert s.getreply()[0] == 250
    assert sink.wait_closed()
    (m1, m2) = sink.completed_messages()
    assert m1.content == b"Subject: x\r\n\r\n..dot\r\n"
    assert m2.chunks == [b"ab\n\r\n", b"xyz"]


def test_harness_certificates_verify_against_test_ca(certs):
    ctx = certs.client_context()
    for name in ("mx1", "mx2", "wild", "expired"):
        der = certs.der(name)
        assert der
    assert ctx.cert_store_stats()["x509_ca"] == 1


def test_harness_libconfig_writer():
    text = helpers.to_libconfig({
        "a": 1, "b": "x\"y", "listeners": [{"tls": {"certificates": []},
                                            "p": {"d": ["x", ".y"]}}]})
    assert 'b = "x\\"y";' in text
    assert "certificates = ( );" in text
    assert 'd = [ "x", ".y" ];' in text


def test_harness_sink_fault_options(sink_factory, tmp_path):
    import socket
    s = sink_factory(die_after_data_bytes=10, unsolicited={
        "after": b"NOOP", "data": b"250 extra\r\n"})
    c = helpers.Client(s.port)
    c.greeting()
    assert c.cmd("NOOP").raw == b"250 2.0.0 Ok\r\n"
    assert c.read_reply().raw == b"250 extra\r\n"
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@example.org>")
    assert c.cmd("DATA").code == 354
    c.send(b"x" * 50 + b"\r\n.\r\n")
    assert c.read_until_closed(5) == b""
    (m,) = s.all_messages()
    assert not m.completed

    u = sink_factory(unix_path=str(tmp_path / "s.sock"), expect_proxy="v1")
    raw = socket.socket(socket.AF_UNIX)
    raw.settimeout(5)
    raw.connect(str(tmp_path / "s.sock"))
    c = helpers.Client(0, sock=raw)
    c.send(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")
    c.greeting()
    assert c.cmd("QUIT").code == 221
    assert u.wait_closed()
    assert u.all_sessions()[0].proxy_header == \
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
    assert u.all_commands() == [b"QUIT\r\n"]


def test_harness_sink_empty_message_and_split_end(sink):
    c = helpers.Client(sink.port)
    c.greeting()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@example.org>")
    assert c.cmd("DATA").code == 354
    c.send(b".\r\n")
    assert c.read_reply().code == 250
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@example.org>")
    assert c.cmd("DATA").code == 354
    for piece in (b"a\r", b"\n.", b"\r", b"\nNOOP\r\n"):
        c.send(piece)
    assert c.read_reply().code == 250
    assert c.read_reply().code == 250
    m1, m2 = sink.completed_messages()
    assert bytes(m1.content) == b"" and bytes(m2.content) == b"a\r\n"
