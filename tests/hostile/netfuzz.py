#!/usr/bin/python3
"""netfuzz: drive a real starttls-proxy with mutated SMTP sessions over real
sockets and check invariants, not outputs.

    tests/hostile/netfuzz.py [--bin PATH] [--seconds 120] [--seed N]
                             [--jobs 4] [--out DIR] [--replay FILE]

It starts the proxy (--bin, else $STP_BIN, else build-asan/ then build/)
with three listeners:
  mx   in front of the lax backend (backend.py mode "lax": ends DATA at
       "\\n.\\n", "\\r\\n.\\r" and friends), PROXY v1 to the backend so each
       backend connection names the client session that caused it;
  pp   the same with proxy_protocol = true (sessions start with a PROXY
       v1/v2 header, valid, truncated or garbage);
  hb   in front of a backend whose mode is a random hostile one per
       connection (flood, burst-after-ehlo, silent, huge-line, early,
       double, die-mid-data): only liveness and sanitizer checks.
Each session is generated from (seed, session number), so a failing one can
be replayed; its script is saved under --out on a violation.

Invariants (any violation: exit 1):
  * no sanitizer report in the proxy's stderr; the proxy stays alive;
  * a normal session (EHLO MAIL RCPT DATA QUIT) and a STARTTLS session
    with a message succeed every --health seconds and at the end, and
    the backend has those messages;
  * the lax backend never completed a DATA message that ended with
    anything but CRLF.CRLF, nor one that holds a bare CR or LF, nor one
    whose X-Msg-Id the fuzzer sent with a bare CR/LF or a fake end
    (bare_newline = reject), and never saw a command that the fuzzer
    sent as message content after a fake end (SMUGGLED-...);
  * no marker command (NOOP INJECTED-...) written after STARTTLS and
    before the handshake ever reaches the backend.
"""

import argparse
import json
import os
import random
import shutil
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend as hb          # noqa: E402
import common                 # noqa: E402

PROG = "netfuzz"
PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
FAKE_ENDS = [b"\n.\n", b"\r\n.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r",
             b"\r.\r\n", b"\n.\r"]
VERBS = [b"NOOP", b"RSET", b"VRFY", b"EXPN", b"HELP", b"ETRN", b"AUTH",
         b"XCLIENT", b"XFORWARD", b"BDAT", b"DATA", b"MAIL", b"RCPT",
         b"EHLO", b"HELO", b"STARTTLS", b"TURN", b"ATRN", b"QUIT",
         b"X" * 30, b"", b"mail from:", b"rcpt to:"]


