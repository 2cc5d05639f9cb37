"""Certificate lifecycle (SPEC §2, §5; issue 10 item 1): with
watch_certificates (default on) a changed certificate or key file is
reloaded about 2 s after the last change -- rewritten in place, renamed
over, or a Kubernetes `..data` symlink swapped -- each checked by the
certificate a NEW handshake receives; a half-written pair is not loaded
and a later good write is; watch_certificates = false does not reload;
each served certificate is logged at start and reload; a privilege drop
takes the user's supplementary groups, so a root:group 0640 key can be
re-read; `-t` as root warns about a key that `user` could not read."""

import grp
import hashlib
import json
import os
import pwd
import random
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time

import pytest

import helpers

SNI = "mx1.example.org"
# A change is reloaded 2 s after it settles, polled every second: allow a
# loaded machine plenty more.
SWITCH_TIMEOUT = 15.0


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


def colon_fp(der):
    """The fingerprint as the proxy logs it: AB:CD:..."""
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


class Pair:
    """A fresh ECDSA leaf for mx1.example.org signed by the test CA."""

    def __init__(self, certs, tag, san=SNI):
        d = certs.dir
        self.key_path = os.path.join(d, "cw-%s.key" % tag)
        self.pem_path = os.path.join(d, "cw-%s.pem" % tag)
        helpers._openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-out", self.key_path,
                         cwd=d)
        helpers._openssl("req", "-new", "-key", self.key_path, "-subj",
                         "/CN=" + san, "-out", "cw-%s.csr" % tag, cwd=d)
        ext = certs._ext("cw-" + tag, [san])
        helpers._openssl("x509", "-req", "-in", "cw-%s.csr" % tag, "-CA",
                         certs.ca, "-CAkey", "ca.key", "-set_serial",
                         str(random.getrandbits(63)), "-days", "20",
                         "-sha256", "-extfile", ext, "-extensions", "v3",
                         "-out", self.pem_path, cwd=d)
        with open(self.pem_path, "rb") as f:
            self.pem = f.read()
        with open(self.key_path, "rb") as f:
            self.key = f.read()
        self.der = ssl.PEM_cert_to_DER_cert(self.pem.decode())
        self.fp = fingerprint(self.der)


@pytest.fixture(scope="module")
def pairs(certs):
    return {t: Pair(certs, t) for t in ("a", "b", "c")}


def served_fp(port, ctx):
    """The fingerprint of the certificate a new STARTTLS handshake gets."""
    c = helpers.Client(port)
    try:
        c.greeting()
        c.ehlo()
        c.starttls(ctx, SNI)
        return fingerprint(c.sock.getpeercert(binary_form=True))
    finally:
        c.close()


def wait_served(proxy, ctx, want, timeout=SWITCH_TIMEOUT):
    got = [None]

    def check():
        got[0] = served_fp(proxy.port, ctx)
        return got[0] == want
    ok = helpers.wait_until(check, timeout, step=0.25)
    assert ok, "still served %s, not %s, %.0f s after the change:\n%s" % (
        got[0], want, timeout, proxy.stderr()[-4000:])


def write_in_place(path, data):
    """Truncate and rewrite the same inode, as certbot's cp or an editor
    without backup does."""
    with open(path, "r+b") as f:
        f.seek(0)
        f.truncate()
        f.write(data)


def write_rename(path, data):
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def start_watched(proxy_factory, sink, d, top=None):
    entry = {"cert": os.path.join(d, "tls.crt"),
             "key": os.path.join(d, "tls.key")}
    return proxy_factory(sink, certificates=[entry], top=top)


def put_pair(d, pair):
    with open(os.path.join(d, "tls.crt"), "wb") as f:
        f.write(pair.pem)
    with open(os.path.join(d, "tls.key"), "wb") as f:
        f.write(pair.key)
    os.chmod(os.path.join(d, "tls.key"), 0o600)


