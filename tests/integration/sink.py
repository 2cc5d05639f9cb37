"""A recording SMTP sink: the backend the proxy relays to in most tests.

It speaks just enough ESMTP for the proxy (greeting, EHLO with a
configurable keyword list, HELO, MAIL, RCPT, DATA, BDAT, RSET, NOOP, AUTH,
XCLIENT, QUIT) and records, per connection, the exact bytes it received,
the command lines it parsed and the messages it accepted.  Tests use the
recording to prove what did, or did not, reach the backend.

It is deliberately strict where the proxy must be careful: only
<CRLF>.<CRLF> ends DATA, so a message relayed with bare-LF "ends" shows up
as one message holding those bytes, never as a second transaction.

Fault options:
  die_after_data_bytes  close the connection once this many content bytes
                        of a DATA (or BDAT) arrived, without replying
  accept_and_close      accept, then close at once (no greeting)
  unsolicited           {"after": b"NOOP", "data": b"250 ...\r\n",
                         "delay": 0.2}: after replying to that verb, send
                        extra output nobody asked for
  expect_proxy          "v1" or "v2": read a PROXY header before greeting
  unix_path             listen on this AF_UNIX path instead of TCP
  data_reply            the reply to a completed DATA (default 250 ...)
  stall_data            seconds to stop reading after the 354 (backpressure)
"""

import os
import socket
import struct
import threading
import time

DEFAULT_GREETING = b"220 sink.test ESMTP RecordingSink ready\r\n"

DEFAULT_KEYWORDS = [
    "PIPELINING",
    "SIZE 52428800",
    "8BITMIME",
    "CHUNKING",
    "ENHANCEDSTATUSCODES",
    "SMTPUTF8",
    "DSN",
    "AUTH PLAIN LOGIN",
    "STARTTLS",
    "XCLIENT ADDR PORT NAME HELO PROTO",
    "XFORWARD NAME ADDR PROTO HELO",
]

PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


class Message:
    """One transaction the sink saw: envelope plus content."""

    def __init__(self, mail_from, rcpts, kind):
        self.mail_from = mail_from      # bytes: the MAIL command line argument
        self.rcpts = list(rcpts)        # list of bytes
        self.kind = kind                # "DATA" or "BDAT"
        self.content = bytearray()      # DATA: raw bytes before <CRLF>.<CRLF>
        self.chunks = []                # BDAT: each chunk's bytes
        self.completed = False          # end of data seen and 250 sent

    def __repr__(self):
        return "<Message %s from=%r rcpts=%r %d bytes completed=%s>" % (
            self.kind, self.mail_from, self.rcpts, len(self.content),
            self.completed)


class SinkSession:
    """What one backend connection received."""

    def __init__(self):
        self.raw = bytearray()          # every byte received, in order
        self.commands = []              # command lines, terminator included
        self.messages = []              # Message objects
        self.proxy_header = None        # raw PROXY header when expected
        self.closed = threading.Event()

    def verbs(self):
        return [line.split(b" ", 1)[0].strip().upper()
                for line in self.commands]


