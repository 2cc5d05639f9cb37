"""Part 5 (compose): docker/compose.yaml run with podman, a mail sent
through it.

Debian 12's podman-compose (1.0.3) cannot run this file: it turns
`network_mode: service:mta` into an invalid `--network service:mta` and adds
a bridge network besides.  So the test reads the compose file itself and
starts each service with the `podman run` flags compose would use for the
keys the file has (image, hostname, network_mode, volumes, read_only,
cap_drop, cap_add, stop_grace_period, restart; ${VAR:-default}
substitution).  An unknown key fails the test, so the file cannot grow
keys that go untested.

Substituted, because these machines have no bridge network and must not
publish port 25 on the host: the MTA service runs with `network_mode: none`
(the proxy still joins its namespace through `service:mta`) instead of
publishing `ports:`, and gains a maildir volume; the images are the test
images."""

import os
import re

import pytest

import podman_env as pe

yaml = pytest.importorskip("yaml")

KNOWN = {"image", "build", "hostname", "ports", "network_mode", "depends_on",
         "volumes", "read_only", "cap_drop", "cap_add", "stop_grace_period",
         "restart"}


def substitute(text, env):
    return re.sub(r"\$\{(\w+):-([^}]*)\}",
                  lambda m: env.get(m.group(1), m.group(2)), text)


def run_flags(project, svc):
    unknown = set(svc) - KNOWN
    assert not unknown, "compose keys this test cannot run: %r" % unknown
    flags = []
    if "hostname" in svc:
        flags += ["--hostname", svc["hostname"]]
    nm = svc.get("network_mode")
    if nm == "none":
        flags += ["--network", "none"]
    elif nm and nm.startswith("service:"):
        flags += ["--network", "container:%s_%s" % (project, nm[8:])]
    for v in svc.get("volumes", []):
        flags += ["-v", v]
    if svc.get("read_only"):
        flags.append("--read-only")
    for c in svc.get("cap_drop", []):
        flags += ["--cap-drop", c]
    for c in svc.get("cap_add", []):
        flags += ["--cap-add", c]
    if "stop_grace_period" in svc:
        g = svc["stop_grace_period"]
        assert g.endswith("s")
        flags += ["--stop-timeout", g[:-1]]
    if "restart" in svc:
        flags += ["--restart", svc["restart"]]
    return flags


@pytest.mark.timeout(300)
def test_compose_sidecar_serves_mail(certs, tmp_path):
    pe.check_usable()
    p = pe.Podman()
    p.images("all")
    mail = pe.mail_dir(tmp_path)
    env = {"MTA_IMAGE": "localhost/stp-test-mta:test",
           "PROXY_IMAGE": "localhost/starttls-proxy:test",
           "CERT_DIR": pe.proxy_certs(certs, tmp_path),
           "MX_HOSTNAME": "mx1.example.org"}
    with open(os.path.join(pe.REPO, "docker", "compose.yaml")) as f:
        doc = yaml.safe_load(substitute(f.read(), env))
    services = doc["services"]
    mta_svc = services["mta"]
    assert mta_svc["ports"] == ["25:25"]
    del mta_svc["ports"]
    mta_svc["network_mode"] = "none"
    mta_svc["volumes"] = ["%s:/var/mail/out" % mail]
    proxy_svc = services["starttls-proxy"]
    assert proxy_svc["network_mode"] == "service:mta"
    assert proxy_svc["depends_on"] == ["mta"]
    assert int(proxy_svc["stop_grace_period"][:-1]) <= 10

    project = "stpc%d" % os.getpid()
    names = {}
    try:
        for name in ("mta", "starttls-proxy"):
            svc = services[name]
            cname = "%s_%s" % (project, name)
            p.containers.append(cname)
            p.run("run", "-d", "--name", cname,
                  *run_flags(project, svc), svc["image"])
            names[name] = cname
        mta, proxy = names["mta"], names["starttls-proxy"]
        assert p.wait_listening(mta, 25), p.logs(proxy)
        token = "compose-%d" % os.getpid()
        rc, out = pe.swaks(p, mta, token)
        assert rc == 0, out + p.logs(proxy)
        got = pe.wait_message(mail, token)
        assert len(got) == 1, got
        ours = [h for h in re.findall(r"^Received: .*(?:\n[ \t].*)*",
                                      got[0], re.M) if "starttls-proxy" in h]
        assert len(ours) == 1 and "version=TLS" in ours[0], got[0]
        # stop_grace_period is the stop timeout: 421 and exit 0 within it
        p.run("stop", proxy, timeout=60)
        assert p.inspect(proxy)["State"]["ExitCode"] == 0, p.logs(proxy)
    finally:
        p.cleanup()
