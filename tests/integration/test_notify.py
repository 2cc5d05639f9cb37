"""The systemd readiness protocol (SPEC §2) and PID 1 duties, black-box.

NOTIFY_SOCKET points at a datagram socket this test owns, as systemd's
does for a Type=notify unit; the proxy must send READY=1 once it listens,
RELOADING=1 ... READY=1 around a reload (also a failed one) and
STOPPING=1 when it stops.  The '@' form (an abstract socket) is what
systemd uses for some managers and for `systemd-run --user`.

As PID 1 of a PID namespace (a container's entrypoint) the proxy must reap
the orphans the kernel hands it; the test makes one with `nsenter` into a
namespace made by `unshare --pid --fork`.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

import helpers


class NotifySocket:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path.startswith("@"):
            self.sock.bind("\0" + path[1:])
        else:
            self.sock.bind(path)
        self.path = path
        self.sock.settimeout(0.2)

    def messages(self, timeout):
        """Every datagram until timeout passes without one, as dicts."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            out.append(dict(line.split("=", 1) for line in
                            data.decode().split("\n") if "=" in line))
        return out

    def wait_for(self, key, timeout=10.0):
        """Datagrams up to and including the first one holding key."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            msg = dict(line.split("=", 1) for line in
                       data.decode().split("\n") if "=" in line)
            got.append(msg)
            if key in msg:
                return got
        raise AssertionError("no %s within %.0fs; got %r" % (key, timeout,
                                                             got))

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_ready_reloading_stopping(proxy_factory, sink, tmp_path, kind):
    path = (str(tmp_path / "notify.sock") if kind == "path"
            else "@stp-notify-test-%d" % os.getpid())
    ns = NotifySocket(path)
    try:
        p = proxy_factory(sink, env={"NOTIFY_SOCKET": path}, start=False)
        p.start()
        got = ns.wait_for("READY")
        assert got[-1]["READY"] == "1"
        # READY=1 comes only once the port is listening.
        assert helpers.port_listening(p.port)
        assert not any("STOPPING" in m or "RELOADING" in m for m in got)

        p.signal(signal.SIGHUP)
        got = ns.wait_for("READY")
        keys = [k for m in got for k in m if k in ("RELOADING", "READY")]
        assert keys == ["RELOADING", "READY"], got
        reloading = next(m for m in got if "RELOADING" in m)
        usec = int(reloading["MONOTONIC_USEC"])
        assert abs(usec / 1e6 - time.clock_gettime(
            time.CLOCK_MONOTONIC)) < 60

        # A reload that fails keeps the old config: still READY after it.
        with open(p.conf_path, "a") as f:
            f.write("\nthis is not libconfig\n")
        p.signal(signal.SIGHUP)
        got = ns.wait_for("READY")
        keys = [k for m in got for k in m if k in ("RELOADING", "READY")]
        assert keys == ["RELOADING", "READY"], got
        assert "reload failed" in p.stderr()

        p.signal(signal.SIGTERM)
        got = ns.wait_for("STOPPING")
        assert got[-1]["STOPPING"] == "1"
        assert p.proc.wait(15) == 0
    finally:
        ns.close()


def test_no_listener_no_notification(proxy_factory, sink, tmp_path):
    """A proxy that cannot start must not say READY=1."""
    path = str(tmp_path / "notify.sock")
    ns = NotifySocket(path)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        p = proxy_factory(sink, env={"NOTIFY_SOCKET": path}, start=False,
                          listener={"listen": "127.0.0.1:%d" %
                                    blocker.getsockname()[1]})
        p.rewrite(p.config)
        p.start_failed = True
        proc = subprocess.Popen([helpers.stp_bin(), "-c", p.conf_path],
                                env=p.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 1, err
        assert not any("READY" in m for m in ns.messages(0.5))
    finally:
        blocker.close()
        ns.close()


def test_bad_notify_socket_is_harmless(proxy_factory, sink, connect,
                                       tmp_path):
    """Nobody listening on NOTIFY_SOCKET: one warning, mail still flows."""
    p = proxy_factory(sink, env={"NOTIFY_SOCKET":
                                 str(tmp_path / "nobody.sock")})
    c = connect(p)
    assert c.greeting_reply.code == 220
    assert c.cmd("QUIT").code == 221
    p.signal(signal.SIGHUP)
    assert helpers.wait_until(lambda: "reload done" in p.stderr(), 10)
    assert p.stderr().count("NOTIFY_SOCKET") == 1, p.stderr()


def _children(pid):
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None
                    or shutil.which("nsenter") is None,
                    reason="needs root, unshare and nsenter")
def test_pid1_reaps_orphans(proxy_factory, sink, tmp_path):
    p = proxy_factory(sink, start=False)
    err = open(str(tmp_path / "pid1.stderr"), "wb")
    # No --mount-proc: it needs a private mount namespace, which cannot be
    # made inside a chroot (the clean-root rehearsal); PID 1 and orphan
    # re-parenting need only the PID namespace, and /proc is read from
    # outside.
    outer = subprocess.Popen(["unshare", "--pid", "--fork",
                              helpers.stp_bin(), "-c", p.conf_path],
                             stdin=subprocess.DEVNULL, stdout=err,
                             stderr=err)
    try:
        assert helpers.wait_until(lambda: helpers.port_listening(p.port), 15)
        kids = _children(outer.pid)
        assert len(kids) == 1, kids
        proxy_pid = kids[0]
        # An orphan: the shell exits at once, its sleep is re-parented
        # to PID 1 of the namespace (the proxy) and exits a little later.
        subprocess.run(["nsenter", "-t", str(proxy_pid), "-p", "--",
                        "sh", "-c", "sleep 0.5 & sleep 0.5 & exit 0"],
                       check=True, timeout=15)
        time.sleep(0.2)
        adopted = _children(proxy_pid)
        assert len(adopted) == 2, "orphans not re-parented: %r" % adopted
        assert helpers.wait_until(
            lambda: all(_state(c) in (None,) for c in adopted), 10), (
            "orphans of PID 1 left as zombies: %r" %
            [(c, _state(c)) for c in adopted])
        # Still serving, and stops cleanly as PID 1.
        assert helpers.port_listening(p.port)
        os.kill(proxy_pid, signal.SIGTERM)
        assert outer.wait(15) == 0
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.wait(5)
        err.close()