def test_in_place_rewrite_is_served(sink, proxy_factory, tls_ctx, pairs,
                                    tmp_path):
    d = str(tmp_path / "live")
    os.mkdir(d)
    put_pair(d, pairs["a"])
    proxy = start_watched(proxy_factory, sink, d)
    assert served_fp(proxy.port, tls_ctx) == pairs["a"].fp
    write_in_place(os.path.join(d, "tls.key"), pairs["b"].key)
    write_in_place(os.path.join(d, "tls.crt"), pairs["b"].pem)
    t0 = time.monotonic()
    wait_served(proxy, tls_ctx, pairs["b"].fp)
    # "about 2 s after the last change": not at once.
    assert time.monotonic() - t0 > 1.0
    err = proxy.stderr()
    assert "certificate files changed: reloading" in err, err
    assert "reload done" in err
    assert colon_fp(pairs["b"].der) in err.split("reload done")[0].split(
        "certificate files changed")[-1], err


def test_rename_over_is_served(sink, proxy_factory, tls_ctx, pairs,
                               tmp_path):
    d = str(tmp_path / "live")
    os.mkdir(d)
    put_pair(d, pairs["a"])
    proxy = start_watched(proxy_factory, sink, d)
    assert served_fp(proxy.port, tls_ctx) == pairs["a"].fp
    write_rename(os.path.join(d, "tls.key"), pairs["c"].key)
    write_rename(os.path.join(d, "tls.crt"), pairs["c"].pem)
    wait_served(proxy, tls_ctx, pairs["c"].fp)


def k8s_secret_dir(d, pair, stamp):
    """A Kubernetes Secret volume: d/..<stamp>/tls.{crt,key}, d/..data ->
    ..<stamp>, d/tls.crt -> ..data/tls.crt (what the kubelet's atomic
    writer builds)."""
    real = os.path.join(d, ".." + stamp)
    os.mkdir(real)
    with open(os.path.join(real, "tls.crt"), "wb") as f:
        f.write(pair.pem)
    with open(os.path.join(real, "tls.key"), "wb") as f:
        f.write(pair.key)
    return ".." + stamp


def k8s_swap(d, target):
    """Point ..data at target atomically: a new symlink renamed over."""
    tmp = os.path.join(d, "..data_tmp")
    os.symlink(target, tmp)
    os.rename(tmp, os.path.join(d, "..data"))


def test_kubernetes_data_symlink_swap_is_served(sink, proxy_factory, tls_ctx,
                                                pairs, tmp_path):
    d = str(tmp_path / "secret")
    os.mkdir(d)
    old = k8s_secret_dir(d, pairs["a"], "2024_05_01_10_00_00.1")
    k8s_swap(d, old)
    for name in ("tls.crt", "tls.key"):
        os.symlink(os.path.join("..data", name), os.path.join(d, name))
    proxy = start_watched(proxy_factory, sink, d)
    assert served_fp(proxy.port, tls_ctx) == pairs["a"].fp
    new = k8s_secret_dir(d, pairs["b"], "2024_06_01_10_00_00.2")
    k8s_swap(d, new)
    shutil.rmtree(os.path.join(d, old))
    wait_served(proxy, tls_ctx, pairs["b"].fp)
    # The symlinks themselves never changed.
    assert os.readlink(os.path.join(d, "tls.crt")) == "..data/tls.crt"


def test_half_written_pair_is_not_loaded_then_good_write_is(
        sink, proxy_factory, tls_ctx, pairs, tmp_path):
    d = str(tmp_path / "live")
    os.mkdir(d)
    put_pair(d, pairs["a"])
    proxy = start_watched(proxy_factory, sink, d)
    # Only the certificate arrives: it does not match the old key.
    write_in_place(os.path.join(d, "tls.crt"), pairs["b"].pem)
    assert helpers.wait_until(lambda: "reload failed" in proxy.stderr(),
                              SWITCH_TIMEOUT), proxy.stderr()
    err = proxy.stderr()
    assert "does not match" in err, err
    assert "reload done" not in err, err
    assert served_fp(proxy.port, tls_ctx) == pairs["a"].fp
    # Still the old set a while later (no retry loop on its own).
    time.sleep(3.5)
    assert served_fp(proxy.port, tls_ctx) == pairs["a"].fp
    assert proxy.stderr().count("reload failed") == 1, proxy.stderr()
    # The key follows: now the pair is whole and is served.
    write_in_place(os.path.join(d, "tls.key"), pairs["b"].key)
    wait_served(proxy, tls_ctx, pairs["b"].fp)
    assert proxy.proc.poll() is None


