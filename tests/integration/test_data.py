"""DATA and BDAT content is relayed exactly (SPEC §4 "DATA and BDAT")."""

import os
import smtplib
import uuid

import pytest

import helpers


def big_content(tok, size):
    """About size bytes: a header and 78-byte lines of random hex."""
    head = ("Subject: %s\r\nX-Test: large\r\n\r\n" % tok).encode()
    n = (size - len(head)) // 78 + 1
    hexs = os.urandom(n * 34).hex().encode()
    return head + b"".join(b"%08d " % i + hexs[i * 67:i * 67 + 67] + b"\r\n"
                           for i in range(n))


def raw_data_session(c, content_on_wire, sender="a@example.org",
                     rcpt="b@example.org"):
    """MAIL, RCPT, DATA and content_on_wire (already stuffed, without the
    final '.CRLF'); returns the reply to the end of data."""
    assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt).code == 250
    assert c.cmd("DATA").code == 354
    c.send(content_on_wire + b".\r\n")
    return c.read_reply()


@pytest.mark.timeout(120)
def test_ten_mib_message_through_tls_arrives_intact(exim, proxy_factory,
                                                    tls_ctx, connect):
    tok = "big-" + uuid.uuid4().hex
    content = big_content(tok, 10 * 1024 * 1024)
    c = connect(proxy_factory(exim))
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    r = raw_data_session(c, helpers.dot_stuff(content))
    assert r.code == 250, r
    c.cmd("QUIT")
    (got,) = exim.wait_messages(tok, timeout=60)
    _, rest = helpers.exim_headers_and_rest(got)
    _, rest = helpers.exim_headers_and_rest(rest)    # the proxy's header
    assert rest == content.replace(b"\r\n", b"\n")


@pytest.mark.timeout(120)
def test_ten_mib_message_relayed_byte_exact_to_sink(sink, proxy_factory,
                                                    connect):
    content = big_content("big", 10 * 1024 * 1024)
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = raw_data_session(c, content)
    assert r.code == 250, r
    c.cmd("QUIT")
    assert sink.wait_closed(10)
    (m,) = sink.completed_messages()
    _, rest = helpers.split_received(bytes(m.content))
    assert rest == content


DOTTED = (b"Subject: dots\r\n"
          b"\r\n"
          b".leading dot\r\n"
          b"..two leading dots\r\n"
          b".\r\n"
          b"..\r\n"
          b"last line .\r\n"
          b". \r\n")


def test_dot_stuffed_lines_delivered_intact_by_exim(exim, proxy_factory,
                                                    connect):
    tok = "dots-" + uuid.uuid4().hex
    content = DOTTED.replace(b"Subject: dots", b"Subject: " + tok.encode())
    c = connect(proxy_factory(exim))
    c.ehlo()
    r = raw_data_session(c, helpers.dot_stuff(content))
    assert r.code == 250, r
    c.cmd("QUIT")
    (got,) = exim.wait_messages(tok)
    _, rest = helpers.exim_headers_and_rest(got)
    _, rest = helpers.exim_headers_and_rest(rest)
    assert rest == content.replace(b"\r\n", b"\n")


def test_dot_stuffing_relayed_exactly_as_sent(sink, proxy_factory, connect):
    wire = helpers.dot_stuff(DOTTED)
    assert b"\r\n...two leading dots\r\n" in wire
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = raw_data_session(c, wire)
    assert r.code == 250, r
    c.cmd("QUIT")
    assert sink.wait_closed()
    (m,) = sink.completed_messages()
    _, rest = helpers.split_received(bytes(m.content))
    assert rest == wire


