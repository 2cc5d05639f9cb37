"""Shared pieces of the integration harness: ports, certificates, the
libconfig writer, the proxy process, the exim backend and a raw SMTP client
that shows the exact bytes on the wire."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

CRLF = b"\r\n"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEFAULT_BIN = os.path.join(REPO, "build", "starttls-proxy")
IO_TIMEOUT = 10.0


def stp_bin():
    return os.environ.get("STP_BIN", DEFAULT_BIN)


# -- ports -------------------------------------------------------------------

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def closed_port():
    """A port on 127.0.0.1 that nothing listens on (connect is refused)."""
    return free_port()


def port_listening(port):
    """True if some socket LISTENs on port (from /proc, without connecting,
    so that probing never creates a proxy session)."""
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


def wait_until(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


# -- certificates ------------------------------------------------------------

def _openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd,
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (
            " ".join(args), r.stderr.decode(errors="replace")))
    return r


class Certs:
    """A test CA and ECDSA P-256 leaf certificates, made with the openssl
    CLI into a private directory.  Keys never leave the temp dir."""

    LEAVES = {
        "mx1": ["mx1.example.org"],
        "mx2": ["mx2.example.org"],
        "wild": ["*.wild.example.org"],
    }

    def __init__(self, d):
        self.dir = str(d)
        self.ca = os.path.join(self.dir, "ca.pem")
        self._make_ca()
        for name, sans in self.LEAVES.items():
            self._make_leaf(name, sans)
        # RSA twin of mx1 (same name, other key type), a client
        # certificate, one that expires in a week, and an expired one.
        self._make_leaf("mx1-rsa", ["mx1.example.org"], rsa=True)
        self._make_leaf("client", ["client.example.org"], client=True)
        self._make_leaf("soon", ["soon.example.org"], days=7)
        self._make_expired()

    def cert(self, name):
        return os.path.join(self.dir, name + ".pem")

    def key(self, name):
        return os.path.join(self.dir, name + ".key")

    def pem(self, name):
        with open(self.cert(name)) as f:
            return normalise_pem(f.read())

    def der(self, name):
        return ssl.PEM_cert_to_DER_cert(self.pem(name))

    def _genkey(self, out, rsa=False):
        if rsa:
            _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                     "rsa_keygen_bits:2048", "-out", out, cwd=self.dir)
        else:
            _openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-out", out, cwd=self.dir)

    def _make_ca(self):
        self._genkey("ca.key")
        _openssl("req", "-x509", "-new", "-key", "ca.key", "-sha256",
                 "-days", "30", "-subj", "/CN=starttls-proxy test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-out", "ca.pem", cwd=self.dir)

    def _ext(self, name, sans, rsa=False, client=False):
        path = os.path.join(self.dir, name + ".ext")
        with open(path, "w") as f:
            f.write("[v3]\n"
                    "basicConstraints = CA:FALSE\n"
                    "keyUsage = critical,digitalSignature%s\n"
                    "extendedKeyUsage = %s\n"
                    "subjectAltName = %s\n"
                    % (",keyEncipherment" if rsa else "",
                       "clientAuth" if client else "serverAuth",
                       ",".join("DNS:" + s for s in sans)))
        return path

    def _make_leaf(self, name, sans, rsa=False, client=False, days=30):
        self._genkey(name + ".key", rsa=rsa)
        _openssl("req", "-new", "-key", name + ".key",
                 "-subj", "/CN=" + sans[0], "-out", name + ".csr",
                 cwd=self.dir)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                 "-CAkey", "ca.key", "-CAcreateserial", "-days", str(days),
                 "-sha256", "-extfile", self._ext(name, sans, rsa, client),
                 "-extensions", "v3", "-out", name + ".pem", cwd=self.dir)

    def _make_expired(self):
        """expired.pem: valid in January 2020 only; future.pem: valid
        from 2200 on (openssl ca can set any dates, openssl x509 -req
        cannot in 3.0)."""
        d = self.dir
        os.makedirs(os.path.join(d, "newcerts"), exist_ok=True)
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        for name, start, end in (
                ("expired", "20200101000000Z", "20200201000000Z"),
                ("future", "22000101000000Z", "22000201000000Z")):
            with open(os.path.join(d, "ca.cnf"), "w") as f:
                f.write("[ca]\ndefault_ca = tca\n"
                        "[tca]\ndatabase = index.txt\n"
                        "new_certs_dir = newcerts\n"
                        "serial = serial\ndefault_md = sha256\n"
                        "policy = pol\nunique_subject = no\n"
                        "x509_extensions = v3\n"
                        "[pol]\ncommonName = supplied\n"
                        "[v3]\nbasicConstraints = CA:FALSE\n"
                        "subjectAltName = DNS:%s.example.org\n" % name)
            self._genkey(name + ".key")
            _openssl("req", "-new", "-key", name + ".key",
                     "-subj", "/CN=%s.example.org" % name,
                     "-out", name + ".csr", cwd=d)
            _openssl("ca", "-config", "ca.cnf", "-batch", "-notext",
                     "-cert", "ca.pem", "-keyfile", "ca.key",
                     "-startdate", start, "-enddate", end,
                     "-in", name + ".csr", "-out", name + ".pem", cwd=d)

    def client_context(self, maximum=None, ciphers=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        if maximum is not None:
            ctx.maximum_version = maximum
        if ciphers is not None:
            ctx.set_ciphers(ciphers)
        return ctx


def normalise_pem(text):
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                  text, re.S)
    assert m, "no PEM certificate in %r" % text[:400]
    body = "".join(m.group(0).split("\n")[1:-1]).replace("\r", "")
    return "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % (
        "\n".join(body[i:i + 64] for i in range(0, len(body), 64)))


# -- libconfig ---------------------------------------------------------------

# Keys whose value is a libconfig list "( ... )" rather than an array.
_LIST_KEYS = {"listeners", "certificates"}


def _cfg_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
    raise TypeError("cannot write %r as libconfig" % (v,))


def _cfg_value(key, v, ind):
    pad = "  " * ind
    if isinstance(v, dict):
        inner = "".join("%s  %s = %s;\n" % (pad, k, _cfg_value(k, x, ind + 1))
                        for k, x in v.items())
        return "{\n%s%s}" % (inner, pad)
    if isinstance(v, (list, tuple)):
        if key in _LIST_KEYS or any(isinstance(x, dict) for x in v):
            items = ",\n".join("%s  %s" % (pad, _cfg_value(None, x, ind + 1))
                               for x in v)
            return "(\n%s\n%s)" % (items, pad) if v else "( )"
        return "[ %s ]" % ", ".join(_cfg_scalar(x) for x in v)
    return _cfg_scalar(v)


def to_libconfig(cfg):
    return "".join("%s = %s;\n" % (k, _cfg_value(k, v, 0))
                   for k, v in cfg.items())


def deep_merge(base, over):
    """Merge over into base; a None value deletes the key."""
    out = dict(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def base_config(certs, listen_port, backend_address, with_wild=True):
    cert_list = [
        {"cert": certs.cert("mx1"), "key": certs.key("mx1")},
        {"cert": certs.cert("mx2"), "key": certs.key("mx2")},
    ]
    if with_wild:
        cert_list.append({"cert": certs.cert("wild"),
                          "key": certs.key("wild")})
    return {
        "workers": 1,
        "user": "",
        "shutdown_timeout": 2,
        "log": {"level": "info", "format": "text"},
        "listeners": [{
            "name": "mx",
            "listen": "127.0.0.1:%d" % listen_port,
            "backend": {"address": backend_address, "connect_timeout": 5},
            "tls": {"certificates": cert_list, "handshake_timeout": 10},
            "policy": {},
            "limits": {},
        }],
    }


# -- the proxy process -------------------------------------------------------

BAD_STDERR = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
              "ThreadSanitizer", "UndefinedBehaviorSanitizer")


class Proxy:
    """One running starttls-proxy with its config and captured stderr."""

    def __init__(self, workdir, config, port, env=None, use_c=True,
                 preexec_fn=None):
        self.preexec_fn = preexec_fn    # run in the child before exec
        self.dir = str(workdir)
        self.port = port
        self.config = config
        self.conf_path = os.path.join(self.dir, "proxy-%d.conf" % port)
        self.stderr_path = os.path.join(self.dir, "proxy-%d.stderr" % port)
        self.stdout_path = os.path.join(self.dir, "proxy-%d.stdout" % port)
        with open(self.conf_path, "w") as f:
            f.write(to_libconfig(config))
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.use_c = use_c
        self.proc = None
        self.stopped_by_us = False
        self.start_failed = False     # already reported by start()

    def rewrite(self, config):
        self.config = config
        with open(self.conf_path, "w") as f:
            f.write(to_libconfig(config))

    def start(self, wait=10.0):
        argv = [stp_bin()]
        if self.use_c:
            argv += ["-c", self.conf_path]
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err,
                                     env=self.env, cwd=self.dir,
                                     preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.start_failed = True
                raise AssertionError(
                    "proxy exited with %s before listening on %d; stderr:\n%s"
                    % (self.proc.returncode, self.port, self.stderr()))
            if port_listening(self.port):
                return self
            time.sleep(0.02)
        raise AssertionError("proxy not listening on %d after %.0fs; "
                             "stderr:\n%s" % (self.port, wait, self.stderr()))

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15.0):
        """SIGTERM, wait, SIGKILL if needed.  Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.stopped_by_us = True
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self._close_files()
                raise AssertionError(
                    "proxy did not exit within %.0fs of SIGTERM; stderr:\n%s"
                    % (timeout, self.stderr()))
        self._close_files()
        return self.proc.returncode

    def _close_files(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f is not None and not f.closed:
                f.close()

    def check_clean_exit(self, rc):
        """No crash signal, no sanitizer report."""
        err = self.stderr()
        assert self.start_failed or rc in (0, -signal.SIGTERM), (
            "proxy ended with status %r (negative = signal); stderr:\n%s"
            % (rc, err[-8000:]))
        for bad in BAD_STDERR:
            assert bad not in err, "proxy stderr has %r:\n%s" % (bad,
                                                                  err[-8000:])


def run_cli(args, env=None, cwd=None, timeout=30):
    e = dict(os.environ)
    if env is not None:
        e.update(env)
    r = subprocess.run([stp_bin()] + list(args), capture_output=True,
                       env=e, cwd=cwd, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    r.out = (r.stdout + r.stderr).decode(errors="replace")
    for bad in BAD_STDERR:
        assert bad not in r.out, "sanitizer report:\n%s" % r.out
    assert r.returncode >= 0, "killed by signal %d:\n%s" % (-r.returncode,
                                                           r.out)
    return r


# -- a raw SMTP client -------------------------------------------------------

class Reply:
    def __init__(self, raw):
        self.raw = raw                              # bytes, CRLFs included
        lines = raw.split(b"\r\n")[:-1] if raw.endswith(b"\r\n") else \
            raw.split(b"\n")
        self.lines = [l.decode("latin-1") for l in lines]
        self.code = int(self.lines[0][:3])
        self.texts = [l[4:] for l in self.lines]

    @property
    def enhanced(self):
        m = re.match(r"(\d\.\d{1,3}\.\d{1,3})(?:\s|$)", self.texts[0])
        return m.group(1) if m else None

    @property
    def text(self):
        return "\n".join(self.texts)

    def keywords(self):
        """EHLO reply: the upper-cased keyword of each line after the first."""
        return [t.split(" ")[0].upper() for t in self.texts[1:]]

    def __repr__(self):
        return "Reply(%r)" % self.raw


class Client:
    """SMTP over a plain socket; every read is bounded by a timeout."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT,
                 sock=None):
        self.sock = sock or socket.create_connection((host, port),
                                                     timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError):
            d = b""
        if not d:
            raise EOFError("connection closed; unread: %r" % self.buf)
        self.buf += d

    def read_line(self):
        while b"\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\n")
        line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
        return line

    def read_reply(self):
        raw = b""
        while True:
            line = self.read_line()
            raw += line
            if len(line) < 4 or line[3:4] != b"-":
                return Reply(raw)

    def greeting(self):
        r = self.read_reply()
        assert r.code == 220, "greeting: %r" % r
        return r

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + CRLF)
        return self.read_reply()

    def ehlo(self, name="client.test"):
        r = self.cmd("EHLO " + name)
        assert r.code == 250, "EHLO: %r" % r
        return r

    def starttls(self, ctx, server_hostname="mx1.example.org"):
        r = self.cmd("STARTTLS")
        assert r.code == 220, "STARTTLS: %r" % r
        self.wrap(ctx, server_hostname)
        return r

    def wrap(self, ctx, server_hostname):
        assert self.buf == b"", "bytes after the 220 before TLS: %r" % self.buf
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.sock.settimeout(self.timeout)

    def pending(self, wait=0.5):
        """Whatever arrives within wait seconds (b"" if nothing)."""
        self.sock.settimeout(wait)
        try:
            self._fill()
        except (socket.timeout, EOFError, ssl.SSLError, OSError):
            pass
        finally:
            self.sock.settimeout(self.timeout)
        out, self.buf = self.buf, b""
        return out

    def read_until_closed(self, timeout):
        """Read to EOF; returns the bytes, or raises if still open."""
        deadline = time.monotonic() + timeout
        out = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("connection still open after %.1fs; "
                                     "got %r" % (timeout, out))
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ssl.SSLError, ConnectionResetError):
                d = b""
            if not d:
                return out
            out += d

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def replies_from(data):
    """Split bytes into Reply objects."""
    out = []
    cur = b""
    for line in data.splitlines(keepends=True):
        cur += line
        if len(line) < 4 or line[3:4] != b"-":
            out.append(Reply(cur))
            cur = b""
    assert cur == b"", "incomplete reply: %r" % cur
    return out


def dot_stuff(content):
    """What a client puts on the wire for content (CRLF lines)."""
    lines = content.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l
                        for l in lines)


RECEIVED_RE = re.compile(rb"\AReceived:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")


def split_received(content):
    """(the proxy's Received header, the rest) from relayed content."""
    m = RECEIVED_RE.match(content)
    assert m, "relayed content does not start with a Received header: %r" % (
        content[:300],)
    return m.group(0), content[m.end():]


# -- exim --------------------------------------------------------------------

EXIM_CONF = """\
# exim test backend for the starttls-proxy integration tests
primary_hostname = test.example
local_interfaces = 127.0.0.1
domainlist local_domains = example.org : example.com : example.net : \
  secure.example : *.secure.example : *.example.org : *.example.com
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
exim_user = Debian-exim
exim_group = Debian-exim
never_users =
host_lookup =
rfc1413_hosts =
rfc1413_query_timeout = 0s
keep_environment =
add_environment =
chunking_advertise_hosts = *
pipelining_advertise_hosts = *
tls_advertise_hosts =
auth_advertise_hosts =
message_size_limit = 64M
smtp_accept_max = 200
smtp_accept_max_per_host = 200
smtp_accept_queue_per_connection = 0
smtp_connect_backlog = 100
smtp_receive_timeout = 60s
smtp_max_synprot_errors = 100
smtp_max_unknown_commands = 100
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data

begin acl

acl_rcpt:
  accept domains = +local_domains
  deny   message = 5.7.1 relay not permitted

acl_data:
  accept

begin routers

to_maildir:
  driver = accept
  domains = +local_domains
  transport = maildir

begin transports

maildir:
  driver = appendfile
  directory = {d}/maildir
  maildir_format = true
  create_directory = true
  user = Debian-exim
  group = Debian-exim
  mode = 0644
  delivery_date_add = false
  envelope_to_add = false
  return_path_add = false

begin retry
*  *  F,1m,1m
"""


class Exim:
    """A private exim4 daemon on 127.0.0.1:<port> delivering every message
    into one maildir, <dir>/maildir/new/.  Tests find their messages by a
    unique token in the content (a local part taken from the envelope
    would be "tainted" and refused as a directory name by exim >= 4.94).

    Debian's exim4 (4.96) honours -C for root but "loses privilege" for
    deliveries; as the real uid is root it still runs, then switches to
    exim_user for spool and log, so those directories belong to
    Debian-exim and the config file to root (Configure owner 0:0).
    never_users is fixed at 0 in the build, hence user = Debian-exim on
    the transport.
    """

    EXIM = "/usr/sbin/exim4"

    def __init__(self, extra_main="", binary=None):
        """extra_main: lines added to the main section of the config
        (e.g. "hosts_proxy = 127.0.0.1"); binary: another exim binary (or
        a wrapper script) to run instead of EXIM; it is also set as
        exim_path so that exim's re-exec for delivery uses it too."""
        self.binary = binary or self.EXIM
        self.dir = tempfile.mkdtemp(prefix="stp-exim-")
        os.chmod(self.dir, 0o755)
        for sub in ("spool", "log", "maildir"):
            os.mkdir(os.path.join(self.dir, sub))
            shutil.chown(os.path.join(self.dir, sub), "Debian-exim",
                         "Debian-exim")
        self.conf = os.path.join(self.dir, "exim.conf")
        with open(self.conf, "w") as f:
            text = EXIM_CONF.format(d=self.dir)
            extra = extra_main.strip("\n")
            if binary is not None:
                extra = "exim_path = %s\n%s" % (binary, extra)
            if extra:
                # Main options must come before the first "begin".
                i = text.index("\nbegin acl\n")
                text = text[:i] + "\n" + extra.rstrip("\n") + "\n" + text[i:]
            f.write(text)
        os.chmod(self.conf, 0o644)
        self.port = free_port()
        self.pidfile = os.path.join(self.dir, "exim.pid")
        self.stderr_path = os.path.join(self.dir, "exim.stderr")
        self.proc = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def command(self):
        return [self.binary, "-C", self.conf, "-bdf", "-oX", str(self.port),
                "-oP", self.pidfile, "-odi"]

    def start(self, wait=15.0):
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=self._err)
        ok = wait_until(lambda: port_listening(self.port)
                        or self.proc.poll() is not None, wait)
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("exim did not come up on %d:\n%s" % (
                self.port, self.logs()))
        return self

    def logs(self):
        out = []
        for name in ("exim.stderr", "log/mainlog", "log/paniclog",
                     "log/rejectlog"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out.append("== %s ==\n%s" % (
                        name, f.read().decode(errors="replace")[-6000:]))
        return "\n".join(out) or "(no exim output)"

    def mainlog(self):
        p = os.path.join(self.dir, "log", "mainlog")
        try:
            with open(p, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def all_messages(self):
        d = os.path.join(self.dir, "maildir", "new")
        if not os.path.isdir(d):
            return []
        out = []
        for name in sorted(os.listdir(d)):
            try:
                with open(os.path.join(d, name), "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                continue
        return out

    def messages(self, token):
        """Delivered messages whose bytes contain token."""
        if isinstance(token, str):
            token = token.encode()
        return [m for m in self.all_messages() if token in m]

    def wait_messages(self, token, n=1, timeout=15.0):
        if not wait_until(lambda: len(self.messages(token)) >= n,
                          timeout, step=0.05):
            raise AssertionError(
                "exim delivered %d of %d messages holding %r within %.0fs\n%s"
                % (len(self.messages(token)), n, token, timeout, self.logs()))
        return self.messages(token)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_err", None):
            self._err.close()


def exim_supports_proxy(binary):
    """True if this exim was built with SUPPORT_PROXY (hosts_proxy): its
    -bV lists PROXY under "Support for:".  Debian's exim4-daemon-light is
    built without it, exim4-daemon-heavy with it."""
    try:
        r = subprocess.run([binary, "-bV"], capture_output=True, timeout=20,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    for line in r.stdout.decode(errors="replace").splitlines():
        if line.startswith("Support for:"):
            return "PROXY" in line.split()
    return False


def exim_headers_and_rest(delivered):
    """Split a maildir file (LF line ends) into exim's own Received header
    (the first one) and the rest."""
    m = re.match(rb"\AReceived:[^\n]*\n(?:[ \t][^\n]*\n)*", delivered)
    assert m, "delivered message has no leading Received: %r" % delivered[:300]
    return m.group(0), delivered[m.end():]


def received_headers(header_block):
    """Unfolded 'Received:' header values of a header block."""
    hdrs = re.findall(rb"^Received:[^\n]*(?:\n[ \t][^\n]*)*", header_block,
                      re.M)
    return [re.sub(rb"\r?\n[ \t]", b" ", h).decode("latin-1") for h in hdrs]


# -- operations: whole sessions, /metrics ------------------------------------

def no_sni_context(certs):
    """A client context that verifies the chain against the test CA but
    sends no SNI and accepts any of the test names (to see which
    certificate is the default)."""
    ctx = certs.client_context()
    ctx.check_hostname = False
    return ctx


def peer_names(sock):
    """The dNSName SANs of the peer certificate of a TLS socket."""
    cert = sock.getpeercert()
    return sorted(v for k, v in cert.get("subjectAltName", ()) if k == "DNS")


def send_tls_message(port, ctx, content, sni="mx1.example.org",
                     mail_from="<a@example.org>", rcpt="<b@example.org>",
                     timeout=IO_TIMEOUT, sock=None):
    """One whole session: greeting, EHLO, STARTTLS, EHLO, MAIL, RCPT, DATA
    with content (CRLF lines, dot-stuffed here; a final CRLF is added when
    content does not end with one), QUIT.  Asserts every reply
    and returns a dict with the TLS facts and the replies."""
    c = Client(port, timeout=timeout, sock=sock)
    try:
        greet = c.greeting()
        c.ehlo()
        c.starttls(ctx, sni)
        c.ehlo()
        r = c.cmd("MAIL FROM:" + mail_from)
        assert r.code == 250, "MAIL: %r" % r
        r = c.cmd("RCPT TO:" + rcpt)
        assert r.code == 250, "RCPT: %r" % r
        r = c.cmd("DATA")
        assert r.code == 354, "DATA: %r" % r
        wire = dot_stuff(content)
        c.send(wire + (b".\r\n" if wire.endswith(b"\r\n") or not wire
                       else b"\r\n.\r\n"))
        end = c.read_reply()
        assert end.code == 250, "end of DATA: %r" % end
        q = c.cmd("QUIT")
        assert q.code == 221, "QUIT: %r" % q
        return {"greeting": greet, "end": end,
                "version": c.sock.version(), "cipher": c.sock.cipher()[0],
                "peer_der": c.sock.getpeercert(binary_form=True),
                "client_port": c.sock.getsockname()[1]}
    finally:
        c.close()


_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_VALUE = r"(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN)"
METRIC_LINE_RE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?,?\})? (%s)(?: -?\d+)?$"
                            % (_METRIC_NAME, _LABEL, _LABEL, _VALUE))
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse_metrics(text):
    """Prometheus text format 0.0.4 -> {(name, frozenset(labels)): value}.
    Every line must be a HELP/TYPE comment or a sample; raises
    AssertionError naming the first line that is neither."""
    out = {}
    assert text.endswith("\n"), "exposition does not end with a newline"
    for line in text.split("\n")[:-1]:
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) %s( .*)?$" % _METRIC_NAME,
                            line) or not re.match(r"^# (HELP|TYPE)", line), \
                "malformed comment line: %r" % line
            if line.startswith("# TYPE "):
                assert re.match(r"^# TYPE %s (counter|gauge|histogram|"
                                r"summary|untyped)$" % _METRIC_NAME, line), \
                    "malformed TYPE line: %r" % line
            continue
        m = METRIC_LINE_RE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        labels = frozenset(_LABEL_RE.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        assert key not in out, "duplicate sample: %r" % line
        v = m.group(3)
        out[key] = float(v.replace("Inf", "inf"))
    return out


def scrape(port, path="/metrics", timeout=10.0):
    """(status, content type, body) of GET path on 127.0.0.1:port."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=timeout) as resp:
            return (resp.status, resp.headers.get("Content-Type", ""),
                    resp.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def metric(samples, name, **labels):
    """The value of one sample; AssertionError if it is not there."""
    key = (name, frozenset(labels.items()))
    assert key in samples, "no sample %s%r; have: %s" % (
        name, labels, sorted(n + str(dict(l)) for n, l in samples
                             if n == name))
    return samples[key]


def connect_refused(port, timeout=5):
    """True when a TCP connect to 127.0.0.1:port is refused."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False
