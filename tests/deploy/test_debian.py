"""Part 2 of the deployment: the Debian package (debian/, dpkg-buildpackage),
built here, installed into a clean debian:12-slim container and smoke
tested there: the system user in group ssl-cert, the config as a conffile,
`starttls-proxy -t` on the installed config, and the unit's ExecStart line
run by hand as the unit's user with only CAP_NET_BIND_SERVICE (setpriv;
systemd is not PID 1 here, so `systemctl start` cannot be tested), serving
a STARTTLS mail to an exim container on 127.0.0.1:2525 of the same network
namespace - the installed config unchanged, snake-oil certificate and all.
"""

import configparser
import glob
import os
import re
import shlex
import shutil
import subprocess

import pytest

import podman_env as pe

REPO = pe.REPO
MTA = "localhost/stp-test-mta:test"


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    if shutil.which("dpkg-buildpackage") is None or \
            shutil.which("dh") is None:
        pytest.skip("dpkg-dev and debhelper are needed "
                    "(scripts/setup-deps --deploy)")
    top = tmp_path_factory.mktemp("deb")
    src = top / "src"
    files = subprocess.run(["git", "-C", REPO, "ls-files", "-co",
                            "--exclude-standard"], capture_output=True,
                           check=True).stdout.decode().split("\n")
    for f in files:
        if not f or f.startswith("build") or not os.path.isfile(
                os.path.join(REPO, f)):
            continue
        os.makedirs(os.path.dirname(str(src / f)), exist_ok=True)
        shutil.copy2(os.path.join(REPO, f), str(src / f))
    r = subprocess.run(["dpkg-buildpackage", "-b", "-us", "-uc", "-j2"],
                       cwd=str(src), capture_output=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()[-6000:]
    debs = glob.glob(str(top / "starttls-proxy_*.deb"))
    assert len(debs) == 1, os.listdir(str(top))
    return debs[0]


def test_package_contents(deb):
    r = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True,
                       check=True)
    listing = r.stdout.decode()
    for path in ("./usr/sbin/starttls-proxy",
                 "./etc/starttls-proxy/starttls-proxy.conf",
                 "./lib/systemd/system/starttls-proxy.service",
                 "./usr/share/man/man8/starttls-proxy.8.gz",
                 "./usr/share/man/man5/starttls-proxy.conf.5.gz"):
        assert path in listing, (path, listing)
    info = subprocess.run(["dpkg-deb", "-I", deb], capture_output=True,
                          check=True).stdout.decode()
    assert re.search(r"Depends:.*\bssl-cert\b", info), info
    assert re.search(r"Depends:.*\blibuv1\b", info), info
    ctl = subprocess.run(["dpkg-deb", "-f", deb, "Package"],
                         capture_output=True, check=True).stdout
    assert ctl.strip() == b"starttls-proxy"


@pytest.fixture(scope="module")
def installed_image(deb, tmp_path_factory):
    """debian:12-slim with the package installed (apt from the host's
    Debian mirror), committed as an image for the tests below."""
    pe.check_usable()
    p = pe.Podman()
    p.images("mta")
    d = os.path.dirname(deb)
    n = p.name("pkg-install")
    r = p.run("run", "--name", n, "--network", "host",
              "-v", "%s:/pkg:ro" % d, "docker.io/library/debian:12-slim",
              "sh", "-c",
              "apt-get update -q >/dev/null && "
              "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
              "--no-install-recommends /pkg/%s" % os.path.basename(deb),
              check=False, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()[-6000:]
    image = "localhost/stp-test-pkg:test"
    p.run("commit", "-q", n, image)
    p.run("rm", "-f", n)
    yield p, image
    p.cleanup()
    p.run("rmi", "-f", image, check=False)


def sh(p, image, script, net="none", check=True):
    n = p.name("pkg")
    r = p.run("run", "--rm", "--name", n, "--network", net, image,
              "sh", "-c", script, check=False)
    if check:
        assert r.returncode == 0, (r.stdout + r.stderr).decode()
    return (r.stdout + r.stderr).decode(errors="replace")


def test_user_conffile_and_config_check(installed_image):
    p, image = installed_image
    out = sh(p, image, "id starttls-proxy; "
             "getent passwd starttls-proxy; "
             "dpkg-query -W -f='${Conffiles}\\n' starttls-proxy; "
             "starttls-proxy -t -c /etc/starttls-proxy/starttls-proxy.conf")
    assert re.search(r"groups=.*\bssl-cert\b", out), out
    assert ":/nonexistent:/usr/sbin/nologin" in out, out
    assert "/etc/starttls-proxy/starttls-proxy.conf " in out, out
    assert "configuration OK" in out, out


def unit_exec_start(p, image):
    text = sh(p, image, "cat /lib/systemd/system/starttls-proxy.service")
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(text[text.index("[Unit]"):])
    s = cp["Service"]
    return s["User"], s["AmbientCapabilities"], shlex.split(s["ExecStart"])


def setpriv(user, caps):
    """The unit's User= and AmbientCapabilities= by hand (util-linux)."""
    argv = ["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups",
            "--no-new-privs", "--bounding-set=-all"]
    if caps:
        c = ",".join("+" + x.lower().replace("cap_", "") for x in caps)
        argv[-1] = "--bounding-set=-all," + c
        argv += ["--inh-caps=" + c, "--ambient-caps=" + c]
    return argv


@pytest.mark.timeout(300)
def test_exec_start_as_the_unit_user_serves_mail(installed_image, tmp_path):
    p, image = installed_image
    user, caps, argv = unit_exec_start(p, image)
    assert user == "starttls-proxy" and caps == "CAP_NET_BIND_SERVICE"
    mail = pe.mail_dir(tmp_path)
    mta = p.start("mta", MTA, "--network", "none",
                  "-v", "%s:/var/mail/out" % mail)
    assert p.wait_listening(mta, 2525), p.logs(mta)

    # Without the capability: cannot bind port 25.
    out = sh(p, image, " ".join(setpriv(user, []) + argv),
             net="container:" + mta, check=False)
    assert "Permission denied" in out, out

    proxy = p.start("pkg-proxy", image, "--network", "container:" + mta,
                    "--hostname", "mx.example.org",
                    cmd=setpriv(user, [caps]) + argv)
    assert p.wait_listening(mta, 25), p.logs(proxy)
    with open("/proc/%d/status" % p.pid(proxy)) as f:
        status = f.read()
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    assert uid != "0"
    assert int(re.search(r"^CapEff:\s+(\w+)", status, re.M).group(1),
               16) == 1 << 10

    token = "debpkg-%d" % os.getpid()
    rc, out = pe.swaks(p, mta, token)
    assert rc == 0, out + p.logs(proxy)
    assert "TLS started" in out, out
    got = pe.wait_message(mail, token)
    assert len(got) == 1, got
    assert re.search(r"by mx\.example\.org \(starttls-proxy", got[0]), got[0]

    p.run("stop", proxy, timeout=60)
    assert p.inspect(proxy)["State"]["ExitCode"] == 0, p.logs(proxy)