def test_watch_certificates_false_does_not_reload(sink, proxy_factory,
                                                  tls_ctx, pairs, tmp_path):
    d = str(tmp_path / "live")
    os.mkdir(d)
    put_pair(d, pairs["a"])
    proxy = start_watched(proxy_factory, sink, d,
                          top={"watch_certificates": False})
    write_rename(os.path.join(d, "tls.key"), pairs["b"].key)
    write_rename(os.path.join(d, "tls.crt"), pairs["b"].pem)
    time.sleep(5.0)
    assert served_fp(proxy.port, tls_ctx) == pairs["a"].fp
    assert "reloading" not in proxy.stderr(), proxy.stderr()
    # The files were good: SIGHUP loads them.
    proxy.signal(signal.SIGHUP)
    wait_served(proxy, tls_ctx, pairs["b"].fp, timeout=10)


# -- the certificate log lines ---------------------------------------------

def not_after_iso(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout",
                          "-enddate"], capture_output=True, text=True,
                         check=True).stdout.strip()
    t = time.strptime(out.split("=", 1)[1], "%b %d %H:%M:%S %Y GMT")
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", t)


CERT_LINE = re.compile(r"^\S+ info certificate (.*)$", re.M)
KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def text_cert_lines(err):
    out = []
    for m in CERT_LINE.finditer(err):
        out.append({k: v.strip('"') for k, v in KV.findall(m.group(1))})
    return out


def test_start_and_reload_log_each_served_certificate(sink, proxy_factory,
                                                      certs):
    proxy = proxy_factory(sink)
    lines = text_cert_lines(proxy.stderr())
    assert len(lines) == 3, proxy.stderr()
    want = [("mx1", "mx1.example.org"), ("mx2", "mx2.example.org"),
            ("wild", "*.wild.example.org")]
    for line, (name, names) in zip(lines, want):
        assert line["listener"] == "mx"
        assert line["names"] == names
        assert line["key"] == "EC P-256"
        assert line["not_after"] == not_after_iso(certs.cert(name))
        assert line["sha256"] == colon_fp(certs.der(name))
        assert line["path"] == certs.cert(name)
    # And again on every reload.
    proxy.signal(signal.SIGHUP)
    assert helpers.wait_until(lambda: "reload done" in proxy.stderr(), 10)
    assert len(text_cert_lines(proxy.stderr())) == 6


def test_certificate_log_lines_in_json(sink, proxy_factory, certs):
    proxy = proxy_factory(sink, top={"log": {"format": "json"}},
                          certificates=[
                              {"cert": certs.cert("mx1-rsa"),
                               "key": certs.key("mx1-rsa")}])
    recs = [json.loads(l) for l in proxy.stderr().splitlines()
            if l.startswith("{")]
    cert = [r for r in recs if r.get("event") == "certificate"]
    assert len(cert) == 1, proxy.stderr()
    r = cert[0]
    assert r["level"] == "info"
    assert r["listener"] == "mx"
    assert r["names"] == "mx1.example.org"
    assert r["key"] == "RSA 2048"
    assert r["not_after"] == not_after_iso(certs.cert("mx1-rsa"))
    assert r["sha256"] == colon_fp(certs.der("mx1-rsa"))


# -- privileges: supplementary groups, -t readability ----------------------

