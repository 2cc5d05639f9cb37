"""RFC 2920 pipelining: replies in command order, the proxy's own replies
in the right slots (SPEC §4 "Pipelining")."""

import helpers


def test_pipelined_transaction_replies_in_order(sink, proxy_factory,
                                                connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.send(b"MAIL FROM:<a@example.org>\r\n"
           b"RCPT TO:<b@example.org>\r\n"
           b"RCPT TO:<c@example.org>\r\n"
           b"DATA\r\n")
    codes = [c.read_reply().code for _ in range(4)]
    assert codes == [250, 250, 250, 354]
    c.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\n")
    assert c.read_reply().code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    (m,) = sink.completed_messages()
    assert m.mail_from == b"FROM:<a@example.org>"
    assert m.rcpts == [b"TO:<b@example.org>", b"TO:<c@example.org>"]
    _, rest = helpers.split_received(bytes(m.content))
    assert rest == b"Subject: pipelined\r\n\r\nbody\r\n"


def test_pipelined_batch_with_policy_refusal_in_its_slot(
        sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"policy": {"require_tls": True}})
    c = connect(proxy)
    c.ehlo()
    c.send(b"NOOP\r\nMAIL FROM:<a@x.example>\r\nNOOP\r\n")
    r1, r2, r3 = c.read_reply(), c.read_reply(), c.read_reply()
    assert r1.code == 250, r1
    assert (r2.code, r2.enhanced) == (530, "5.7.0"), r2
    assert r3.code == 250, r3
    assert c.pending(0.3) == b""
    c.cmd("QUIT")
    assert sink.wait_closed()
    verbs = [v for s in sink.all_sessions() for v in s.verbs()]
    assert b"MAIL" not in verbs, sink.all_commands()
    assert verbs.count(b"NOOP") == 2


def test_whole_session_in_one_write(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.send(b"EHLO client.test\r\n"
           b"MAIL FROM:<a@example.org>\r\n"
           b"RCPT TO:<b@example.org>\r\n"
           b"DATA\r\n")
    r = c.read_reply()
    assert r.code == 250 and len(r.lines) > 1
    assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
    c.send(b"Subject: x\r\n\r\none\r\n.\r\nNOOP\r\nQUIT\r\n")
    assert [c.read_reply().code for _ in range(3)] == [250, 250, 221]
    assert sink.wait_closed()
    assert len(sink.completed_messages()) == 1


def test_replies_keep_order_when_commands_arrive_byte_by_byte(
        sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    data = b"NOOP\r\nRSET\r\nHELP\r\nNOOP\r\n"
    for i in range(len(data)):
        c.send(data[i:i + 1])
    rs = [c.read_reply() for _ in range(4)]
    assert [r.code for r in rs] == [250, 250, 502, 250]


def test_pipelined_rcpt_refusals_for_tls_required_domains_in_order(
        sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={
        "policy": {"tls_required_domains": ["example.net"]}})
    c = connect(proxy)
    c.ehlo()
    c.send(b"MAIL FROM:<a@example.org>\r\n"
           b"RCPT TO:<x@example.net>\r\n"
           b"RCPT TO:<y@example.org>\r\n"
           b"RCPT TO:<z@example.net>\r\n"
           b"RSET\r\n")
    rs = [c.read_reply() for _ in range(5)]
    assert [(r.code, r.enhanced) for r in rs] == [
        (250, "2.1.0"), (530, "5.7.0"), (250, "2.1.5"), (530, "5.7.0"),
        (250, "2.0.0")], rs
