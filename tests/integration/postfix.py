"""A private Postfix instance as a real backend for the integration tests.

Debian's postfix package conflicts with exim4 (both are the
mail-transport-agent), so it is never installed: scripts/get-postfix
unpacks the .deb into a directory of its own (`postfix_root()`), and this
module runs that Postfix's master daemon in the foreground with a config
directory, queue, data directory and log file under one temporary
directory.  Nothing is read from or written to /etc/postfix or
/var/spool/postfix.

The binaries look for libpostfix-*.so in /usr/lib/postfix (their
RUNPATH); LD_LIBRARY_PATH, which the loader tries first, points at the
unpacked copy instead.  Postfix scrubs its daemons' environment, so the
same value is also set through import_environment.

Postfix needs a `postfix` user (mail_owner) and a `postdrop` group
(setgid_group) to exist; ensure_accounts() creates them as system
accounts when they are missing, as Debian's postinst would (the tests run
as root).  They own nothing outside the temporary directory.

One instance listens on two ports:

  port        smtpd with smtpd_authorized_xclient_hosts = 127.0.0.1 and
              smtpd_forbid_unauth_pipelining = yes (Postfix 3.9's default;
              3.7.10+ has it): XCLIENT from the proxy, never pipelined.
  proxy_port  the same smtpd with smtpd_upstream_proxy_protocol = haproxy:
              it wants a PROXY v1 or v2 header first.

Only the proxy's own address (127.0.0.1) may send XCLIENT; the tests'
clients connect from 127.0.0.2, so a second XCLIENT after the first (which
Postfix checks against the new, client's address) is refused with 550, as
it is in production.  Every message is accepted for a few test domains and
delivered to the discard transport; the log (postlogd, maillog_file) shows
the queue id, `client=...[address]`, the message-id and `status=sent`.
"""

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile

import helpers

REPO = helpers.REPO
GET_POSTFIX = os.path.join(REPO, "scripts", "get-postfix")


def postfix_root():
    """Where scripts/get-postfix unpacks the package (same rule as it)."""
    env = os.environ.get("STP_POSTFIX_ROOT")
    if env:
        return env
    cache = os.environ.get("XDG_CACHE_HOME") or "/var/cache"
    return os.path.join(cache, "starttls-proxy-test", "postfix", "root")


def unpacked(root):
    return os.path.exists(os.path.join(root, ".stp-complete"))


def ensure_unpacked():
    """The unpacked package's directory, running scripts/get-postfix when
    it is not there yet.  Returns (root, None) or (None, why not)."""
    root = postfix_root()
    if unpacked(root):
        return root, None
    try:
        r = subprocess.run(["bash", GET_POSTFIX], capture_output=True,
                           timeout=600, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, "scripts/get-postfix failed: %s" % e
    if r.returncode != 0 or not unpacked(root):
        return None, ("scripts/get-postfix could not unpack postfix into %s:"
                      "\n%s" % (root, (r.stdout + r.stderr).decode(
                          errors="replace")[-2000:]))
    return root, None


def ensure_accounts():
    """Create the postfix user and postdrop group if missing."""
    try:
        grp.getgrnam("postdrop")
    except KeyError:
        subprocess.run(["groupadd", "--system", "postdrop"], check=True,
                       capture_output=True, timeout=30)
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group",
                        "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin",
                        "--comment", "Postfix (starttls-proxy tests)",
                        "postfix"], check=True, capture_output=True,
                       timeout=30)


MAIN_CF = """\
# private Postfix for the starttls-proxy integration tests
compatibility_level = 3.6
mail_owner = postfix
setgid_group = postdrop
queue_directory = {d}/queue
data_directory = {d}/data
meta_directory = {d}/etc
daemon_directory = {root}/usr/lib/postfix/sbin
command_directory = {root}/usr/sbin
shlib_directory = {root}/usr/lib/postfix
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C
  POSTLOG_SERVICE POSTLOG_HOSTNAME LD_LIBRARY_PATH={root}/usr/lib/postfix
maillog_file = {d}/log/maillog
maillog_file_prefixes = {d}/log
syslog_name = postfix-test
myhostname = postfix.test
mydomain = postfix.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = example.org, example.com, example.net
relay_transport = discard:postfix test backend
default_transport = discard:postfix test backend
local_transport = discard:postfix test backend
alias_maps =
alias_database =
biff = no
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_banner = $myhostname ESMTP postfix-test
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_authorized_xclient_hosts = 127.0.0.1
smtpd_forbid_unauth_pipelining = yes
smtpd_tls_security_level = none
smtpd_timeout = 60s
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
anvil_rate_time_unit = 60s
"""

