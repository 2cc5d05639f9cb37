"""A real Postfix behind the proxy (issue 8): XCLIENT and PROXY v1/v2 out.

The client connects to the proxy from 127.0.0.2; the proxy connects to
Postfix from 127.0.0.1.  Postfix must log 127.0.0.2 as the client of every
message it queues, accept the proxy's XCLIENT (allowed for 127.0.0.1 only,
with smtpd_forbid_unauth_pipelining = yes, so XCLIENT must not be
pipelined with what follows) and see it once per backend connection
(after one XCLIENT Postfix checks the next against the client's address,
127.0.0.2, and refuses it with 550).  See postfix.py for the instance."""

import re
import socket
import uuid

import pytest

import helpers

CLIENT_ADDR = "127.0.0.2"
QUEUED_RE = re.compile(r"queued as ([0-9A-Za-z]+)")


class LogMark:
    """The part of Postfix's log written after a point in time, so that one
    test's lines never decide another's result."""

    def __init__(self, postfix):
        self.postfix = postfix
        self.offset = len(postfix.log())

    def text(self):
        return self.postfix.log()[self.offset:]


def client_socket(port):
    """A connection to the proxy from CLIENT_ADDR (any 127/8 address is
    local on Linux)."""
    return socket.create_connection(("127.0.0.1", port),
                                    timeout=helpers.IO_TIMEOUT,
                                    source_address=(CLIENT_ADDR, 0))


def send_message(c, token, rcpt="<b@example.org>"):
    """MAIL, RCPT, DATA with a Message-ID holding token; returns the
    queue id from Postfix's relayed 250."""
    r = c.cmd("MAIL FROM:<a@example.org>")
    assert r.code == 250, "MAIL: %r" % r
    r = c.cmd("RCPT TO:" + rcpt)
    assert r.code == 250, "RCPT: %r" % r
    r = c.cmd("DATA")
    assert r.code == 354, "DATA: %r" % r
    c.send(b"Message-ID: <%s@client.test>\r\nSubject: postfix test\r\n\r\n"
           b"hello through the proxy\r\n.\r\n" % token.encode())
    r = c.read_reply()
    assert r.code == 250, "end of DATA: %r" % r
    m = QUEUED_RE.search(r.text)
    assert m, "Postfix's 250 not relayed (no queue id): %r" % r
    return m.group(1)


def check_queued(postfix, mark, qid, token):
    """Postfix logged CLIENT_ADDR as the client of qid, the message-id
    holding token, and delivered it (discard: status=sent)."""
    postfix.wait_log(lambda log: re.search(
        r"\b%s: .*status=sent" % qid, log[mark.offset:]) is not None,
        what="delivery of %s" % qid)
    lines = "\n".join(l for l in mark.text().splitlines()
                      if re.search(r"\b%s: " % qid, l))
    assert re.search(r"\b%s: client=[^\s\[]*\[%s\]" % (
        qid, re.escape(CLIENT_ADDR)), lines), (
        "Postfix did not log client %s for %s:\n%s\n\nwhole log:\n%s" % (
            CLIENT_ADDR, qid, lines, mark.text()))
    assert "message-id=<%s@client.test>" % token in lines, lines


def check_clean(mark, xclients=0):
    """No pipelining complaint and no lost connection in what Postfix
    logged since mark; one session whose commands all succeeded, with
    xclients XCLIENT commands in it.

    Postfix's closing line counts commands: "rcpt=1", or "rcpt=1/2" (ok /
    total) when some failed.  Postfix 3.7 counts a successful XCLIENT as
    "xclient=0/1" (the command resets the session's counters), a second,
    refused one makes it "xclient=0/2"; so for XCLIENT only the total
    counts."""
    log = mark.text()
    assert "improper command pipelining" not in log, log
    assert "lost connection" not in log, log
    disc = [l for l in log.splitlines() if " disconnect from " in l]
    assert len(disc) == 1, "want one disconnect line:\n%s" % log
    counts = dict((m.group(1), (m.group(2), m.group(3))) for m in re.finditer(
        r"\b([a-z]+)=(\d+)(?:/(\d+))?\b", disc[0].split(" disconnect ")[1]))
    xc = counts.pop("xclient", ("0", None))
    counts.pop("commands", None)
    assert int(xc[1] or xc[0]) == xclients, (
        "Postfix saw %s XCLIENT command(s), want %d: %s\n%s" % (
            xc[1] or xc[0], xclients, disc[0], log))
    failed = [k for k, (ok, total) in counts.items()
              if total is not None and ok != total]
    assert not failed, "command(s) %s failed at Postfix: %s\n%s" % (
        failed, disc[0], log)


