"""Part 1 of the deployment: `cmake --install` layout, the man pages and
the systemd unit.

systemd is not PID 1 on the machines this runs on, so the unit is never
started here; what is checked instead: `systemd-analyze verify` (syntax,
the executables and the man pages it names exist), `systemd-analyze
security --offline` (exposure at most STP_UNIT_MAX_EXPOSURE), and the
settings the issue asks for.  The notify protocol is tested black-box in
tests/integration/test_notify.py; the unit's ExecStart line is run by hand
as the unit's user with only CAP_NET_BIND_SERVICE in test_debian.py.
"""

import configparser
import os
import shutil
import subprocess

import pytest

MAX_EXPOSURE = float(os.environ.get("STP_UNIT_MAX_EXPOSURE", "2.0"))


@pytest.fixture(scope="module")
def destdir(build_dir, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("destdir"))
    env = dict(os.environ, DESTDIR=d)
    subprocess.run(["cmake", "--install", build_dir], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return d


def installed(destdir):
    out = []
    for root, _, files in os.walk(destdir):
        out += [os.path.relpath(os.path.join(root, f), destdir)
                for f in files]
    return sorted(out)


def unit_path(destdir):
    for cand in ("lib/systemd/system", "usr/lib/systemd/system"):
        p = os.path.join(destdir, cand, "starttls-proxy.service")
        if os.path.exists(p):
            return p
    raise AssertionError("no unit in %r" % installed(destdir))


def read_unit(path):
    cp = configparser.ConfigParser(strict=False, interpolation=None,
                                   delimiters=("=",))
    cp.optionxform = str
    # Keys that repeat (SystemCallFilter) keep the last; good enough here.
    with open(path) as f:
        cp.read_string(f.read())
    return cp


def test_layout(destdir):
    files = installed(destdir)
    assert "usr/sbin/starttls-proxy" in files, files
    assert "etc/starttls-proxy/starttls-proxy.conf" in files, files
    assert "usr/share/man/man8/starttls-proxy.8" in files, files
    assert "usr/share/man/man5/starttls-proxy.conf.5" in files, files
    unit_path(destdir)


def test_installed_config_is_the_reference_for_port_25(destdir):
    with open(os.path.join(destdir,
                           "etc/starttls-proxy/starttls-proxy.conf")) as f:
        text = f.read()
    assert 'listen = "0.0.0.0:25";' in text
    assert 'address = "127.0.0.1:2525";' in text
    assert 'user = "starttls-proxy";' in text
    assert "/etc/ssl/certs/ssl-cert-snakeoil.pem" in text
    assert "../certs/local" not in text


def test_existing_config_is_kept(build_dir, destdir):
    conf = os.path.join(destdir, "etc/starttls-proxy/starttls-proxy.conf")
    with open(conf, "a") as f:
        f.write("# the operator's edit\n")
    subprocess.run(["cmake", "--install", build_dir],
                   env=dict(os.environ, DESTDIR=destdir), check=True,
                   stdout=subprocess.DEVNULL)
    with open(conf) as f:
        assert f.read().endswith("# the operator's edit\n")


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db missing")
@pytest.mark.parametrize("page", ["man8/starttls-proxy.8",
                                  "man5/starttls-proxy.conf.5"])
def test_man_pages_render_without_warnings(destdir, page):
    path = os.path.join(destdir, "usr/share/man", page)
    r = subprocess.run(["man", "--warnings", "-l", path],
                       capture_output=True, timeout=60,
                       env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().strip() == "", r.stderr.decode()
    assert b"starttls-proxy" in r.stdout


def test_conf_page_names_every_key_and_reply_code(destdir):
    """Every key of SPEC §3 and every reply code of §4 is in the page."""
    path = os.path.join(destdir, "usr/share/man/man5/starttls-proxy.conf.5")
    r = subprocess.run(["man", "-l", path], capture_output=True, timeout=60,
                       env=dict(os.environ, MANWIDTH="200"))
    text = r.stdout.decode()
    keys = """workers user shutdown_timeout log level format stats listen
        watch_certificates hostname listeners name proxy_protocol tls_mode banner
        backend address xclient connect_timeout tls certificates cert key
        names min_version ciphers ciphersuites client_ca verify_client
        handshake_timeout policy require_tls before_tls_code reject_code
        min_cipher_bits require_client_cert tls_required_domains
        hide_auth_before_tls bare_newline received_header limits
        max_connections max_connections_per_ip idle_timeout data_timeout
        max_line""".split()
    missing = [k for k in keys if k not in text]
    assert not missing, missing
    for code in ("421 4.3.0", "421 4.3.2", "421 4.4.2", "421 4.7.0",
                 "454 4.7.0", "500 5.5.2", "501 5.5.4", "503 5.5.1",
                 "530 5.7.0", "554 5.5.2", "554 5.7.0", "220 2.0.0",
                 "221 2.0.0"):
        assert code in text, code


def test_unit_settings(destdir):
    s = read_unit(unit_path(destdir))["Service"]
    assert s["Type"] == "notify"
    assert s["ExecStart"] == ("/usr/sbin/starttls-proxy -c "
                              "/etc/starttls-proxy/starttls-proxy.conf")
    assert "HUP" in s["ExecReload"]
    assert s["User"] == "starttls-proxy"
    assert s["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert s["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    for k in ("NoNewPrivileges", "PrivateTmp", "ProtectHome",
              "PrivateDevices"):
        assert s[k] == "yes", k
    assert s["ProtectSystem"] == "strict"
    # 2 descriptors a session, 10000 sessions (max_connections' default)
    assert int(s["LimitNOFILE"]) >= 2 * 10000 + 100
    # Longer than shutdown_timeout's default (30 s): stop is graceful.
    assert int(s["TimeoutStopSec"]) > 30


def _unit_for_host(destdir, tmp_path):
    """The unit with its paths pointing into destdir, so that verify finds
    the binary it names."""
    with open(unit_path(destdir)) as f:
        text = f.read()
    text = text.replace("/usr/sbin/", os.path.join(destdir, "usr/sbin/"))
    p = tmp_path / "starttls-proxy.service"
    p.write_text(text)
    return str(p)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze missing (package systemd)")
def test_systemd_analyze_verify(destdir, tmp_path):
    unit = _unit_for_host(destdir, tmp_path)
    env = dict(os.environ, MANPATH=os.path.join(destdir, "usr/share/man"),
               SYSTEMD_LOG_LEVEL="notice")
    r = subprocess.run(["systemd-analyze", "verify", unit],
                       capture_output=True, timeout=120, env=env)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 0, out
    assert "starttls-proxy.service" not in out, out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze missing (package systemd)")
def test_systemd_analyze_security(destdir, tmp_path):
    unit = _unit_for_host(destdir, tmp_path)
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                        "--threshold=%d" % int(MAX_EXPOSURE * 10), unit],
                       capture_output=True, timeout=120)
    out = (r.stdout + r.stderr).decode()
    assert "Overall exposure level" in out, out
    level = float(out.split("Overall exposure level for")[1].split(":")[1]
                  .split()[0])
    assert level <= MAX_EXPOSURE, out