def test_end_of_data_split_across_writes(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    for piece in (b"Subject: s\r\n\r\nbody\r", b"\n", b".", b"\r", b"\n"):
        c.send(piece)
    r = c.read_reply()
    assert r.code == 250, r
    assert sink.wait_for(lambda: sink.completed_messages())
    (m,) = sink.completed_messages()
    assert helpers.split_received(bytes(m.content))[1] == \
        b"Subject: s\r\n\r\nbody\r\n"


def test_message_after_message_in_one_session(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    for i in range(3):
        r = raw_data_session(c, b"Subject: n%d\r\n\r\nx\r\n" % i)
        assert r.code == 250, r
    c.cmd("QUIT")
    assert sink.wait_closed()
    ms = sink.completed_messages()
    assert [helpers.split_received(bytes(m.content))[1] for m in ms] == [
        b"Subject: n%d\r\n\r\nx\r\n" % i for i in range(3)]


def test_received_header_disabled(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"received_header": False})
    c = connect(proxy)
    c.ehlo()
    r = raw_data_session(c, b"Subject: plain\r\n\r\nx\r\n")
    assert r.code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    (m,) = sink.completed_messages()
    assert bytes(m.content) == b"Subject: plain\r\n\r\nx\r\n"


def test_received_header_without_tls_names_client_and_listener(
        sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.ehlo("helo.client.test")
    r = raw_data_session(c, b"Subject: plain\r\n\r\nx\r\n")
    assert r.code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    (m,) = sink.completed_messages()
    hdr, rest = helpers.split_received(bytes(m.content))
    assert rest == b"Subject: plain\r\n\r\nx\r\n"
    assert b"127.0.0.1" in hdr
    assert all(len(l) <= 998 for l in hdr.split(b"\r\n"))


# -- BDAT --------------------------------------------------------------------

CHUNKS = [
    b"Subject: chunked\r\n\r\nfirst chunk\r\n.\r\nnot the end\r\n",
    b"bare LF here\nand a bare CR here\r and NUL \x00 and high \xff\xfe",
    b"\r\n.\r\nBDAT 5 LAST\r\nQUIT\r\n",
    b"tail\r\n",
]


def test_bdat_chunks_relayed_byte_exact(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    r = c.ehlo()
    assert "CHUNKING" in r.keywords()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    for i, chunk in enumerate(CHUNKS):
        last = b" LAST" if i == len(CHUNKS) - 1 else b""
        c.send(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
        r = c.read_reply()
        assert r.code == 250, (i, r)
    assert c.cmd("NOOP").code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    (m,) = sink.completed_messages()
    assert m.kind == "BDAT"
    hdr, rest = helpers.split_received(bytes(m.content))
    assert rest == b"".join(CHUNKS)
    # Chunks after the first are passed through as they are.
    assert m.chunks[-(len(CHUNKS) - 1):] == CHUNKS[1:]
    verbs = [v for s in sink.all_sessions() for v in s.verbs()]
    assert verbs.count(b"QUIT") == 1 and verbs.count(b"MAIL") == 1


def test_bdat_pipelined_in_one_write(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    wire = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
    for i, chunk in enumerate(CHUNKS):
        last = b" LAST" if i == len(CHUNKS) - 1 else b""
        wire += b"BDAT %d%s\r\n" % (len(chunk), last) + chunk
    c.send(wire + b"NOOP\r\n")
    codes = [c.read_reply().code for _ in range(2 + len(CHUNKS) + 1)]
    assert codes == [250] * (2 + len(CHUNKS) + 1)
    assert sink.wait_for(lambda: sink.completed_messages())
    (m,) = sink.completed_messages()
    assert helpers.split_received(bytes(m.content))[1] == b"".join(CHUNKS)


def test_bdat_message_delivered_by_exim(exim, proxy_factory, connect,
                                        tls_ctx):
    tok = "bdat-" + uuid.uuid4().hex
    content = ("Subject: %s\r\n\r\nline one\r\n.dot line\r\nline three\r\n"
               % tok).encode()
    chunks = [content[:7], content[7:40], content[40:]]
    c = connect(proxy_factory(exim))
    c.ehlo()
    c.starttls(tls_ctx)
    assert "CHUNKING" in c.ehlo().keywords()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    for i, ch in enumerate(chunks):
        last = b" LAST" if i == len(chunks) - 1 else b""
        c.send(b"BDAT %d%s\r\n" % (len(ch), last) + ch)
        r = c.read_reply()
        assert r.code == 250, (i, r)
    c.cmd("QUIT")
    (got,) = exim.wait_messages(tok)
    _, rest = helpers.exim_headers_and_rest(got)
    hdr, rest = helpers.exim_headers_and_rest(rest)
    assert rest == content.replace(b"\r\n", b"\n")
    assert b"TLSv1.3" in hdr


def test_smtplib_send_through_proxy_to_exim(exim, proxy_factory):
    tok = "plain-" + uuid.uuid4().hex
    proxy = proxy_factory(exim)
    content = ("Subject: %s\r\n\r\nno TLS this time\r\n" % tok).encode()
    with smtplib.SMTP("127.0.0.1", proxy.port, timeout=15) as s:
        s.sendmail("a@example.org", ["b@example.org", "c@example.com"],
                   content)
    got = exim.wait_messages(tok, n=2)
    for g in got:
        _, rest = helpers.exim_headers_and_rest(g)
        _, rest = helpers.exim_headers_and_rest(rest)
        assert rest == content.replace(b"\r\n", b"\n")
