#!/usr/bin/python3
"""A hostile SMTP backend: the MTA behind the proxy, misbehaving on purpose.

The proxy's defences are about what an unmodified, possibly broken backend
does with what the proxy relays, and about what the proxy does with what
such a backend sends back.  This module plays that backend.  It is a class
(HostileBackend, for tests that import it) and a command line tool (for the
soak and fault scripts, which must be able to SIGKILL it):

    backend.py --mode lax --port 2526 --record /tmp/b.jsonl

Modes (one per backend, or "mixed": a random hostile mode per connection):

  lax          a legacy MTA: any of CRLF, bare LF or bare CR ends a line, and
               a line holding only "." ends DATA, decided at once (a CR is
               not held back to see whether LF follows).  So "\\r\\n.\\r",
               "\\n.\\n", "\\r\\n.\\n", "\\r.\\r" all end a message here: this is
               the smuggling-vulnerable parser.  Every completed message is
               recorded with the exact terminator that ended it, and every
               command line it parsed; a proxy that lets smuggling through
               shows up as a message ended by something other than
               CRLF.CRLF, or as a command that the client sent as content.
  good         the same, but strict: only CRLF.CRLF ends DATA (a counting
               backend for soak and fault runs).
  flood        lax, and after every reply keeps sending unsolicited
               "250 2.0.0 stale-N" lines (up to --flood-max lines).
  burst-after-ehlo
               lax, and right after its first EHLO reply writes --burst
               (20,000) unsolicited "250 2.0.0 stale-N" lines at once.
  silent       accepts the connection, reads and discards, never replies.
  huge-line    lax, but the reply to the --huge-at verb (MAIL) is one
               line of --huge-size bytes (1 MB).
  early        lax, but answers DATA before it arrives (the 354 is sent
               right after the RCPT reply) and the end of data before the
               content arrives (the 250 right after the 354).
  double       lax, two replies to every command.
  die-mid-data lax, but closes the connection once --die-after content
               bytes of a message arrived, without replying.

Every backend reads a PROXY v1 header first when expect_proxy is set (then
records the client address and port it carries, which lets a fuzzer map a
backend connection to the client session that caused it).

Records: a list of dicts in memory (HostileBackend.events) and, with
--record / record_path, one JSON object a line, flushed before the reply
that depends on it is sent (a message is recorded as "message" before its
250 and as "replied" once the 250 was written, so a SIGKILL between the two
is visible).  Content is stored as latin-1 text.
"""

import argparse
import json
import os
import random
import re
import select
import signal
import socket
import sys
import threading
import time

HOSTILE_MODES = ["lax", "flood", "burst-after-ehlo", "silent", "huge-line",
                 "early", "double", "die-mid-data"]
MODES = ["good", "mixed"] + HOSTILE_MODES

EHLO_KEYWORDS = ["PIPELINING", "SIZE 52428800", "8BITMIME", "CHUNKING",
                 "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN"]

# Lax end of data: a line holding "." alone, whatever ended the lines.
LAX_ENDS = [b"\r\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\n.\r\n", b"\n.\n",
            b"\n.\r", b"\r.\r\n", b"\r.\n", b"\r.\r"]

# A CR at the very end of the input decides a lax line end only when no
# LF follows within this time: a TCP segment boundary inside one write of
# the proxy is not the proxy's decision, a pause between its writes is.
CR_GRACE = 0.1

MSGID_RE = re.compile(rb"X-Msg-Id: ([A-Za-z0-9._-]+)")
MARKER_RE = re.compile(rb"INJECTED-[0-9a-f]+")


def has_bare_newline(data):
    """True when data holds a CR not followed by LF or an LF not preceded
    by CR (a CR as the very last byte counts as bare)."""
    n = len(data)
    i = data.find(b"\r")
    while i >= 0:
        if i + 1 >= n or data[i + 1] != 0x0A:
            return True
        i = data.find(b"\r", i + 1)
    i = data.find(b"\n")
    while i >= 0:
        if i == 0 or data[i - 1] != 0x0D:
            return True
        i = data.find(b"\n", i + 1)
    return False


class Recorder:
    """Thread-safe event list, optionally mirrored to a JSON-lines file."""

    def __init__(self, path=None, keep=True):
        self.events = []
        self.keep = keep
        self._lock = threading.Lock()
        self._f = open(path, "a", buffering=1) if path else None

    def add(self, ev):
        ev.setdefault("t", round(time.time(), 6))
        with self._lock:
            if self.keep:
                self.events.append(ev)
            if self._f is not None:
                self._f.write(json.dumps(ev) + "\n")
                self._f.flush()

    def close(self):
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None