def client_hello():
    """The bytes of a real TLS ClientHello (from Python's own TLS)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(i, o, server_hostname="mx1.example.org")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return o.read()


CLIENT_HELLO = client_hello()


# -- session generation ----------------------------------------------------------

class Gen:
    """Builds one session script: a list of steps
       ("send", bytes)   written, maybe in random pieces with tiny sleeps
       ("sendnow", bytes) written in one piece
       ("sleep", s)      pause
       ("drain", s)      read what arrives within s seconds
       ("greet",)        read the greeting (structured)
       ("reply", n)      read n replies (structured; on failure: stop)
       ("starttls", marker)  expect 220 for the STARTTLS just written;
                         marker is checked only if 220 came
       ("tls",)          TLS handshake (python ssl) on the socket
       ("end", how)      "close", "rst" or "shutwr"."""

    def __init__(self, seed, sid):
        self.r = random.Random("%d/%d" % (seed, sid))
        self.sid = sid
        self.steps = []
        self.ids = {}           # X-Msg-Id -> True if sent clean
        self.markers = []       # markers that must never reach the backend
        self.smuggle_tags = []  # SMUGGLED tags sent as content after fake ends
        self.n = 0

    def add(self, *step):
        self.steps.append(step)

    def msgid(self):
        self.n += 1
        return "f%d.%d" % (self.sid, self.n)

    def junk(self, lo=1, hi=64):
        r = self.r
        n = r.randint(lo, hi)
        kind = r.random()
        if kind < 0.4:
            return bytes(r.randrange(256) for _ in range(n))
        alphabet = b"ABCabc012 .:<>@\r\n\x00\t-=" if kind < 0.8 else \
            b"\r\n."
        return bytes(r.choice(alphabet) for _ in range(n))

    def send(self, data):
        if self.r.random() < 0.3:
            self.add("sendnow", data)
        else:
            self.add("send", data)
        if self.r.random() < 0.4:
            self.add("drain", self.r.choice([0, 0.01, 0.05, 0.2]))

    def command(self):
        r = self.r
        verb = r.choice(VERBS)
        arg = b""
        x = r.random()
        if x < 0.3:
            arg = b" " + self.junk(0, 40).replace(b"\r", b"").replace(
                b"\n", b"")
        elif x < 0.4:
            arg = b" " + b"A" * r.choice([500, 4090, 4100, 9000, 70000])
        elif x < 0.5:
            arg = b" " + self.junk(1, 20)        # NULs, bare CR/LF
        end = r.choice([b"\r\n"] * 6 + [b"\n", b"\r", b"", b"\r\r\n"])
        return verb + arg + end

    def content(self, mid, clean=True):
        r = self.r
        parts = [b"From: <f@fuzz.test>\r\nX-Msg-Id: " + mid.encode() +
                 b"\r\nSubject: fuzz\r\n\r\n"]
        for _ in range(r.randint(0, 6)):
            x = r.random()
            if x < 0.5:
                parts.append(b"text line " + str(r.random()).encode() +
                             b"\r\n")
            elif x < 0.65:
                parts.append(b".dot-stuffed\r\n")
            elif x < 0.75:
                parts.append(b"x" * r.choice([998, 5000, 70000]) + b"\r\n")
            elif x < 0.85:
                parts.append(b"..\r\n")
            else:
                parts.append(b"\x00 nul\r\n")
        if not clean:
            i = r.randrange(len(parts))
            parts.insert(i, b"bare" + r.choice([b"\n", b"\r", b"\r\r\n",
                                                b"\n\r"]) + b"x\r\n")
        return b"".join(parts)

    def split_send(self, data, cut_after=None):
        """Send data in pieces; cut_after: offsets where a piece must end
        (read boundaries at the interesting byte), with a small pause."""
        r = self.r
        cuts = set(cut_after or [])
        for _ in range(r.randint(0, 3)):
            cuts.add(r.randrange(1, max(2, len(data))))
        last = 0
        for c in sorted(cuts):
            if 0 < c < len(data) and c > last:
                self.add("sendnow", data[last:c])
                self.add("sleep", r.choice([0, 0.001, 0.01, 0.05, 0.2]))
                last = c
        self.add("sendnow", data[last:])

    def envelope(self, wait_354):
        r = self.r
        env = b"MAIL FROM:<f%d@fuzz.test>\r\nRCPT TO:<r@fuzz.test>\r\n" % \
            self.sid
        if r.random() < 0.5:
            self.add("sendnow", env + b"DATA\r\n")
            self.add("reply", 3 if wait_354 else 0)
        else:
            self.add("sendnow", env)
            self.add("reply", 2)
            self.add("sendnow", b"DATA\r\n")
            self.add("reply", 1 if wait_354 else 0)

    def message(self):
        """A DATA transaction: clean, with a bare CR/LF, or a smuggling
        shape with a continuation, split at the interesting bytes."""
        r = self.r
        mid = self.msgid()
        self.envelope(r.random() < 0.85)
        x = r.random()
        if x < 0.35:
            data = self.content(mid) + b".\r\n"
            self.ids[mid] = True
            cut = [len(data) - 2, len(data) - 1, len(data) - 3]
            self.split_send(data, r.sample(cut, r.randint(0, 2)))
            self.add("reply", 1)
        elif x < 0.5:
            data = self.content(mid, clean=False) + b".\r\n"
            self.ids[mid] = False
            self.split_send(data)
            self.add("reply", 1)
        else:
            # Smuggling: a fake end, then (often after a pause) a whole
            # transaction; its MAIL carries a tag the backend must never
            # see as a command.
            self.ids[mid] = False
            shape = r.choice(FAKE_ENDS)
            tag = b"SMUGGLED-%d-%d" % (self.sid, self.n)
            self.smuggle_tags.append(tag.decode())
            head = self.content(mid) + b"hello" + shape
            tail = (b"MAIL FROM:<" + tag + b"@evil.test>\r\n"
                    b"RCPT TO:<victim@fuzz.test>\r\nDATA\r\n"
                    b"X-Msg-Id: " + mid.encode() + b"s\r\n\r\nsmuggled\r\n")
            self.ids[mid + "s"] = False
            y = r.random()
            if y < 0.5:
                # the shape ends a write, then a pause: the read boundary
                self.split_send(head)
                self.add("sleep", r.choice([0.05, 0.2, 0.5, 0.8]))
                if r.random() < 0.25:
                    self.add("end", r.choice(["close", "rst", "shutwr"]))
                    return False
                self.split_send(tail + b".\r\n")
            else:
                data = head + tail + b".\r\n"
                self.split_send(data, [len(head) - 1, len(head)])
            self.add("drain", 0.3)
        return True

    def bdat(self):
        r = self.r
        mid = self.msgid()
        self.envelope(False)
        self.add("reply", 2)
        for _ in range(r.randint(1, 3)):
            size = r.choice([0, 1, 5, 100, 4096, 70000, 1000000])
            body = (b"X-Msg-Id: " + mid.encode() + b"\r\n" +
                    self.junk(0, 200))
            body = (body * (size // max(len(body), 1) + 1))[:size]
            last = r.random() < 0.4
            head = b"BDAT %d%s\r\n" % (size, b" LAST" if last else b"")
            if r.random() < 0.2:
                # fewer bytes than announced, then maybe gone
                self.split_send(head + body[:r.randint(0, len(body))])
                self.add("sleep", r.choice([0, 0.1, 0.3]))
                if r.random() < 0.5:
                    self.add("end", r.choice(["close", "rst"]))
                    return False
            else:
                self.split_send(head + body)
                self.add("drain", 0.05)
            if last:
                break
        return True

    def proxy_header(self):
        """PROXY-in for the pp listener; a valid one encodes the session
        in the source address (10.a.b.c:port)."""
        r = self.r
        a, b, c = (self.sid >> 16) & 255, (self.sid >> 8) & 255, self.sid & 255
        src = "10.%d.%d.%d" % (a, b, c)
        port = 1024 + self.sid % 60000
        x = r.random()
        if x < 0.55:
            return b"PROXY TCP4 %s 127.0.0.1 %d 25\r\n" % (src.encode(), port), \
                (src, port)
        if x < 0.75:
            addrs = socket.inet_aton(src) + socket.inet_aton("127.0.0.1")
            body = addrs + struct.pack("!HH", port, 25)
            hdr = PROXY_V2_SIG + bytes([0x21, 0x11]) + \
                struct.pack("!H", len(body)) + body
            return hdr, (src, port)
        y = r.random()
        if y < 0.3:
            h = b"PROXY TCP4 %s 127.0.0.1 %d 25\r\n" % (src.encode(), port)
            return h[:r.randrange(len(h))], None
        if y < 0.6:
            return PROXY_V2_SIG + self.junk(0, 40), None
        return self.junk(1, 120), None

    def build(self):
        r = self.r
        lst = r.choices(["mx", "pp", "hb"], [70, 15, 15])[0]
        self.listener = lst
        self.client = None
        if lst == "pp":
            hdr, self.client = self.proxy_header()
            self.split_send(hdr)
            if self.client is None:
                self.add("drain", 0.2)
                self.add("end", r.choice(["close", "rst"]))
                return self
        self.add("greet")
        if r.random() < 0.85:
            self.add("sendnow", r.choice([b"EHLO fuzz.test\r\n",
                                          b"HELO fuzz.test\r\n"]))
            self.add("reply", 1)
            ehlo_known = True
        else:
            ehlo_known = False
        tls = False
        if ehlo_known and lst != "hb" and r.random() < 0.35:
            tls = self.starttls()
            if tls is None:
                return self
        for _ in range(r.randint(1, 8)):
            x = r.random()
            if x < 0.35:
                if not self.message():
                    return self
            elif x < 0.45:
                if not self.bdat():
                    return self
            elif x < 0.75:
                self.send(self.command())
            elif x < 0.9:
                batch = b"".join(self.command()
                                 for _ in range(r.randint(2, 30)))
                self.split_send(batch)
            else:
                self.send(self.junk(1, 300))
        if r.random() < 0.4:
            self.send(b"QUIT\r\n")
        self.add("drain", r.choice([0, 0.05, 0.3]))
        self.add("end", r.choices(["close", "rst", "shutwr"], [5, 4, 1])[0])
        return self

    def starttls(self):
        """STARTTLS after a known EHLO, with injected commands in the same
        write (or right after); then a real handshake or garbage.  Returns
        True when the session goes on over TLS, None when it ended."""
        r = self.r
        marker = "INJECTED-%x%04x" % (self.sid, r.randrange(1 << 16))
        inj = b"NOOP " + marker.encode() + b"\r\n"
        x = r.random()
        if x < 0.5:
            self.add("sendnow", b"STARTTLS\r\n" + inj)
        elif x < 0.7:
            self.add("sendnow", b"STARTTLS\r\n" + inj + b"RSET\r\n" + inj)
        else:
            self.add("sendnow", b"STARTTLS\r\n")
            self.add("sendnow", inj)
        self.add("starttls", marker)
        y = r.random()
        if y < 0.6:
            self.add("tls")
            self.add("sendnow", b"EHLO fuzz.test\r\n")
            self.add("reply", 1)
            return True
        if y < 0.75:
            hello = CLIENT_HELLO[:r.randrange(len(CLIENT_HELLO))]
        elif y < 0.9:
            hello = bytearray(CLIENT_HELLO)
            for _ in range(r.randint(1, 8)):
                hello[r.randrange(len(hello))] = r.randrange(256)
            hello = bytes(hello)
        else:
            hello = self.junk(1, 400)
        self.split_send(hello)
        self.add("drain", 0.2)
        self.add("end", r.choice(["close", "rst"]))
        return None


# -- running one session ------------------------------------------------------------------

class Runner:
    def __init__(self, ports, certs, io_timeout=3.0):
        self.ports = ports
        self.ctx = certs.client_context()
        self.io_timeout = io_timeout

    def run(self, g, state, on_connect=None):
        """Execute g.steps; fills state: local port, markers checked,
        bytes sent.  Never raises for network errors."""
        port = self.ports[g.listener]
        try:
            s = socket.create_connection(("127.0.0.1", port),
                                         timeout=self.io_timeout)
        except OSError as e:
            state["connect_error"] = str(e)
            return
        state["local"] = s.getsockname()
        if on_connect is not None:
            on_connect(state["local"])
        s.settimeout(self.io_timeout)
        rd = common.Line(s)
        try:
            for step in g.steps:
                op = step[0]
                if op in ("send", "sendnow"):
                    s.sendall(step[1])
                    state["bytes"] += len(step[1])
                elif op == "sleep":
                    time.sleep(step[1])
                elif op == "drain":
                    self.drain(s, rd, step[1])
                elif op == "greet":
                    code, _ = rd.reply()
                    if code != 220:
                        break
                elif op == "reply":
                    for _ in range(step[1]):
                        rd.reply()
                elif op == "starttls":
                    code, _ = rd.reply()
                    if code == 220:
                        state["markers"].append(step[1])
                    else:
                        break
                elif op == "tls":
                    if rd.buf:
                        break
                    s = self.ctx.wrap_socket(s, server_hostname=
                                             "mx1.example.org")
                    s.settimeout(self.io_timeout)
                    rd = common.Line(s)
                    state["tls"] = True
                elif op == "end":
                    self.end(s, step[1])
                    return
        except (OSError, common.SessionError, ssl.SSLError, ValueError):
            pass
        self.end(s, "close")

    def drain(self, s, rd, seconds):
        s.settimeout(max(seconds, 0.001))
        try:
            d = s.recv(1 << 20)
            if d:
                rd.buf = (rd.buf + d)[-65536:]
        except (socket.timeout, ssl.SSLWantReadError):
            pass
        finally:
            s.settimeout(self.io_timeout)

    def end(self, s, how):
        try:
            if how == "rst":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
            elif how == "shutwr":
                s.shutdown(socket.SHUT_WR)
                s.settimeout(1.0)
                try:
                    s.recv(65536)
                except OSError:
                    pass
            s.close()
        except OSError:
            pass


# -- the fuzzer -------------------------------------------------------------------------

def step_json(step):
    out = []
    for x in step:
        out.append({"hex": x.hex()} if isinstance(x, bytes) else x)
    return out


def step_from_json(step):
    return tuple(bytes.fromhex(x["hex"]) if isinstance(x, dict) else x
                 for x in step)


class Fuzzer:
    def __init__(self, a):
        self.a = a
        self.wd = common.workdir("stp-netfuzz-")
        self.out = a.out or os.path.join(self.wd, "failures")
        self.certs = common.Certs(self.wd)
        self.lax = hb.HostileBackend(mode="lax", expect_proxy=True,
                                     seed=a.seed).start()
        self.hostile = hb.HostileBackend(mode="mixed", seed=a.seed,
                                         record_commands=False,
                                         keep=False).start()
        self.ports = {"mx": common.free_port(), "pp": common.free_port(),
                      "hb": common.free_port()}
        cfg = {
            "workers": 2, "user": "", "shutdown_timeout": 5,
            "log": {"level": "info", "format": "text"},
            "listeners": [
                common.listener("mx", self.ports["mx"], self.lax.address,
                                self.certs, proxy_out="v1", idle=20),
                common.listener("pp", self.ports["pp"], self.lax.address,
                                self.certs, proxy_in=True, proxy_out="v1",
                                idle=20),
                common.listener("hb", self.ports["hb"],
                                self.hostile.address, self.certs, idle=20),
            ],
        }
        self.proxy = common.Proxy(a.bin, self.wd, cfg,
                                  list(self.ports.values())).start()
        self.runner = Runner(self.ports, self.certs)
        self.lock = threading.Lock()
        self.sessions = 0
        self.bytes = 0
        self.health_runs = 0
        self.violations = []
        self.seen_keys = set()
        self.dirty = set()          # X-Msg-Ids sent with a bare/fake end
        self.markers = set()        # injected markers that got a 220
        self.seen_markers = {}      # markers the backend saw -> client
        self.tags = set()           # smuggling tags
        self.by_client = {}         # (addr, port) -> [Gen]
        self.health_ids = {}
        self.checked_events = 0
        self.stop = threading.Event()
        self.first_violation_at = None
        self.t0 = time.monotonic()

    # -- violations ---------------------------------------------------------------

    def violation(self, key, text, gens=()):
        with self.lock:
            if key in self.seen_keys:
                return
            self.seen_keys.add(key)
            if self.first_violation_at is None:
                self.first_violation_at = time.monotonic() - self.t0
            self.violations.append(text)
            quiet = len(self.violations) > 20
        if quiet:           # counted in the summary, not printed or saved
            return
        common.log(PROG, "VIOLATION after %.1fs: %s" % (
            time.monotonic() - self.t0, text))
        os.makedirs(self.out, exist_ok=True)
        for g in gens:
            path = os.path.join(self.out, "session-%d-%d.json" % (
                self.a.seed, g.sid))
            with open(path, "w") as f:
                json.dump({"seed": self.a.seed, "sid": g.sid,
                           "listener": g.listener, "violation": text,
                           "steps": [step_json(s) for s in g.steps]}, f,
                          indent=1)
            common.log(PROG, "  session saved: %s (replay: netfuzz.py "
                       "--replay %s, or --seed %d --only %d)" % (
                           path, path, self.a.seed, g.sid))

    # -- checks ---------------------------------------------------------------------

    def check_backend(self):
        evs = self.lax.events
        with self.lock:
            start, self.checked_events = self.checked_events, len(evs)
        conn_client = {}
        for ev in evs[:start]:
            if ev["ev"] == "proxy" and ev.get("client"):
                conn_client[ev["conn"]] = tuple(ev["client"])
        for ev in evs[start:]:
            if ev["ev"] == "proxy" and ev.get("client"):
                conn_client[ev["conn"]] = tuple(ev["client"])
                continue
            cl = conn_client.get(ev.get("conn"))
            gens = self.by_client.get(cl, [])[-2:]
            if ev["ev"] == "message" and ev["kind"] == "DATA":
                if ev["terminator"] != "\r\n.\r\n":
                    self.violation(("end", ev["conn"]),
                                   "backend completed a message ended by %r "
                                   "(not CRLF.CRLF), ids %s, client %s" % (
                                       ev["terminator"], ev["ids"], cl), gens)
                if ev["bare"]:
                    self.violation(("bare", ev["conn"]),
                                   "backend completed a message with a bare "
                                   "CR or LF, ids %s, client %s" % (
                                       ev["ids"], cl), gens)
                for i in ev["ids"]:
                    if i in self.dirty:
                        self.violation(("dirty", i),
                                       "backend completed message %s which "
                                       "the client sent with a bare CR/LF or "
                                       "a fake end" % i, gens)
            if ev["ev"] in ("message", "cmd", "incomplete"):
                text = ev.get("line") or ev.get("content") or ""
                for m in ev.get("markers") or hb.MARKER_RE.findall(
                        text.encode("latin-1")):
                    m = m if isinstance(m, str) else m.decode()
                    with self.lock:
                        known = m in self.markers
                        if not known:
                            self.seen_markers[m] = cl
                    if known:
                        self.violation(("marker", m),
                                       "command injected after STARTTLS "
                                       "reached the backend: %s, client %s"
                                       % (m, cl), gens)
            if ev["ev"] == "cmd" and "SMUGGLED-" in ev["line"]:
                self.violation(("smuggled", ev["conn"]),
                               "backend saw smuggled content as a command: "
                               "%r, client %s" % (ev["line"][:100], cl), gens)
            if ev["ev"] == "error":
                self.violation(("backend-error", ev["conn"]),
                               "lax backend error: %s" % ev["error"])

    def check_proxy(self):
        rep = self.proxy.sanitizer_report()
        if rep:
            self.violation(("sanitizer",), "sanitizer report in the proxy's "
                           "stderr:\n" + rep)
        if not self.proxy.alive():
            self.violation(("dead",), "the proxy exited (status %s); stderr "
                           "tail:\n%s" % (self.proxy.proc.poll(),
                                          self.proxy.stderr()[-3000:]))
            self.stop.set()

    def health(self):
        """A normal session and a STARTTLS session, each with a message
        that must reach the backend."""
        self.health_runs += 1
        for tls in (False, True):
            mid = "health-%d-%s" % (self.health_runs, "tls" if tls else "plain")
            out, code, detail = common.smtp_session(
                self.ports["mx"], mid, tls_ctx=self.runner.ctx if tls else None,
                timeout=30)
            if out != "acked":
                self.violation(("health", mid), "health session %s failed: "
                               "%s %s %s" % (mid, out, code, detail))
                continue
            if not common.wait_until(lambda: any(
                    mid in ev.get("ids", ()) for ev in self.lax.events
                    if ev["ev"] == "message"), 10):
                self.violation(("health-lost", mid), "health message %s got "
                               "250 but is not at the backend" % mid)

    # -- sessions -------------------------------------------------------------------

    def one(self, sid):
        g = Gen(self.a.seed, sid).build()
        with self.lock:
            for mid, clean in g.ids.items():
                if not clean:
                    self.dirty.add(mid)
            self.tags.update(g.smuggle_tags)
        state = {"bytes": 0, "markers": [], "local": None}
        # The backend may report before run() returns: register first.
        if g.listener == "pp" and g.client:
            self.by_client.setdefault(g.client, []).append(g)
        self.runner_run(g, state)
        self.confirm(g, state)

    def confirm(self, g, state):
        with self.lock:
            self.sessions += 1
            self.bytes += state["bytes"]
            self.markers.update(state["markers"])
            early = [m for m in state["markers"] if m in self.seen_markers]
        for m in early:
            self.violation(("marker", m), "command injected after STARTTLS "
                           "reached the backend: %s, client %s" % (
                               m, self.seen_markers[m]), [g])

    def runner_run(self, g, state):
        def on_connect(local):
            # mx sessions are known to the backend by the local port
            # (PROXY v1 to the backend): register before any byte goes.
            if g.listener == "mx":
                self.by_client.setdefault(tuple(local), []).append(g)
        self.runner.run(g, state, on_connect)

    def worker(self, first, stride, deadline):
        sid = first
        while not self.stop.is_set() and time.monotonic() < deadline:
            if self.a.only is not None:
                return
            self.one(sid)
            sid += stride

    def run(self):
        a = self.a
        deadline = self.t0 + a.seconds
        self.health()
        threads = [threading.Thread(target=self.worker,
                                    args=(i, a.jobs, deadline), daemon=True)
                   for i in range(a.jobs)]
        if a.only is not None:
            self.one(a.only)
        elif a.replay:
            self.replay(a.replay)
        else:
            for t in threads:
                t.start()
        next_health = time.monotonic() + a.health
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            self.check_proxy()
            self.check_backend()
            if time.monotonic() >= next_health and not self.stop.is_set():
                self.health()
                next_health = time.monotonic() + a.health
        for t in threads:
            if t.ident is not None:
                t.join(30)
        time.sleep(1.0)         # let the backend see the last sessions end
        self.check_proxy()
        if self.proxy.alive():
            self.health()
        time.sleep(0.5)
        self.check_backend()
        self.check_proxy()
        rc = self.proxy.stop()
        if rc not in (0, None) and not any("exited" in v
                                           for v in self.violations):
            self.violation(("exit",), "the proxy exited with status %s on "
                           "SIGTERM" % rc)
        elif rc is None:
            self.violation(("exit",), "the proxy did not stop on SIGTERM")
        self.check_proxy_after_exit()
        self.lax.stop()
        self.hostile.stop()
        return self.report()

    def check_proxy_after_exit(self):
        rep = self.proxy.sanitizer_report()
        if rep:
            self.violation(("sanitizer",), "sanitizer report in the proxy's "
                           "stderr:\n" + rep)

    def replay(self, path):
        with open(path) as f:
            d = json.load(f)
        self.a.seed = d["seed"]
        g = Gen(d["seed"], d["sid"])
        g.listener = d["listener"]
        g.client = None
        g.steps = [step_from_json(s) for s in d["steps"]]
        # every X-Msg-Id in a replayed session counts as dirty unless its
        # message ended clean: regenerate that knowledge from the seed
        g2 = Gen(d["seed"], d["sid"]).build()
        for mid, clean in g2.ids.items():
            if not clean:
                self.dirty.add(mid)
        g.client = g2.client
        if g.client:
            self.by_client.setdefault(g.client, []).append(g)
        state = {"bytes": 0, "markers": [], "local": None}
        self.runner_run(g, state)
        self.confirm(g, state)

    def report(self):
        el = time.monotonic() - self.t0
        msgs = sum(1 for ev in self.lax.events if ev["ev"] == "message")
        print("netfuzz: seed %d, %.0fs: sessions=%d bytes=%d "
              "backend_connections=%d backend_messages=%d markers_checked=%d "
              "health_checks=%d violations=%d%s" % (
                  self.a.seed, el, self.sessions, self.bytes,
                  sum(1 for ev in self.lax.events if ev["ev"] == "connect"),
                  msgs, len(self.markers), self.health_runs,
                  len(self.violations),
                  "" if self.first_violation_at is None else
                  " first_violation_after=%.1fs" % self.first_violation_at),
              flush=True)
        if self.violations:
            print("netfuzz: FAILED; inputs under %s, proxy stderr %s" % (
                self.out, self.proxy.errpath), flush=True)
            return 1
        if not self.a.keep:
            shutil.rmtree(self.wd, ignore_errors=True)
        print("netfuzz: ok", flush=True)
        return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=common.default_bin())
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=8,
                    help="sessions at a time (default 8)")
    ap.add_argument("--health", type=float, default=15,
                    help="seconds between health sessions (default 15)")
    ap.add_argument("--out", help="where failing sessions are saved")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory even on success")
    ap.add_argument("--only", type=int, help="run only this session number")
    ap.add_argument("--replay", help="run one saved session (JSON)")
    a = ap.parse_args(argv)
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1 << 31)
    if a.replay:
        with open(a.replay) as f:
            a.seed = json.load(f)["seed"]
    common.log(PROG, "binary %s, seed %d, %gs, %d at a time" % (
        a.bin, a.seed, a.seconds, a.jobs))
    f = Fuzzer(a)
    try:
        return f.run()
    except KeyboardInterrupt:
        f.proxy.stop()
        return 130


if __name__ == "__main__":
    sys.exit(main())
