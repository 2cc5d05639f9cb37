"""Shared pieces of the hostile tools (netfuzz, soak, fault): a throwaway
CA and certificate, the libconfig writer, the proxy process (with its
stderr checked for sanitizer reports), the backend as a child process, a
plain SMTP client session that tags its message with a unique id, and the
accounting that compares what clients were told with what the backend got.

Python 3 standard library and the openssl command line only."""

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "UndefinedBehaviorSanitizer",
                   "AddressSanitizer:")


def default_bin():
    """STP_BIN, else the ASan build when present, else build/."""
    if os.environ.get("STP_BIN"):
        return os.environ["STP_BIN"]
    for d in ("build-asan", "build"):
        p = os.path.join(REPO, d, "starttls-proxy")
        if os.access(p, os.X_OK):
            return p
    return os.path.join(REPO, "build", "starttls-proxy")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_listening(port):
    """True if a socket LISTENs on port, read from /proc (no connect, so
    probing makes no proxy session)."""
    want = ":%04X" % port
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[1].endswith(want) and fields[3] == "0A":
                        return True
        except OSError:
            continue
    return False


def wait_until(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def log(prog, msg):
    print("%s: %s" % (prog, msg), file=sys.stderr, flush=True)


# -- certificates -----------------------------------------------------------

class Certs:
    """A CA and an ECDSA leaf for mx1.example.org, made with the openssl
    CLI in a private directory (throwaway keys, deleted with it)."""

    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, "ca.pem")
        self.cert = os.path.join(d, "mx1.pem")
        self.key = os.path.join(d, "mx1.key")
        self._run("genpkey", "-algorithm", "EC", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-out", "ca.key")
        self._run("req", "-x509", "-new", "-key", "ca.key", "-sha256",
                  "-days", "2", "-subj", "/CN=hostile test CA",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                  "-out", "ca.pem")
        self._run("genpkey", "-algorithm", "EC", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-out", "mx1.key")
        self._run("req", "-new", "-key", "mx1.key", "-subj",
                  "/CN=mx1.example.org", "-out", "mx1.csr")
        with open(os.path.join(d, "mx1.ext"), "w") as f:
            f.write("[v3]\nbasicConstraints = CA:FALSE\n"
                    "keyUsage = critical,digitalSignature\n"
                    "extendedKeyUsage = serverAuth\n"
                    "subjectAltName = DNS:mx1.example.org\n")
        self._run("x509", "-req", "-in", "mx1.csr", "-CA", "ca.pem",
                  "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                  "-sha256", "-extfile", "mx1.ext", "-extensions", "v3",
                  "-out", "mx1.pem")

    def _run(self, *args):
        r = subprocess.run(["openssl"] + list(args), cwd=self.dir,
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (
                " ".join(args), r.stderr.decode(errors="replace")))

    def client_context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx


# -- libconfig ---------------------------------------------------------------

def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"%s"' % str(v).replace("\\", "\\\\").replace('"', '\\"')


def _value(key, v, ind):
    pad = "  " * ind
    if isinstance(v, dict):
        inner = "".join("%s  %s = %s;\n" % (pad, k, _value(k, x, ind + 1))
                        for k, x in v.items())
        return "{\n%s%s}" % (inner, pad)
    if isinstance(v, list):
        if key in ("listeners", "certificates"):
            return "(\n%s\n%s)" % (",\n".join(
                "%s  %s" % (pad, _value(None, x, ind + 1)) for x in v), pad)
        return "[ %s ]" % ", ".join(_scalar(x) for x in v)
    return _scalar(v)


def to_libconfig(cfg):
    return "".join("%s = %s;\n" % (k, _value(k, v, 0)) for k, v in cfg.items())


def listener(name, port, backend, certs, proxy_in=False, proxy_out="none",
             idle=30, per_ip=10000):
    return {
        "name": name,
        "listen": "127.0.0.1:%d" % port,
        "proxy_protocol": proxy_in,
        "backend": {"address": backend, "proxy_protocol": proxy_out,
                    "connect_timeout": 5},
        "tls": {"certificates": [{"cert": certs.cert, "key": certs.key}],
                "handshake_timeout": 10},
        "policy": {"bare_newline": "reject"},
        "limits": {"max_connections": 10000,
                   "max_connections_per_ip": per_ip,
                   "idle_timeout": idle},
    }


# -- the proxy process ---------------------------------------------------------

class Proxy:
    def __init__(self, binary, workdir, config, ports, asan_extra=""):
        self.bin = binary
        self.dir = workdir
        self.ports = ports
        self.conf = os.path.join(workdir, "proxy.conf")
        self.errpath = os.path.join(workdir, "proxy.stderr")
        self.write_config(config)
        self.env = dict(os.environ)
        a = self.env.get("ASAN_OPTIONS", "detect_leaks=1")
        if asan_extra:
            a = a + ":" + asan_extra if a else asan_extra
        self.env["ASAN_OPTIONS"] = a
        self.env.setdefault("UBSAN_OPTIONS",
                            "print_stacktrace=1:halt_on_error=1")
        self.proc = None
        self._errpos = 0

    def write_config(self, config):
        with open(self.conf, "w") as f:
            f.write(to_libconfig(config))

    def start(self, wait=20.0):
        self._err = open(self.errpath, "ab")
        self.proc = subprocess.Popen([self.bin, "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=self._err,
                                     env=self.env, cwd=self.dir)
        ok = wait_until(lambda: self.proc.poll() is not None or
                        all(port_listening(p) for p in self.ports), wait)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError("proxy did not start (status %s):\n%s" % (
                self.proc.poll(), self.stderr()[-4000:]))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def sanitizer_report(self):
        """The first sanitizer report in stderr, or None."""
        err = self.stderr()
        for m in SANITIZER_MARKS:
            i = err.find(m)
            if i >= 0:
                return err[max(0, i - 200):i + 6000]
        return None

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout=30.0):
        """SIGTERM and wait; returns the exit status (None if it hung and
        had to be killed)."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                rc = None
        self._err.close()
        return rc


# -- the backend as a child process ---------------------------------------------

class BackendProcess:
    """backend.py in its own process (so it can be SIGKILLed and so its
    threads do not share the clients' GIL), recording to a file."""

    def __init__(self, workdir, mode="good", port=None, extra=()):
        self.dir = workdir
        self.mode = mode
        self.port = port or free_port()
        self.record = os.path.join(workdir, "backend-records.jsonl")
        self.errpath = os.path.join(workdir, "backend.stderr")
        self.extra = list(extra)
        self.proc = None
        self.starts = 0

    def start(self):
        ready = os.path.join(self.dir, "backend.ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self._err = open(self.errpath, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "backend.py"),
             "--mode", self.mode, "--port", str(self.port),
             "--record", self.record, "--no-commands",
             "--ready-file", ready] + self.extra,
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err)
        if not wait_until(lambda: os.path.exists(ready) or
                          self.proc.poll() is not None, 20):
            raise RuntimeError("backend did not start")
        if self.proc.poll() is not None:
            raise RuntimeError("backend exited: %s" % self.proc.returncode)
        self.starts += 1
        return self

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._err.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._err.close()


# -- one client session with one tagged message -----------------------------------

class SessionError(Exception):
    pass


class Line:
    """Buffered reply reader over a socket (plain or TLS)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def reply(self):
        """One whole reply: (code, raw bytes)."""
        raw = b""
        while True:
            while b"\n" not in self.buf:
                try:
                    d = self.sock.recv(65536)
                except (ssl.SSLError, ConnectionResetError) as e:
                    raise SessionError("recv: %s" % e)
                except socket.timeout:
                    raise SessionError("timeout waiting for a reply")
                if not d:
                    raise SessionError("closed by the proxy; got %r" % raw)
                self.buf += d
            i = self.buf.index(b"\n")
            line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
            raw += line
            if len(line) < 4 or line[3:4] != b"-":
                try:
                    return int(line[:3]), raw
                except ValueError:
                    raise SessionError("bad reply %r" % raw)


def smtp_session(port, msgid, tls_ctx=None, timeout=60.0, pause=0.0,
                 body_lines=3):
    """EHLO, [STARTTLS, EHLO,] MAIL, RCPT, DATA with a message tagged
    X-Msg-Id: msgid, QUIT.  Returns (outcome, code, detail):
      acked    250 after the content
      refused  a reply other than the expected one (code says which; for
               the content's reply: the message was not taken)
      error    the content was sent and the connection failed or closed
               with no reply to it (code None)
      dropped  closed or failed after the greeting, before the content,
               with no reply to the last command
      connect  no session: connect failed, closed before the greeting,
               or a non-220 greeting (code: the greeting's, e.g. 421)"""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return "connect", None, "connect: %s" % e
    stage = "greeting"
    try:
        s.settimeout(timeout)
        r = Line(s)
        code, raw = r.reply()
        if code != 220:
            return "connect", code, "greeting %r" % raw[:200]
        steps = [("EHLO", b"EHLO soak.test\r\n", 250)]
        if tls_ctx is not None:
            steps.append(("STARTTLS", b"STARTTLS\r\n", 220))
        for stage, cmd, want in steps:
            s.sendall(cmd)
            code, raw = r.reply()
            if code != want:
                return "refused", code, "%s: %r" % (stage, raw[:200])
        if tls_ctx is not None:
            stage = "TLS"
            s = tls_ctx.wrap_socket(s, server_hostname="mx1.example.org")
            s.settimeout(timeout)
            r = Line(s)
        body = (b"From: <soak@example.org>\r\nX-Msg-Id: " + msgid.encode() +
                b"\r\nSubject: soak\r\n\r\n" +
                b"".join(b"line %d of the message\r\n" % i
                         for i in range(body_lines)))
        steps = [("EHLO2", b"EHLO soak.test\r\n", 250)] if tls_ctx else []
        steps += [("MAIL", b"MAIL FROM:<soak@example.org>\r\n", 250),
                  ("RCPT", b"RCPT TO:<rcpt@example.org>\r\n", 250),
                  ("DATA", b"DATA\r\n", 354),
                  ("content", body + b".\r\n", 250)]
        for stage, cmd, want in steps:
            if pause and stage == "RCPT":
                time.sleep(pause)
            s.sendall(cmd)
            code, raw = r.reply()
            if code != want:
                return "refused", code, "%s: %r" % (stage, raw[:200])
        try:
            s.sendall(b"QUIT\r\n")
            r.reply()
        except (OSError, SessionError, ssl.SSLError):
            pass
        return "acked", 250, ""
    except (OSError, SessionError, ssl.SSLError) as e:
        if stage == "greeting":
            return "connect", None, "greeting: %s" % e
        if stage == "content":
            return "error", None, "content: %s" % e
        return "dropped", None, "%s: %s" % (stage, e)
    finally:
        try:
            s.close()
        except OSError:
            pass


# -- load and accounting -------------------------------------------------------------

class Load:
    """count sessions, concurrency at a time, each a tagged message; stops
    early when stop is set.  Per id: outcome, code and detail."""

    def __init__(self, port, count, concurrency, prefix, tls_ctx=None,
                 tls_every=0, pause_every=0, pause=0.0, timeout=60.0,
                 deadline=None):
        self.port = port
        self.count = count
        self.conc = concurrency
        self.prefix = prefix
        self.tls_ctx = tls_ctx
        self.tls_every = tls_every
        self.pause_every = pause_every
        self.pause = pause
        self.timeout = timeout
        self.deadline = deadline
        self.results = {}
        self.done = 0
        self.stop = threading.Event()
        self._next = 0
        self._lock = threading.Lock()
        self._threads = []

    def _take(self):
        with self._lock:
            if self._next >= self.count or self.stop.is_set():
                return None
            if self.deadline and time.monotonic() > self.deadline:
                return None
            i = self._next
            self._next += 1
            return i

    def _worker(self):
        while True:
            i = self._take()
            if i is None:
                return
            msgid = "%s-%06d" % (self.prefix, i)
            ctx = None
            if self.tls_every and i % self.tls_every == 0:
                ctx = self.tls_ctx
            pause = 0.0
            if self.pause_every and i % self.pause_every == 0:
                pause = self.pause
            res = smtp_session(self.port, msgid, tls_ctx=ctx,
                               timeout=self.timeout, pause=pause)
            with self._lock:
                self.results[msgid] = res
                self.done += 1

    def start(self):
        for _ in range(self.conc):
            t = threading.Thread(target=self._worker, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def join(self, timeout=None):
        end = time.monotonic() + timeout if timeout else None
        for t in self._threads:
            t.join(None if end is None else max(0.1, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)


def account(results, records, dup_risk_ok=None):
    """Compare the clients' view (results: id -> (outcome, code, detail))
    with the backend's records.  Returns a dict of counts and a list of
    violations (strings).

    The rules (see README.md "What the accounting asserts"):
      lost       a client got 250 but the backend has no such message:
                 always a violation (the proxy invented or misrouted a 250).
      duplicate  the backend completed one id twice: always a violation
                 (each id is sent once and the proxy never retries).
      dup-risk   the backend completed a message whose client did not get
                 250.  The sender will retry, so the recipient may get it
                 twice.  SMTP allows this only when the backend's 250
                 never reached the proxy (the backend died between
                 committing and replying): such a message has a "message"
                 record but no "replied" record.  A dup-risk message whose
                 250 the backend did write is the proxy losing an ack: a
                 violation.  dup_risk_ok=False makes every dup-risk a
                 violation (no fault that could explain one was injected).
      stray      a completed message with an id no client sent: violation.
    """
    done = {}
    replied = set()
    for ev in records:
        if ev.get("ev") == "message":
            for i in ev.get("ids", []):
                done[i] = done.get(i, 0) + 1
        elif ev.get("ev") == "replied":
            replied.update(ev.get("ids", []))
    c = {"sessions": len(results), "acked": 0, "refused": 0, "error": 0,
         "dropped": 0, "connect": 0, "at_backend": 0, "lost": 0, "duplicate": 0,
         "dup_risk": 0, "dup_risk_replied": 0, "stray": 0}
    v = []
    for mid, (outcome, code, detail) in sorted(results.items()):
        c[outcome] += 1
        n = done.get(mid, 0)
        if n:
            c["at_backend"] += 1
        if n > 1:
            c["duplicate"] += 1
            v.append("duplicate: %s completed %d times at the backend"
                     % (mid, n))
        if outcome == "acked" and n == 0:
            c["lost"] += 1
            v.append("lost: %s got 250 but the backend never completed it"
                     % mid)
        if outcome != "acked" and n > 0:
            c["dup_risk"] += 1
            if mid in replied:
                c["dup_risk_replied"] += 1
                v.append("ack lost: the backend wrote 250 for %s but the "
                         "client got %s (%s)" % (mid, code or outcome, detail))
            elif dup_risk_ok is False:
                v.append("dup-risk without a fault: %s at the backend, "
                         "client got %s (%s)" % (mid, code or outcome, detail))
    for mid in done:
        if mid not in results:
            c["stray"] += 1
            v.append("stray: backend completed %s, which no client sent"
                     % mid)
    return c, v


def format_counts(c):
    return " ".join("%s=%s" % (k, c[k]) for k in c)


def workdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def first_failure_details(results, n=5):
    out = []
    for mid, (outcome, code, detail) in sorted(results.items()):
        if outcome != "acked":
            out.append("%s: %s %s %s" % (mid, outcome, code, detail))
            if len(out) >= n:
                break
    return out