def read_records(path):
    """The events of a JSON-lines record file (a torn last line, from a
    SIGKILL mid-write, is skipped)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


class Conn:
    """One backend connection: a byte buffer and the lax line reader."""

    def __init__(self, sock, backend, cid, mode):
        self.sock = sock
        self.b = backend
        self.cid = cid
        self.mode = mode
        self.buf = b""
        self.eof = False
        self.client = None          # (addr, port) from the PROXY header
        self.stale = 0
        self.sent_ehlo = False
        self.alive = True
        self.wlock = threading.Lock()

    # -- I/O ----------------------------------------------------------------

    def fill(self):
        if self.eof:
            return False
        try:
            d = self.sock.recv(65536)
        except OSError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def more_within(self, seconds):
        """Wait up to seconds for more input; True if some arrived."""
        if self.eof:
            return False
        try:
            r, _, _ = select.select([self.sock], [], [], seconds)
        except (OSError, ValueError):
            return False
        return bool(r) and self.fill()

    def send(self, data):
        with self.wlock:
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                self.alive = False
                return False

    def stale_line(self):
        self.stale += 1
        return b"250 2.0.0 stale-%d\r\n" % self.stale

    def reply(self, data):
        if not self.send(data):
            return False
        if self.mode == "double":
            self.send(b"250 2.0.0 double\r\n")
        elif self.mode == "flood":
            self.b._start_flood(self)
        return True

    def read_line(self):
        """One command line, ended by CRLF, LF or a CR (lax); None at EOF.
        Returns (line without terminator, terminator)."""
        while True:
            m = re.search(rb"\r\n|\n|\r", self.buf)
            if (m is not None and m.end() == len(self.buf) and
                    self.buf.endswith(b"\r") and self.more_within(CR_GRACE)):
                continue
            if m is not None:
                # A lone CR at the very end ends the line at once (lax),
                # and an LF that follows later is an empty line: legacy.
                end = m.end()
                line, term = self.buf[:m.start()], self.buf[m.start():end]
                self.buf = self.buf[end:]
                return line, term
            if len(self.buf) > 1 << 20:
                line, self.buf = self.buf, b""
                return line, b""
            if not self.fill():
                return None

    def read_content(self, strict):
        """DATA content up to the end of data; returns (content, terminator)
        or (content, None) at EOF.  Lax: any LAX_ENDS shape ends it, found
        as soon as it is in the buffer."""
        data = b"\r\n"          # the DATA line's own CRLF starts a line
        pos = 0
        die = self.b.die_after if self.mode == "die-mid-data" else None
        while True:
            data += self.buf
            self.buf = b""
            if strict:
                i = data.find(b"\r\n.\r\n", max(pos - 4, 0))
                if i >= 0:
                    rest = data[i + 5:]
                    self.buf = rest + self.buf
                    return data[2:i], b"\r\n.\r\n"
            else:
                best = None
                for shape in LAX_ENDS:
                    j = data.find(shape, max(pos - 4, 0))
                    # A message may be empty: ".\r\n" right after DATA.
                    if j >= 0 and (best is None or j < best[0] or
                                   (j == best[0] and len(shape) > len(best[1]))):
                        best = (j, shape)
                if (best is not None and best[1].endswith(b"\r") and
                        best[0] + len(best[1]) == len(data) and
                        self.more_within(CR_GRACE)):
                    pos = best[0]
                    continue
                if best is not None:
                    j, shape = best
                    self.buf = data[j + len(shape):] + self.buf
                    return data[2:j], shape
            pos = len(data)
            if die is not None and len(data) - 2 >= die:
                return data[2:], "died"
            if not self.fill():
                return data[2:], None


class HostileBackend:
    def __init__(self, mode="lax", host="127.0.0.1", port=0, record_path=None,
                 keep=True, expect_proxy=False, burst=20000, flood_max=100000,
                 huge_size=1 << 20, huge_at=b"MAIL", die_after=64,
                 record_commands=True, seed=None):
        if mode not in MODES:
            raise ValueError("unknown mode %r (%s)" % (mode, ", ".join(MODES)))
        self.mode = mode
        self.host = host
        self.port = port
        self.rec = Recorder(record_path, keep=keep)
        self.expect_proxy = expect_proxy
        self.burst = burst
        self.flood_max = flood_max
        self.huge_size = huge_size
        self.huge_at = huge_at
        self.die_after = die_after
        self.record_commands = record_commands
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self._lsock = None
        self._cid = 0
        self._lock = threading.Lock()
        self._conns = set()

    @property
    def events(self):
        return self.rec.events

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    # -- lifecycle ------------------------------------------------------------

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(256)
        s.settimeout(0.2)
        self.port = s.getsockname()[1]
        self._lsock = s
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name="backend-accept")
        t.start()
        self._thread = t
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._lsock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.rec.close()

    def serve_forever(self):
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, _ = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            sock.settimeout(None)
            with self._lock:
                self._cid += 1
                cid = self._cid
                mode = self.mode
                if mode == "mixed":
                    mode = self.rng.choice(HOSTILE_MODES)
            t = threading.Thread(target=self._serve, args=(sock, cid, mode),
                                 daemon=True, name="backend-%d" % cid)
            t.start()

    # -- one connection -------------------------------------------------------

    def _serve(self, sock, cid, mode):
        c = Conn(sock, self, cid, mode)
        with self._lock:
            self._conns.add(c)
        self.rec.add({"ev": "connect", "conn": cid, "mode": mode})
        try:
            self._session(c)
        except Exception as e:          # a bug here must not look like a pass
            self.rec.add({"ev": "error", "conn": cid, "error": repr(e)})
        finally:
            c.alive = False
            try:
                sock.close()
            except OSError:
                pass
            with self._lock:
                self._conns.discard(c)
            self.rec.add({"ev": "close", "conn": cid})

    def _start_flood(self, c):
        if getattr(c, "flooding", False):
            return
        c.flooding = True

        def run():
            for _ in range(self.flood_max):
                if not c.alive or self._stop.is_set():
                    return
                if not c.send(c.stale_line()):
                    return
                time.sleep(0.0005)
        threading.Thread(target=run, daemon=True).start()

    def _read_proxy_header(self, c):
        while b"\r\n" not in c.buf:
            if len(c.buf) > 256 or not c.fill():
                return False
        line, c.buf = c.buf.split(b"\r\n", 1)
        f = line.split(b" ")
        if len(f) == 6 and f[0] == b"PROXY":
            c.client = (f[2].decode(), int(f[4]))
        elif line == b"PROXY UNKNOWN" or line.startswith(b"PROXY UNKNOWN "):
            c.client = None
        else:
            return False
        self.rec.add({"ev": "proxy", "conn": c.cid,
                      "client": list(c.client) if c.client else None})
        return True

    def _session(self, c):
        if self.expect_proxy and not self._read_proxy_header(c):
            self.rec.add({"ev": "bad-proxy-header", "conn": c.cid})
            return
        if c.mode == "silent":
            while c.fill():
                c.buf = b""
            return
        strict = c.mode == "good"
        if not c.reply(b"220 hostile.test ESMTP HostileBackend ready\r\n"):
            return
        mail = None
        rcpts = []
        early_data = False
        while True:
            got = c.read_line()
            if got is None:
                return
            line, term = got
            if self.record_commands:
                self.rec.add({"ev": "cmd", "conn": c.cid,
                              "line": (line + term).decode("latin-1")})
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"" and term in (b"\n", b"\r\n"):
                continue                # a lax parser skips empty lines
            if c.mode == "huge-line" and verb == self.huge_at:
                text = b"250 2.0.0 " + b"h" * max(self.huge_size - 12, 0)
                if not c.reply(text + b"\r\n"):
                    return
                continue
            if verb in (b"EHLO", b"HELO", b"LHLO"):
                mail, rcpts = None, []
                if verb == b"HELO":
                    r = b"250 hostile.test\r\n"
                else:
                    ls = [b"hostile.test"] + [k.encode() for k in EHLO_KEYWORDS]
                    r = b"".join(b"250-" + l + b"\r\n" for l in ls[:-1])
                    r += b"250 " + ls[-1] + b"\r\n"
                if not c.reply(r):
                    return
                if c.mode == "burst-after-ehlo" and not c.sent_ehlo:
                    c.send(b"".join(c.stale_line()
                                    for _ in range(self.burst)))
                c.sent_ehlo = True
            elif verb == b"MAIL":
                mail, rcpts, early_data = line[5:], [], False
                if not c.reply(b"250 2.1.0 Ok\r\n"):
                    return
            elif verb == b"RCPT":
                rcpts.append(line[5:])
                if not c.reply(b"250 2.1.5 Ok\r\n"):
                    return
                if c.mode == "early" and not early_data:
                    early_data = True
                    c.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    c.send(b"250 2.0.0 Ok: queued early\r\n")
            elif verb == b"DATA":
                if not early_data:
                    if not c.reply(b"354 End data with <CR><LF>.<CR><LF>\r\n"):
                        return
                    if c.mode == "early":
                        c.send(b"250 2.0.0 Ok: queued early\r\n")
                early_data = False
                content, end = c.read_content(strict)
                if not self._message(c, "DATA", mail, rcpts, content, end):
                    return
                mail, rcpts = None, []
            elif verb == b"BDAT":
                if not self._bdat(c, line, mail, rcpts):
                    return
                if c.eof:
                    return
            elif verb == b"RSET":
                mail, rcpts, early_data = None, [], False
                if not c.reply(b"250 2.0.0 Ok\r\n"):
                    return
            elif verb == b"QUIT":
                c.reply(b"221 2.0.0 Bye\r\n")
                return
            elif verb in (b"NOOP", b"VRFY", b"EXPN", b"HELP"):
                if not c.reply(b"250 2.0.0 Ok\r\n"):
                    return
            else:
                if not c.reply(b"500 5.5.2 Unknown command\r\n"):
                    return

    def _message(self, c, kind, mail, rcpts, content, end):
        ids = [m.decode() for m in MSGID_RE.findall(content)]
        ev = {"ev": "message" if end not in (None, "died") else "incomplete",
              "conn": c.cid, "kind": kind,
              "client": list(c.client) if c.client else None,
              "mail": (mail or b"").decode("latin-1"),
              "rcpts": [r.decode("latin-1") for r in rcpts],
              "size": len(content), "ids": ids,
              "terminator": end.decode("latin-1")
              if isinstance(end, bytes) else end,
              "bare": kind == "DATA" and has_bare_newline(content),
              "markers": [m.decode() for m in MARKER_RE.findall(content)]}
        if self.record_commands:
            ev["content"] = content[:65536].decode("latin-1")
        self.rec.add(ev)
        if ev["ev"] != "message":
            return False
        if c.mode == "early":
            return True
        ok = c.reply(b"250 2.0.0 Ok: queued as %d.%d\r\n" % (c.cid, len(ids)))
        if ok:
            self.rec.add({"ev": "replied", "conn": c.cid, "ids": ids})
        return ok

    def _bdat(self, c, line, mail, rcpts):
        """BDAT n [LAST]; chunks of one message gather in c.bdat."""
        f = line.split()
        try:
            n = int(f[1])
            if n < 0:
                raise ValueError
        except (IndexError, ValueError):
            return c.reply(b"501 5.5.4 Syntax error in BDAT\r\n")
        last = len(f) > 2 and f[2].upper() == b"LAST"
        chunk = b""
        die = self.die_after if c.mode == "die-mid-data" else None
        while len(chunk) < n:
            take = min(n - len(chunk), len(c.buf))
            chunk += c.buf[:take]
            c.buf = c.buf[take:]
            if die is not None and len(chunk) >= die:
                self._message(c, "BDAT", mail, rcpts, chunk, "died")
                return False
            if len(chunk) < n and not c.fill():
                self._message(c, "BDAT", mail, rcpts,
                              getattr(c, "bdat", b"") + chunk, None)
                return False
        c.bdat = getattr(c, "bdat", b"") + chunk
        if not last:
            return c.reply(b"250 2.0.0 %d bytes received\r\n" % n)
        content, c.bdat = c.bdat, b""
        return self._message(c, "BDAT", mail, rcpts, content, "BDAT LAST")


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="A hostile SMTP backend for testing starttls-proxy.")
    ap.add_argument("--mode", default="lax", choices=MODES)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2526)
    ap.add_argument("--record", metavar="FILE",
                    help="append one JSON object a line to FILE")
    ap.add_argument("--no-commands", action="store_true",
                    help="record messages only, not command lines/content")
    ap.add_argument("--expect-proxy", action="store_true",
                    help="read a PROXY v1 header first")
    ap.add_argument("--burst", type=int, default=20000)
    ap.add_argument("--flood-max", type=int, default=100000)
    ap.add_argument("--huge-size", type=int, default=1 << 20)
    ap.add_argument("--huge-at", default="MAIL")
    ap.add_argument("--die-after", type=int, default=64)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--ready-file", metavar="FILE",
                    help="write the port to FILE once listening")
    a = ap.parse_args(argv)
    b = HostileBackend(mode=a.mode, host=a.host, port=a.port,
                       record_path=a.record, keep=False,
                       expect_proxy=a.expect_proxy, burst=a.burst,
                       flood_max=a.flood_max, huge_size=a.huge_size,
                       huge_at=a.huge_at.upper().encode(),
                       die_after=a.die_after,
                       record_commands=not a.no_commands, seed=a.seed)
    signal.signal(signal.SIGTERM, lambda *_: b._stop.set())
    b.start()
    print("backend: mode %s listening on %s" % (a.mode, b.address),
          file=sys.stderr, flush=True)
    if a.ready_file:
        tmp = a.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % b.port)
        os.rename(tmp, a.ready_file)
    try:
        while not b._stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