def wait_disconnect(postfix, mark, n=1):
    postfix.wait_log(lambda log: log[mark.offset:].count(
        " disconnect from ") >= n, what="%d disconnect line(s)" % n)


@pytest.fixture(autouse=True)
def _postfix_log_on_failure(postfix):
    """Postfix's lines of this test, printed at teardown: pytest shows
    them with a failure ("Captured stdout teardown")."""
    mark = LogMark(postfix)
    yield
    print("== Postfix log during this test ==\n%s" % mark.text()[-6000:])


@pytest.fixture
def xproxy(proxy_factory, postfix):
    return proxy_factory(postfix.address,
                         listener={"backend": {"xclient": True}})


def one_message_from_127_0_0_2(proxy, postfix, connect, tls_ctx, tls):
    """EHLO, maybe STARTTLS and EHLO, one message, QUIT, from 127.0.0.2;
    checks Postfix queued it for that client and logged the disconnect.
    Returns the log mark taken before the session."""
    mark = LogMark(postfix)
    token = uuid.uuid4().hex
    c = connect(proxy, sock=client_socket(proxy.port))
    c.ehlo()
    if tls:
        c.starttls(tls_ctx)
        c.ehlo()
    qid = send_message(c, token)
    assert c.cmd("QUIT").code == 221
    check_queued(postfix, mark, qid, token)
    wait_disconnect(postfix, mark)
    return mark


# -- XCLIENT ----------------------------------------------------------------

@pytest.mark.parametrize("tls", [True, False], ids=["starttls", "plain"])
def test_xclient_message_logged_with_client_address(
        xproxy, postfix, connect, tls_ctx, tls):
    mark = one_message_from_127_0_0_2(xproxy, postfix, connect, tls_ctx,
                                      tls)
    check_clean(mark, xclients=1)


def test_xclient_two_messages_in_one_session(xproxy, postfix, connect,
                                             tls_ctx):
    mark = LogMark(postfix)
    tokens = [uuid.uuid4().hex, uuid.uuid4().hex]
    c = connect(xproxy, sock=client_socket(xproxy.port))
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    qids = [send_message(c, tokens[0])]
    assert c.cmd("RSET").code == 250
    qids.append(send_message(c, tokens[1], rcpt="<c@example.com>"))
    assert c.cmd("QUIT").code == 221
    assert qids[0] != qids[1]
    for qid, token in zip(qids, tokens):
        check_queued(postfix, mark, qid, token)
    wait_disconnect(postfix, mark)
    check_clean(mark, xclients=1)


def test_xclient_once_with_rset_and_ehlo_after_starttls(
        xproxy, postfix, connect, tls_ctx):
    """EHLO, STARTTLS, EHLO, RSET, EHLO again, then a message: Postfix
    sees one XCLIENT on its one connection and accepts every command."""
    mark = LogMark(postfix)
    token = uuid.uuid4().hex
    c = connect(xproxy, sock=client_socket(xproxy.port))
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    assert c.cmd("RSET").code == 250
    e = c.ehlo("again.client.test")
    assert "XCLIENT" not in e.keywords()
    qid = send_message(c, token)
    assert c.cmd("QUIT").code == 221
    check_queued(postfix, mark, qid, token)
    wait_disconnect(postfix, mark)
    check_clean(mark, xclients=1)


# -- PROXY protocol -----------------------------------------------------------

@pytest.mark.parametrize("tls", [True, False], ids=["starttls", "plain"])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_message_logged_with_client_address(
        proxy_factory, postfix, connect, tls_ctx, version, tls):
    proxy = proxy_factory(postfix.proxy_address,
                          listener={"backend": {"proxy_protocol": version}})
    mark = one_message_from_127_0_0_2(proxy, postfix, connect, tls_ctx, tls)
    check_clean(mark)
    log = mark.text()
    assert re.search(r" connect from [^\s\[]*\[%s\]" % re.escape(
        CLIENT_ADDR), log), log