class Sink:
    def __init__(self, greeting=DEFAULT_GREETING, ehlo_keywords=None,
                 die_after_data_bytes=None, accept_and_close=False,
                 unsolicited=None, expect_proxy=None, unix_path=None,
                 xclient_reply=None, data_reply=None, stall_data=0):
        self.greeting = greeting
        self.ehlo_keywords = (list(DEFAULT_KEYWORDS) if ehlo_keywords is None
                              else list(ehlo_keywords))
        self.die_after_data_bytes = die_after_data_bytes
        self.accept_and_close = accept_and_close
        self.unsolicited = unsolicited
        self.expect_proxy = expect_proxy
        self.unix_path = unix_path
        self.xclient_reply = xclient_reply or greeting
        self.data_reply = data_reply
        self.stall_data = stall_data
        self.stalled = threading.Event()    # set while stall_data sleeps
        self.sessions = []
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._lsock = None
        self.port = None
        self._queue_id = 0

    # -- lifecycle -------------------------------------------------------

    def start(self):
        if self.unix_path:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if os.path.exists(self.unix_path):
                os.unlink(self.unix_path)
            s.bind(self.unix_path)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        s.listen(64)
        s.settimeout(0.2)
        self._lsock = s
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name="sink-accept")
        t.start()
        self._threads.append(t)
        return self

    @property
    def address(self):
        if self.unix_path:
            return "unix:" + self.unix_path
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        if self._lsock is not None:
            self._lsock.close()
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)

    # -- inspection ------------------------------------------------------

    def all_sessions(self):
        with self._lock:
            return list(self.sessions)

    def all_commands(self):
        return [c for s in self.all_sessions() for c in s.commands]

    def all_messages(self):
        return [m for s in self.all_sessions() for m in s.messages]

    def completed_messages(self):
        return [m for m in self.all_messages() if m.completed]

    def all_raw(self):
        return b"".join(bytes(s.raw) for s in self.all_sessions())

    def wait_sessions(self, n, timeout=5.0):
        """Wait until at least n connections were accepted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.all_sessions()) >= n:
                return True
            time.sleep(0.02)
        return False

    def wait_closed(self, timeout=5.0):
        """Wait until every connection so far has ended; True if so."""
        deadline = time.monotonic() + timeout
        for s in self.all_sessions():
            left = deadline - time.monotonic()
            if left <= 0 or not s.closed.wait(left):
                return False
        return True

    def wait_for(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.02)
        return pred()

    # -- server ----------------------------------------------------------

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sess = SinkSession()
            with self._lock:
                self.sessions.append(sess)
            if self.accept_and_close:
                conn.close()
                sess.closed.set()
                continue
            t = threading.Thread(target=self._serve, args=(conn, sess),
                                 daemon=True, name="sink-conn")
            t.start()
            self._threads.append(t)

    def _serve(self, conn, sess):
        conn.settimeout(0.2)
        st = _ConnState(self, conn, sess)
        try:
            st.run()
        except (ConnectionError, BrokenPipeError, _Closed):
            pass
        except Exception as e:  # recorded so a test can show it
            self.errors.append(repr(e))
        finally:
            try:
                conn.close()
            except OSError:
                pass
            sess.closed.set()

    def next_queue_id(self):
        with self._lock:
            self._queue_id += 1
            return self._queue_id


class _Closed(Exception):
    pass


class _ConnState:
    def __init__(self, sink, conn, sess):
        self.sink = sink
        self.conn = conn
        self.sess = sess
        self.buf = bytearray()
        self.wlock = threading.Lock()
        self.mail_from = None
        self.rcpts = []

    def recv_more(self):
        while True:
            if self.sink._stop.is_set():
                raise _Closed()
            try:
                d = self.conn.recv(65536)
            except socket.timeout:
                continue
            if not d:
                raise _Closed()
            self.sess.raw += d
            self.buf += d
            return

    def send(self, data):
        with self.wlock:
            self.conn.sendall(data)

    def read_line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            self.recv_more()

    def read_exact(self, n):
        while len(self.buf) < n:
            self.recv_more()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_proxy_header(self):
        if self.sink.expect_proxy == "v1":
            self.sess.proxy_header = self.read_line()
            return
        head = self.read_exact(16)
        if head[:12] != PROXY_V2_SIG:
            self.sess.proxy_header = head
            raise _Closed()
        (length,) = struct.unpack("!H", head[14:16])
        self.sess.proxy_header = head + self.read_exact(length)

    def reply(self, verb, data):
        u = self.sink.unsolicited
        if not u or verb != u["after"]:
            self.send(data)
            return
        delay = u.get("delay", 0)
        if delay:
            self.send(data)
            t = threading.Timer(delay, self._send_quietly, (u["data"],))
            t.daemon = True
            t.start()
        else:
            # One write: the extra line arrives together with the real
            # reply, before the client can have sent another command.
            self.send(data + u["data"])

    def _send_quietly(self, data):
        try:
            self.send(data)
        except OSError:
            pass

    def run(self):
        if self.sink.expect_proxy:
            self.read_proxy_header()
        self.send(self.sink.greeting)
        while True:
            line = self.read_line()
            self.sess.commands.append(line)
            self.dispatch(line)

    def dispatch(self, line):
        text = line.rstrip(b"\r\n")
        verb, _, arg = text.partition(b" ")
        verb = verb.upper()
        if verb == b"EHLO":
            kws = self.sink.ehlo_keywords
            lines = [b"sink.test greets " + arg] + [k.encode() for k in kws]
            out = b"".join(b"250-" + l + b"\r\n" for l in lines[:-1])
            out += b"250 " + lines[-1] + b"\r\n"
            self.mail_from, self.rcpts = None, []
            self.reply(verb, out)
        elif verb == b"HELO":
            self.mail_from, self.rcpts = None, []
            self.reply(verb, b"250 sink.test\r\n")
        elif verb == b"MAIL":
            self.mail_from, self.rcpts = arg, []
            self.reply(verb, b"250 2.1.0 Ok\r\n")
        elif verb == b"RCPT":
            if self.mail_from is None:
                self.reply(verb, b"503 5.5.1 Error: need MAIL command\r\n")
                return
            self.rcpts.append(arg)
            self.reply(verb, b"250 2.1.5 Ok\r\n")
        elif verb == b"DATA":
            self.do_data(verb)
        elif verb == b"BDAT":
            self.do_bdat(verb, arg)
        elif verb == b"RSET":
            self.mail_from, self.rcpts = None, []
            self.reply(verb, b"250 2.0.0 Ok\r\n")
        elif verb == b"NOOP":
            self.reply(verb, b"250 2.0.0 Ok\r\n")
        elif verb == b"AUTH":
            self.reply(verb, b"235 2.7.0 Authentication successful\r\n")
        elif verb == b"XCLIENT":
            self.reply(verb, self.sink.xclient_reply)
        elif verb == b"STARTTLS":
            self.reply(verb, b"454 4.7.0 TLS not available in the sink\r\n")
        elif verb == b"QUIT":
            self.send(b"221 2.0.0 Bye\r\n")
            raise _Closed()
        else:
            self.reply(verb, b"502 5.5.2 Error: command not recognized\r\n")

    def new_message(self, kind):
        m = Message(self.mail_from, self.rcpts, kind)
        self.sess.messages.append(m)
        return m

    def check_die(self, m):
        lim = self.sink.die_after_data_bytes
        if lim is not None and len(m.content) >= lim:
            raise _Closed()

    def do_data(self, verb):
        if self.mail_from is None or not self.rcpts:
            self.reply(verb, b"503 5.5.1 Error: need RCPT command\r\n")
            return
        self.reply(verb, b"354 End data with <CR><LF>.<CR><LF>\r\n")
        m = self.new_message("DATA")
        if self.sink.stall_data:
            self.sink.stalled.set()
            time.sleep(self.sink.stall_data)
            self.sink.stalled.clear()
        # Content is everything up to <CRLF>.<CRLF>; the CRLF before the dot
        # belongs to the content (RFC 5321 §4.1.1.4).  A virtual CRLF in
        # front lets an empty message end on ".\r\n" right after the 354.
        acc = bytearray(b"\r\n")
        start = 0
        try:
            while True:
                acc += self.buf
                self.buf.clear()
                i = acc.find(b"\r\n.\r\n", start)
                if i >= 0:
                    self.buf += acc[i + 5:]
                    del acc[i + 2:]
                    break
                start = max(0, len(acc) - 4)
                lim = self.sink.die_after_data_bytes
                if lim is not None and len(acc) - 2 >= lim:
                    raise _Closed()
                self.recv_more()
        finally:
            m.content = acc[2:]
        self.check_die(m)
        self.mail_from, self.rcpts = None, []
        if self.sink.data_reply is not None:
            self.reply(verb, self.sink.data_reply)
            return
        m.completed = True
        self.reply(verb, b"250 2.0.0 Ok: queued as SINK%d\r\n"
                   % self.sink.next_queue_id())

    def do_bdat(self, verb, arg):
        parts = arg.split()
        try:
            size = int(parts[0])
        except (IndexError, ValueError):
            self.reply(verb, b"501 5.5.4 Syntax: BDAT size [LAST]\r\n")
            return
        last = len(parts) > 1 and parts[1].upper() == b"LAST"
        msgs = self.sess.messages
        if msgs and msgs[-1].kind == "BDAT" and not msgs[-1].completed \
                and self.mail_from is not None:
            m = msgs[-1]
        else:
            m = self.new_message("BDAT")
        chunk = bytearray()
        while len(chunk) < size:
            if not self.buf:
                self.recv_more()
            take = min(size - len(chunk), len(self.buf))
            chunk += self.buf[:take]
            m.content += self.buf[:take]
            del self.buf[:take]
            self.check_die(m)
        m.chunks.append(bytes(chunk))
        if last:
            m.completed = True
            self.mail_from, self.rcpts = None, []
            self.reply(verb, b"250 2.0.0 Ok: %d octets, queued as SINK%d\r\n"
                       % (size, self.sink.next_queue_id()))
        else:
            self.reply(verb, b"250 2.0.0 %d octets received\r\n" % size)
