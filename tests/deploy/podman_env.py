"""podman and buildah for the deployment tests: the private configuration
of containers.sh, the images of `images`, containers that are always
removed, and clients run inside a container's network namespace with
nsenter (the containers have no network but their loopback)."""

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _env():
    r = subprocess.run(["bash", "-c", ". %s/containers.sh && env -0" % HERE],
                       capture_output=True, check=True)
    out = {}
    for item in r.stdout.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            out[k.decode()] = v.decode()
    return out


# Run with python3 inside a container's network namespace: open an SMTP
# session on port 25, say EHLO, print READY, then print (repr) everything
# that arrives until the server closes -- the graceful-stop tests look
# for 421 4.3.2 there.
OPEN_SESSION = r"""
import socket
s = socket.create_connection(("127.0.0.1", 25), timeout=90)
f = s.makefile("rb")
f.readline()
s.sendall(b"EHLO client.example.net\r\n")
while f.readline()[3:4] == b"-":
    pass
print("READY", flush=True)
rest = b""
while True:
    try:
        chunk = s.recv(4096)
    except OSError:
        break
    if not chunk:
        break
    rest += chunk
print(repr(rest), flush=True)
"""


# The reason given when the tests run inside a chroot, the one skip that
# STP_DEPLOY_STRICT allows (tests/deploy/conftest.py).
CHROOT_SKIP = "inside a chroot"


def in_chroot():
    """True inside a chroot (such as ../shared/tools/clean-root's): "/" is
    not the root of PID 1's mount namespace.  There buildah cannot apply an
    image layer (it remounts "/", which is not a mount point) and podman
    cannot set up a container's root, so the container tests cannot run;
    on a real machine, CI's included, they do."""
    # In a chroot whose directory is not a mount point, no mount is "/"
    # as seen from inside (mount points are shown relative to our root).
    # (/proc/1/root would tell directly, but reading it needs ptrace
    # rights that sandboxes often withhold.)
    try:
        with open("/proc/self/mountinfo") as f:
            return not any(line.split()[4] == "/" for line in f
                           if len(line.split()) > 4)
    except OSError:
        return False


def check_usable():
    """Skip unless this machine can run the container tests."""
    if in_chroot():
        pytest.skip("%s: buildah/podman cannot remount / here; the "
                    "container tests run on a real machine" % CHROOT_SKIP)
    if os.geteuid() != 0:
        pytest.skip("the container tests run rootful podman: need root")
    for tool in ("podman", "buildah", "runc", "debootstrap", "nsenter",
                 "swaks"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed (scripts/setup-deps --deploy)"
                        % tool)


class Podman:
    def __init__(self):
        self.env = _env()
        self.containers = []

    def run(self, *args, check=True, timeout=300, input=None):
        r = subprocess.run(["podman"] + list(args), env=self.env,
                           capture_output=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError("podman %s: exit %d\n%s%s" % (
                " ".join(args), r.returncode, r.stdout.decode(),
                r.stderr.decode()))
        return r

    def images(self, what="all"):
        r = subprocess.run([os.path.join(HERE, "images"), what],
                           env=self.env, capture_output=True, timeout=1800)
        assert r.returncode == 0, "tests/deploy/images %s failed:\n%s" % (
            what, (r.stdout + r.stderr).decode()[-6000:])

    def name(self, prefix):
        n = "stp-%s-%s" % (prefix, uuid.uuid4().hex[:8])
        self.containers.append(n)
        return n

    def start(self, prefix, image, *args, cmd=()):
        """podman run -d; the container's name."""
        n = self.name(prefix)
        self.run("run", "-d", "--name", n, *args, image, *cmd)
        return n

    def pid(self, name):
        return int(self.run("inspect", "-f", "{{.State.Pid}}", name)
                   .stdout.decode())

    def inspect(self, name):
        return json.loads(self.run("inspect", name).stdout.decode())[0]

    def logs(self, name):
        r = self.run("logs", name, check=False)
        return (r.stdout + r.stderr).decode(errors="replace")

    def netns(self, name):
        return "/proc/%d/ns/net" % self.pid(name)

    def in_netns(self, name, argv, timeout=60, **kw):
        """Run argv on the host inside the container's network namespace."""
        return subprocess.run(["nsenter", "--net=" + self.netns(name), "--"]
                              + list(argv), capture_output=True,
                              timeout=timeout, **kw)

    def wait_listening(self, name, port, timeout=30):
        """Until something listens on port in the container's namespace."""
        want = ":%04X" % port
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid = self.pid(name)
                with open("/proc/%d/net/tcp" % pid) as f:
                    for line in f.read().splitlines()[1:]:
                        fl = line.split()
                        if fl[1].endswith(want) and fl[3] == "0A":
                            return True
            except (OSError, ValueError, AssertionError):
                pass
            time.sleep(0.2)
        return False

    def cleanup(self):
        for n in reversed(self.containers):
            self.run("rm", "-f", "-t", "0", n, check=False, timeout=60)
        self.containers = []


def swaks(podman, netns_of, token, port=25, tls=True, extra=()):
    argv = ["swaks", "--server", "127.0.0.1", "--port", str(port),
            "--helo", "client.example.net", "--from", "a@example.net",
            "--to", "b@example.org", "--header", "Subject: " + token,
            "--body", "body " + token, "--timeout", "30"]
    if tls:
        argv.append("--tls")
    r = podman.in_netns(netns_of, argv + list(extra), timeout=90)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def maildir_messages(outdir, token):
    d = os.path.join(outdir, "maildir", "new")
    out = []
    if os.path.isdir(d):
        for f in sorted(os.listdir(d)):
            with open(os.path.join(d, f), "rb") as fh:
                data = fh.read()
            if token.encode() in data:
                out.append(data.decode(errors="replace"))
    return out


def wait_message(outdir, token, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = maildir_messages(outdir, token)
        if got:
            return got
        time.sleep(0.2)
    return maildir_messages(outdir, token)


def mail_dir(tmp_path):
    """A directory the MTA container's exim (Debian-exim) can write."""
    d = tmp_path / "mail"
    d.mkdir()
    os.chmod(str(d), 0o777)
    return str(d)


def proxy_certs(certs, tmp_path, uid=10025):
    """The image's certificate directory: mx.pem + mx.key (mx1.example.org),
    owned by the image's user, key 0600."""
    d = tmp_path / "proxy-certs"
    d.mkdir()
    shutil.copy(certs.cert("mx1"), str(d / "mx.pem"))
    shutil.copy(certs.key("mx1"), str(d / "mx.key"))
    for f in ("mx.pem", "mx.key"):
        os.chown(str(d / f), uid, uid)
    os.chmod(str(d / "mx.key"), 0o600)
    os.chmod(str(d / "mx.pem"), 0o644)
    os.chmod(str(d), 0o755)
    return str(d)