MASTER_CF = """\
# service type private unpriv chroot wakeup maxproc command
127.0.0.1:{port} inet n - n - - smtpd
127.0.0.1:{proxy_port} inet n - n - - smtpd
  -o smtpd_upstream_proxy_protocol=haproxy
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

# Queue directories: (name, owner, group, mode), as Postfix's
# postfix-files creates them.
QUEUE_DIRS = [
    ("active", "postfix", None, 0o700), ("bounce", "postfix", None, 0o700),
    ("corrupt", "postfix", None, 0o700), ("defer", "postfix", None, 0o700),
    ("deferred", "postfix", None, 0o700), ("flush", "postfix", None, 0o700),
    ("hold", "postfix", None, 0o700), ("incoming", "postfix", None, 0o700),
    ("private", "postfix", None, 0o700), ("saved", "postfix", None, 0o700),
    ("trace", "postfix", None, 0o700),
    ("maildrop", "postfix", "postdrop", 0o730),
    ("public", "postfix", "postdrop", 0o710),
    ("pid", "root", "root", 0o755),
]


class Postfix:
    """A private Postfix master with smtpd on 127.0.0.1:port (XCLIENT) and
    127.0.0.1:proxy_port (PROXY protocol).  start(), stop(), log()."""

    def __init__(self, root):
        self.root = root
        self.dir = tempfile.mkdtemp(prefix="stp-postfix-")
        os.chmod(self.dir, 0o755)
        self.etc = os.path.join(self.dir, "etc")
        self.port = helpers.free_port()
        self.proxy_port = helpers.free_port()
        while self.proxy_port == self.port:
            self.proxy_port = helpers.free_port()
        self.logfile = os.path.join(self.dir, "log", "maillog")
        self.stderr_path = os.path.join(self.dir, "master.stderr")
        self.libdir = os.path.join(root, "usr", "lib", "postfix")
        self.master = os.path.join(self.libdir, "sbin", "master")
        self.proc = None
        self._write_tree()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def proxy_address(self):
        return "127.0.0.1:%d" % self.proxy_port

    def _write_tree(self):
        for sub in ("etc", "queue", "log"):
            os.mkdir(os.path.join(self.dir, sub), 0o755)
        data = os.path.join(self.dir, "data")
        os.mkdir(data, 0o700)
        shutil.chown(data, "postfix", "postfix")
        q = os.path.join(self.dir, "queue")
        for name, owner, group, mode in QUEUE_DIRS:
            p = os.path.join(q, name)
            os.mkdir(p)
            shutil.chown(p, owner, group or "root")
            os.chmod(p, mode)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(d=self.dir, root=self.root))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port,
                                     proxy_port=self.proxy_port))
        # No dynamically loaded map types: an empty list keeps Postfix
        # from looking for /etc/postfix/dynamicmaps.cf.
        open(os.path.join(self.etc, "dynamicmaps.cf"), "w").close()

    def env(self):
        e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
             "LD_LIBRARY_PATH": self.libdir,
             "MAIL_CONFIG": self.etc,
             "LANG": "C"}
        return e

    def postconf(self, *args):
        r = subprocess.run([os.path.join(self.root, "usr", "sbin",
                                         "postconf"), "-c", self.etc]
                           + list(args), capture_output=True, timeout=30,
                           env=self.env(), stdin=subprocess.DEVNULL)
        return (r.stdout + r.stderr).decode(errors="replace")

    def start(self, wait=20.0):
        self._err = open(self.stderr_path, "wb")
        # -s: stay in the foreground and report startup errors on stderr
        # (what `postfix start-fg` runs).  A new session, so that stop()
        # can find every process of this instance by its group.
        self.proc = subprocess.Popen([self.master, "-s", "-c", self.etc],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=self._err,
                                     env=self.env(), cwd=self.dir,
                                     start_new_session=True)
        ok = helpers.wait_until(
            lambda: self.proc.poll() is not None or (
                helpers.port_listening(self.port)
                and helpers.port_listening(self.proxy_port)), wait)
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("postfix did not come up on %d/%d:\n%s" % (
                self.port, self.proxy_port, self.logs()))
        return self

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def logs(self):
        out = []
        for name in ("master.stderr", "log/maillog"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out.append("== %s ==\n%s" % (
                        name, f.read().decode(errors="replace")[-6000:]))
        return "\n".join(out) or "(no postfix output)"

    def queue_lines(self, qid):
        """Log lines of one queue id."""
        pat = re.compile(r"\b%s: " % re.escape(qid))
        return [l for l in self.log().splitlines() if pat.search(l)]

    def wait_log(self, pred, timeout=15.0, what="log line"):
        if not helpers.wait_until(lambda: pred(self.log()), timeout,
                                  step=0.05):
            raise AssertionError("postfix logged no %s within %.0fs\n%s"
                                 % (what, timeout, self.logs()))

    def processes(self):
        """pids still in this instance's process group."""
        if self.proc is None:
            return []
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.getpgid(int(name)) == self.proc.pid:
                    out.append(int(name))
            except OSError:
                continue
        return out

    def stop(self):
        """SIGTERM to master (it stops its children), wait; anything of
        this instance still alive after 10 s is killed and reported."""
        if self.proc is None:
            return []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        helpers.wait_until(lambda: not self.processes(), 10.0, step=0.05)
        left = self.processes()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if getattr(self, "_err", None):
            self._err.close()
        return left
