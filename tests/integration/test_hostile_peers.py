"""Hostile clients and backends at the edges of a transaction (issue 8,
SPEC §4): a CR that ends a read inside DATA content, clients that vanish
at every point of a transaction, stale and flooding backend output around
STARTTLS, content that trickles, and XCLIENT that must never be pipelined.

Several of these need a backend whose every byte is scripted: Backend runs
one function per connection and records what it received."""

import re
import socket
import struct
import threading
import time

import pytest

import helpers

CRLF = b"\r\n"


class BConn:
    """One backend connection as the scripted backend sees it."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(20)
        self.raw = bytearray()
        self.buf = b""
        self.closed = threading.Event()
        self.notes = []

    def line(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError
            self.raw += d
            self.buf += d
        i = self.buf.index(b"\n")
        line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
        return line

    def exact(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError
            self.raw += d
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def arrived_within(self, wait):
        """Bytes that arrive within wait seconds (read, kept in buf)."""
        got = b""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            finally:
                self.sock.settimeout(20)
            if not d:
                return got
            self.raw += d
            self.buf += d
            got += d

    def send(self, data):
        self.sock.sendall(data)


class Backend:
    """A loopback backend that runs handler(BConn) for each connection."""

    def __init__(self, handler):
        self.handler = handler
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.address = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.conns = []
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        while not self.stop_ev.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c = BConn(s)
            self.conns.append(c)
            threading.Thread(target=self._run, args=(c,),
                             daemon=True).start()

    def _run(self, c):
        try:
            self.handler(c)
        except (EOFError, OSError):
            pass
        finally:
            c.closed.set()
            try:
                c.sock.close()
            except OSError:
                pass

    def stop(self):
        self.stop_ev.set()
        self.t.join(timeout=5)
        self.lsock.close()


@pytest.fixture
def backend_factory():
    made = []

    def make(handler):
        b = Backend(handler)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


EHLO_REPLY = (b"250-backend.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
              b"250 ENHANCEDSTATUSCODES\r\n")


def serve_plain(c, first_ehlo_extra=b""):
    """A well-behaved backend with distinct reply texts; the first EHLO's
    reply is followed by first_ehlo_extra (stale output)."""
    c.send(b"220 backend.test ESMTP\r\n")
    ehlos = 0
    while True:
        line = c.line()
        verb = line.split(b" ", 1)[0].strip().upper()
        if verb in (b"EHLO", b"HELO"):
            ehlos += 1
            c.send(EHLO_REPLY + (first_ehlo_extra if ehlos == 1 else b""))
        elif verb == b"MAIL":
            c.send(b"250 2.1.0 real-mail-ok\r\n")
        elif verb == b"RCPT":
            c.send(b"250 2.1.5 real-rcpt-ok\r\n")
        elif verb == b"DATA":
            c.send(b"354 go ahead\r\n")
            while c.line() != b".\r\n":
                pass
            c.send(b"250 2.0.0 real-queued\r\n")
        elif verb == b"QUIT":
            c.send(b"221 2.0.0 bye\r\n")
            return
        else:
            c.send(b"250 2.0.0 real-ok\r\n")


def begin_data(c):
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    r = c.cmd("DATA")
    assert r.code == 354, r


LONE_CR = re.compile(rb"\r(?!\n)")


# -- 1. a CR that ends a read ---------------------------------------------

@pytest.mark.parametrize("tls", [False, True])
@pytest.mark.parametrize("then", ["command", "close"])
def test_cr_ending_a_read_is_never_forwarded_early(sink, proxy_factory,
                                                   connect, tls_ctx, tls,
                                                   then):
    proxy = proxy_factory(sink)
    c = connect(proxy)
    if tls:
        c.ehlo()
        c.starttls(tls_ctx)
    begin_data(c)
    c.send(b"Subject: t\r\n\r\nhello\r\n.\r")
    time.sleep(0.8)
    raw = sink.all_raw()
    assert raw.endswith(b"hello\r\n."), raw[-60:]   # the CR is held
    assert not LONE_CR.search(raw), raw[-60:]
    if then == "close":
        c.close()
        assert sink.wait_closed(5), "backend connection still open"
    else:
        c.send(b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<x@example.org>\r\n"
               b"DATA\r\n\r\nsmuggled\r\n.\r\n")
        r = c.read_reply()
        assert (r.code, r.enhanced) == (554, "5.5.2"), r
        r = c.read_reply()
        assert r.code == 421, r
        assert sink.wait_closed(5)
    raw = sink.all_raw()
    assert not LONE_CR.search(raw), raw[-80:]
    assert b"evil" not in raw
    assert sink.completed_messages() == []


@pytest.mark.parametrize("split", range(1, len(b"Subject: t\r\n\r\nbody\r\n.\r\n")))
def test_message_split_at_every_byte_still_relayed_exactly(sink,
                                                           proxy_factory,
                                                           connect, split):
    content = b"Subject: t\r\n\r\nbody\r\n.\r\n"
    proxy = proxy_factory(sink, listener={"received_header": False})
    c = connect(proxy)
    begin_data(c)
    c.send(content[:split])
    time.sleep(0.05)
    c.send(content[split:])
    r = c.read_reply()
    assert r.code == 250, r
    assert sink.wait_for(lambda: len(sink.completed_messages()) == 1)
    assert bytes(sink.completed_messages()[0].content) == \
        b"Subject: t\r\n\r\nbody\r\n"


# -- 2. the client goes away -----------------------------------------------

def _leave(c, how):
    if how == "reset":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          struct.pack("ii", 1, 0))
    c.close()


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("stage", ["bdat", "data", "data-partial-line",
                                   "after-rcpt", "after-ehlo"])
def test_client_gone_frees_session_backend_and_limit_slots(
        sink, proxy_factory, connect, stage, how):
    proxy = proxy_factory(sink, listener={
        "limits": {"max_connections_per_ip": 3}})
    for i in range(6):
        c = connect(proxy)
        if stage == "bdat":
            c.ehlo()
            c.send(b"BDAT 1000000\r\nabc")
        elif stage.startswith("data"):
            begin_data(c)
            c.send(b"Subject: x\r\n\r\nsome" +
                   (b"" if stage == "data-partial-line" else b"\r\n"))
        elif stage == "after-rcpt":
            c.ehlo()
            assert c.cmd("MAIL FROM:<a@example.org>").code == 250
            assert c.cmd("RCPT TO:<b@example.org>").code == 250
        else:
            c.ehlo()
        time.sleep(0.2)
        _leave(c, how)
        assert sink.wait_sessions(i + 1, 5)
        assert sink.wait_closed(5), "stage %s: backend still open" % stage
    # The slots are free: a new client is served, not refused.
    c = connect(proxy)
    c.ehlo()
    assert c.cmd("QUIT").code == 221
    assert sink.completed_messages() == []


def test_client_half_close_after_pipelined_message_still_gets_replies(
        sink, proxy_factory, connect):
    proxy = proxy_factory(sink)
    c = connect(proxy)
    c.ehlo()
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
           b"BDAT 5 LAST\r\nhello" b"QUIT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    codes = [c.read_reply().code for _ in range(4)]
    assert codes == [250, 250, 250, 221], codes
    assert len(sink.completed_messages()) == 1


# -- 3. stale backend output around STARTTLS -------------------------------

STALE = b"".join(b"250 2.0.0 stale-%d\r\n" % i for i in range(20000))


@pytest.mark.parametrize("run", range(5))
def test_stale_backend_burst_never_answers_commands_after_tls(
        backend_factory, proxy_factory, connect, tls_ctx, run):
    be = backend_factory(lambda c: serve_plain(c, first_ehlo_extra=STALE))
    proxy = proxy_factory(be.address)
    c = connect(proxy)
    c.ehlo()
    c.starttls(tls_ctx)
    r = c.ehlo()
    assert b"stale" not in r.raw and b"PIPELINING" in r.raw, r
    r = c.cmd("MAIL FROM:<a@example.org>")
    assert r.raw == b"250 2.1.0 real-mail-ok\r\n", r
    r = c.cmd("RCPT TO:<b@example.org>")
    assert r.raw == b"250 2.1.5 real-rcpt-ok\r\n", r
    assert c.cmd("QUIT").code == 221
    c.read_until_closed(5)
    # Logged once for the session, not once a line (SPEC §4).
    assert helpers.wait_until(lambda: "session" in proxy.stderr(), 5)
    err = proxy.stderr()
    assert err.count("stale") + err.count("unsolicited") <= 2, err[-2000:]
    assert len(err.splitlines()) < 20, len(err.splitlines())


def test_backend_that_keeps_flooding_is_a_protocol_error(
        backend_factory, proxy_factory, connect):
    def flood(c):
        c.send(b"220 backend.test ESMTP\r\n")
        c.line()
        c.send(EHLO_REPLY)
        deadline = time.monotonic() + 15
        i = 0
        while time.monotonic() < deadline:
            c.send(b"".join(b"250 2.0.0 flood-%d\r\n" % (i + k)
                            for k in range(1000)))
            i += 1000

    be = backend_factory(flood)
    proxy = proxy_factory(be.address)
    c = connect(proxy)
    c.ehlo()
    t0 = time.monotonic()
    out = c.read_until_closed(10)
    assert b"421 4.4.2" in out, out[-200:]
    assert time.monotonic() - t0 < 10
    err = proxy.stderr()
    assert len(err.splitlines()) < 20, err[-2000:]


# -- 6. content that trickles ----------------------------------------------

def trickle_until_421(c):
    """Send one byte every 0.5 s: data_timeout (3 s) must end it with
    421 4.4.2 although no pause reaches idle_timeout (2 s)."""
    t0 = time.monotonic()
    got = b""
    for _ in range(40):
        try:
            c.send(b"x")
        except OSError:
            break
        got += c.pending(0.5)
        if b"421" in got:
            break
    assert b"421 4.4.2" in got, got
    assert 2.5 <= time.monotonic() - t0 <= 8


def test_trickling_data_content_hits_data_timeout(sink, proxy_factory,
                                                  connect):
    proxy = proxy_factory(sink, listener={
        "limits": {"idle_timeout": 2, "data_timeout": 3}})
    c = connect(proxy)
    begin_data(c)
    trickle_until_421(c)
    assert sink.completed_messages() == []


def test_trickling_bdat_chunk_hits_data_timeout(sink, proxy_factory,
                                                connect):
    proxy = proxy_factory(sink, listener={
        "limits": {"idle_timeout": 2, "data_timeout": 3}})
    c = connect(proxy)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    c.send(b"BDAT 1000 LAST\r\n")
    trickle_until_421(c)
    assert sink.completed_messages() == []


def test_pause_inside_content_hits_idle_timeout(sink, proxy_factory,
                                                connect):
    proxy = proxy_factory(sink, listener={
        "limits": {"idle_timeout": 2, "data_timeout": 100}})
    c = connect(proxy)
    begin_data(c)
    c.send(b"Subject: x\r\n\r\npart")
    t0 = time.monotonic()
    r = c.read_reply()
    assert (r.code, r.enhanced) == (421, "4.4.2"), r
    assert 1.5 <= time.monotonic() - t0 <= 6
    assert sink.completed_messages() == []


def test_slow_but_steady_content_within_limits_is_delivered(
        sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={
        "limits": {"idle_timeout": 2, "data_timeout": 30}})
    c = connect(proxy)
    begin_data(c)
    for i in range(5):
        c.send(b"line %d\r\n" % i)
        time.sleep(0.8)
    c.send(b".\r\n")
    assert c.read_reply().code == 250
    assert len(sink.completed_messages()) == 1


# -- 8. XCLIENT is never pipelined, and sent once --------------------------

def test_xclient_waits_for_its_reply_and_is_sent_once(
        backend_factory, proxy_factory, connect, tls_ctx):
    def xclient_backend(c):
        c.send(b"220 backend.test ESMTP\r\n")
        while True:
            line = c.line()
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"EHLO":
                c.send(b"250-backend.test\r\n250-PIPELINING\r\n"
                       b"250 XCLIENT ADDR PORT NAME HELO PROTO\r\n")
            elif verb == b"XCLIENT":
                early = c.arrived_within(0.5)
                c.notes.append(("xclient", line, early))
                c.send(b"220 backend.test ESMTP again\r\n")
            elif verb == b"MAIL":
                c.send(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                c.send(b"250 2.1.5 ok\r\n")
            elif verb == b"QUIT":
                c.send(b"221 2.0.0 bye\r\n")
                return
            else:
                c.send(b"250 2.0.0 ok\r\n")

    be = backend_factory(xclient_backend)
    proxy = proxy_factory(be.address, listener={
        "backend": {"xclient": True}})
    c = connect(proxy)
    c.send(b"EHLO client.test\r\nNOOP\r\n")
    assert c.read_reply().code == 250
    assert c.read_reply().code == 250
    c.starttls(tls_ctx)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("QUIT").code == 221
    c.read_until_closed(5)
    assert helpers.wait_until(lambda: be.conns and be.conns[0].closed.is_set(),
                              5)
    notes = be.conns[0].notes
    assert len(notes) == 1, notes
    _, line, early = notes[0]
    assert early == b"", "sent before XCLIENT's reply: %r" % early
    assert b"ADDR=127.0.0.1" in line and b"HELO=client.test" in line, line
    assert b"PROTO=ESMTP" in line, line


def test_backend_lost_during_handshake_gets_421_after_tls(
        backend_factory, proxy_factory, connect, tls_ctx):
    def dies_after_ehlo(c):
        c.send(b"220 backend.test ESMTP\r\n")
        c.line()
        c.send(EHLO_REPLY)
        time.sleep(0.3)         # the client is at STARTTLS by now

    be = backend_factory(dies_after_ehlo)
    proxy = proxy_factory(be.address)
    c = connect(proxy)
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    time.sleep(1.0)             # the backend dies while we handshake
    c.wrap(tls_ctx, "mx1.example.org")
    c.send(b"EHLO client.test\r\n")
    r = c.read_reply()
    assert (r.code, r.enhanced) == (421, "4.4.2"), r
    c.read_until_closed(5)


# -- a backend that closes with its own 421 ------------------------------

@pytest.mark.parametrize("when", ["greeting", "mail"])
def test_backend_421_is_the_last_reply_and_no_421_of_ours_follows(
        backend_factory, proxy_factory, connect, when):
    """A busy or stopping MTA answers 421 and closes (RFC 5321 §3.8):
    the client gets exactly that reply, once, then the close; not also
    the proxy's "connection lost" 421 for the same command."""
    bye = b"421 4.3.2 backend.test going away\r\n"

    def closes_with_421(c):
        if when == "greeting":
            c.send(bye)
            return
        c.send(b"220 backend.test ESMTP\r\n")
        c.line()
        c.send(EHLO_REPLY)
        c.line()
        c.send(bye)

    be = backend_factory(closes_with_421)
    proxy = proxy_factory(be.address)
    c = connect(proxy, greet=False)
    if when == "mail":
        assert c.greeting().code == 220
        c.ehlo()
        c.send(b"MAIL FROM:<a@example.org>\r\n")
    out = c.read_until_closed(10)
    assert out == bye, out