@pytest.fixture(scope="module")
def ssl_cert_user():
    """A throwaway system group (like Debian's ssl-cert) and a user whose
    supplementary group it is; removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating a user and group needs root")
    for tool in ("groupadd", "useradd", "userdel", "groupdel"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)
    tag = "%05d" % random.randrange(100000)
    group, user = "stpcert" + tag, "stpuser" + tag
    subprocess.run(["groupadd", "-r", group], check=True)
    try:
        subprocess.run(["useradd", "-r", "-M", "-d", "/nonexistent", "-s",
                        "/usr/sbin/nologin", "-G", group, user], check=True)
    except subprocess.CalledProcessError:
        subprocess.run(["groupdel", group])
        raise
    yield user, group
    subprocess.run(["userdel", user])
    subprocess.run(["groupdel", group])


@pytest.fixture
def open_dir():
    """A directory the unprivileged user can traverse (pytest's tmp_path
    lies under a 0700 directory)."""
    d = tempfile.mkdtemp(prefix="stp-cw-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def group_pair(d, pair, group, key_mode=0o640):
    gid = grp.getgrnam(group).gr_gid
    put_pair(d, pair)
    os.chown(os.path.join(d, "tls.key"), 0, gid)
    os.chmod(os.path.join(d, "tls.key"), key_mode)
    os.chown(os.path.join(d, "tls.crt"), 0, gid)
    os.chmod(os.path.join(d, "tls.crt"), 0o644)


def test_privilege_drop_keeps_group_and_rereads_key(
        sink, certs, tls_ctx, pairs, ssl_cert_user, open_dir):
    user, group = ssl_cert_user
    d = open_dir
    group_pair(d, pairs["a"], group)
    port = helpers.free_port()
    cfg = helpers.base_config(certs, port, sink.address)
    cfg["user"] = user
    cfg["listeners"][0]["tls"]["certificates"] = [
        {"cert": os.path.join(d, "tls.crt"), "key": os.path.join(d, "tls.key")}]
    proxy = helpers.Proxy(d, cfg, port)
    os.chmod(proxy.conf_path, 0o644)
    proxy.start()
    try:
        assert served_fp(port, tls_ctx) == pairs["a"].fp
        pw = pwd.getpwnam(user)
        gid = grp.getgrnam(group).gr_gid
        with open("/proc/%d/status" % proxy.proc.pid) as f:
            status = f.read()
        assert re.search(r"^Uid:\s+%d\s" % pw.pw_uid, status, re.M), status
        groups = re.search(r"^Groups:(.*)$", status, re.M).group(1).split()
        assert str(gid) in groups, status
        # Renewal rewrites the files in place (owner and mode stay).
        write_in_place(os.path.join(d, "tls.key"), pairs["b"].key)
        write_in_place(os.path.join(d, "tls.crt"), pairs["b"].pem)
        wait_served(proxy, tls_ctx, pairs["b"].fp)
        assert "Permission denied" not in proxy.stderr(), proxy.stderr()
    finally:
        rc = proxy.stop()
        proxy.check_clean_exit(rc)


def run_t(d, certs, user):
    port = helpers.free_port()
    cfg = helpers.base_config(certs, port, "127.0.0.1:%d" %
                              helpers.closed_port())
    cfg["user"] = user
    cfg["listeners"][0]["tls"]["certificates"] = [
        {"cert": os.path.join(d, "tls.crt"), "key": os.path.join(d, "tls.key")}]
    path = os.path.join(d, "t.conf")
    with open(path, "w") as f:
        f.write(helpers.to_libconfig(cfg))
    return helpers.run_cli(["-t", "-c", path])


def test_t_as_root_warns_about_key_user_cannot_read(certs, pairs,
                                                    ssl_cert_user, open_dir):
    user, group = ssl_cert_user
    d = open_dir
    key = os.path.join(d, "tls.key")
    # root:root 0600: the user cannot read it.
    put_pair(d, pairs["a"])
    r = run_t(d, certs, user)
    assert r.returncode == 0, r.out
    warn = [l for l in r.out.splitlines()
            if l.startswith("warning: ") and key in l]
    assert len(warn) == 1, r.out
    assert "user %s cannot read this key" % user in warn[0], r.out
    assert "Permission denied" in warn[0], r.out
    # root:group 0640: readable through the supplementary group.
    group_pair(d, pairs["a"], group)
    r = run_t(d, certs, user)
    assert r.returncode == 0, r.out
    assert "cannot read" not in r.out, r.out
