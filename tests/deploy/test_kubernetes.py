"""Part 5 (Kubernetes): deploy/kubernetes/starttls-proxy.yaml, validated
offline and played with `podman kube play --network none`, a mail sent
through the pod.

The manifest stays real Kubernetes.  Debian 12's podman (4.3) plays only
part of it, so the test DERIVES what podman can play from the manifest and
prints each substitution (`pytest -s` shows them; a failure shows them too):

  * the Secret object is dropped and its volume becomes a hostPath to a
    directory laid out the way the kubelet writes a Secret volume
    (..<stamp>/tls.crt, ..data -> ..<stamp>, tls.crt -> ..data/tls.crt),
    files root:10025 mode 0440 (what defaultMode 0440 + fsGroup 10025
    give): podman 4.3 crashes on Secret volumes and decodes no base64;
  * pod securityContext.fsGroup and .seccompProfile (RuntimeDefault) are
    dropped: podman ignores fsGroup (emulated by the directory above) and
    applies its default seccomp profile anyway;
  * container ports are dropped: podman would publish them on the host
    (hostPort = containerPort); every port is reachable inside the pod's
    namespace, which is where the test's clients run (nsenter);
  * the images are the test images (the proxy built from docker/Dockerfile,
    exim from tests/deploy/mta), and the MTA container gains a hostPath
    mount of the maildir the test reads;
  * enableServiceLinks is dropped (podman sets no service variables);
  * runAsNonRoot is dropped (podman 4.3 ignores it): the test checks the
    proxy's uid instead;
  * readinessProbe is dropped (podman has none): the test runs its command
    with `podman exec`; livenessProbe becomes podman's healthcheck, run
    with `podman healthcheck run`;
  * the MTA's lifecycle.preStop is dropped (podman 4.3 has no hooks): the
    test does what it is for -- the MTA outlives the proxy's drain -- by
    stopping the proxy container first, with `podman stop -t` set to
    terminationGracePeriodSeconds (also dropped: podman ignores it), then
    `podman kube down`;
  * the Service is dropped (podman plays no Services; --network none has
    nothing to expose): it is only validated offline.

Any key the derivation does not know fails the test, so the manifest cannot
grow settings that go untested.  Not tested here: the Service and the load
balancer, cert-manager/certificate.yaml (only parsed), a real kubelet's
Secret updates (the ..data swap is done by the test), fsGroup, runAsNonRoot
enforcement by a kubelet, readiness gating and preStop hooks.
"""

import copy
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

import podman_env as pe

yaml = pytest.importorskip("yaml")

KDIR = os.path.join(pe.REPO, "deploy", "kubernetes")
MANIFEST = os.path.join(KDIR, "starttls-proxy.yaml")
IMAGES = {"starttls-proxy": "localhost/starttls-proxy:test",
          "mta": "localhost/stp-test-mta:test"}
HEALTHCHECK = "/usr/local/bin/starttls-proxy-healthcheck"
PROXY_UID = 10025


def load(path=MANIFEST):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def objects(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def only(docs, kind):
    got = objects(docs, kind)
    assert len(got) == 1, "want one %s, have %d" % (kind, len(got))
    return got[0]


def proxy_config(docs):
    cm = only(docs, "ConfigMap")
    return cm, cm["data"]["starttls-proxy.conf"]


def conf_int(text, key):
    m = re.search(r"^\s*%s\s*=\s*(\d+)\s*;" % key, text, re.M)
    assert m, "%s not set in the ConfigMap's config" % key
    return int(m.group(1))


def pod_spec(docs):
    return only(docs, "Deployment")["spec"]["template"]["spec"]


def container(spec, name):
    got = [c for c in spec["containers"] if c["name"] == name]
    assert len(got) == 1, "no container %r" % name
    return got[0]


# ---------------------------------------------------------------- offline


def test_manifest_is_consistent():
    """What kubectl would accept and what makes the pod work, checked
    without a cluster."""
    docs = load()
    for d in docs + load(os.path.join(KDIR, "cert-manager",
                                      "certificate.yaml")):
        assert d.get("apiVersion") and d.get("kind"), d
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?",
                            d["metadata"]["name"]), d["metadata"]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "Secret", "Service"], kinds

    dep = only(docs, "Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    match = dep["spec"]["selector"]["matchLabels"]
    assert match.items() <= labels.items(), (match, labels)
    spec = pod_spec(docs)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", spec["hostname"]), \
        "pod hostname must be a DNS label"
    names = [c["name"] for c in spec["containers"]]
    assert sorted(names) == ["mta", "starttls-proxy"], names
    for c in spec["containers"]:
        assert c.get("image"), c
    proxy = container(spec, "starttls-proxy")

    # The config: from the ConfigMap, at the path the args give.
    cm, conf = proxy_config(docs)
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in proxy["volumeMounts"]}
    for c in spec["containers"]:
        for m in c.get("volumeMounts", []):
            assert m["name"] in vols, m
            assert "subPath" not in m and "subPathExpr" not in m, \
                "subPath mounts never see Secret/ConfigMap updates"
    cfg_vol = [n for n, v in vols.items()
               if v.get("configMap", {}).get("name") == cm["metadata"]["name"]]
    assert len(cfg_vol) == 1, vols
    args = proxy["args"]
    assert args[0] == "-c" and args[1] == os.path.join(
        mounts[cfg_vol[0]]["mountPath"], "starttls-proxy.conf"), args

    # The certificate: a kubernetes.io/tls Secret mounted as a directory,
    # the config's cert/key paths are its tls.crt/tls.key.
    secret = only(docs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key"}
    tls_vol = [n for n, v in vols.items() if v.get("secret", {}).get(
        "secretName") == secret["metadata"]["name"]]
    assert len(tls_vol) == 1, vols
    tls_dir = mounts[tls_vol[0]]["mountPath"]
    assert mounts[tls_vol[0]].get("readOnly") is True
    assert "items" not in vols[tls_vol[0]]["secret"]
    paths = re.findall(r'\b(?:cert|key)\s*=\s*"([^"]+)"', conf)
    assert paths, conf
    for p in paths:
        assert os.path.dirname(p) == tls_dir and os.path.basename(p) in \
            secret["data"], p
    assert re.search(r"^\s*watch_certificates\s*=\s*true\s*;", conf, re.M)
    # tls.key readable by the proxy's group, not by others
    mode = vols[tls_vol[0]]["secret"]["defaultMode"]
    assert mode & 0o040 and not mode & 0o007, oct(mode)
    assert spec["securityContext"]["fsGroup"] == PROXY_UID

    # Ports: the container's, the config's listeners' and the Service's.
    listen = sorted(int(p) for p in re.findall(
        r'^\s*listen\s*=\s*"[^"]*:(\d+)"\s*;', conf, re.M))
    cports = {p["name"]: p["containerPort"] for p in proxy["ports"]}
    assert sorted(cports.values()) == listen, (cports, listen)
    backends = set(re.findall(r'address\s*=\s*"([^"]+)"', conf))
    assert backends == {"127.0.0.1:2525"}, backends
    svc = only(docs, "Service")
    assert svc["spec"]["selector"].items() <= labels.items()
    for p in svc["spec"]["ports"]:
        assert p["targetPort"] in cports, p
        assert p["port"] == cports[p["targetPort"]], p
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [25, 465]

    # Stats on loopback only; the probes reach it from inside the pod.
    assert re.search(r'stats\s*=\s*\{\s*listen\s*=\s*"127\.0\.0\.1:9125"',
                     conf), conf
    for probe in ("livenessProbe", "readinessProbe"):
        assert proxy[probe]["exec"]["command"] == [HEALTHCHECK], proxy[probe]

    # Stop: the grace outlasts the proxy's drain; the MTA outlives it.
    shutdown = conf_int(conf, "shutdown_timeout")
    grace = spec["terminationGracePeriodSeconds"]
    assert grace >= shutdown + 5, (grace, shutdown)
    pre = container(spec, "mta")["lifecycle"]["preStop"]["exec"]["command"]
    assert pre[0] == "sleep" and shutdown < int(pre[1]) < grace, pre

    sc = proxy["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == PROXY_UID and sc["runAsGroup"] == PROXY_UID
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"],
                                  "add": ["NET_BIND_SERVICE"]}


# --------------------------------------------------------------- derive


class Unknown(AssertionError):
    pass


def keys(d, allowed, where):
    extra = set(d) - set(allowed)
    if extra:
        raise Unknown("%s: keys the podman derivation does not know: %s"
                      % (where, sorted(extra)))


def derive(docs, cert_dir, mail_dir):
    """(played documents, notes, facts) from the manifest's documents."""
    notes = []
    facts = {}
    out = []
    meta_keys = {"name", "labels"}
    for d in docs:
        d = copy.deepcopy(d)
        kind = d.get("kind")
        keys(d.get("metadata", {}), meta_keys, "%s.metadata" % kind)
        if kind == "ConfigMap":
            keys(d, {"apiVersion", "kind", "metadata", "data"}, kind)
            out.append(d)
        elif kind == "Secret":
            keys(d, {"apiVersion", "kind", "metadata", "type", "data"}, kind)
            facts["secret"] = d["metadata"]["name"]
            notes.append("Secret %s: dropped (its volume becomes a hostPath)"
                         % d["metadata"]["name"])
        elif kind == "Service":
            keys(d, {"apiVersion", "kind", "metadata", "spec"}, kind)
            keys(d["spec"], {"type", "externalTrafficPolicy", "selector",
                             "ports"}, "Service.spec")
            for p in d["spec"]["ports"]:
                keys(p, {"name", "port", "targetPort"}, "Service.ports")
            notes.append("Service %s: dropped (not played; validated "
                         "offline)" % d["metadata"]["name"])
        elif kind == "Deployment":
            keys(d, {"apiVersion", "kind", "metadata", "spec"}, kind)
            keys(d["spec"], {"replicas", "selector", "template"},
                 "Deployment.spec")
            assert d["spec"]["replicas"] == 1
            keys(d["spec"]["template"], {"metadata", "spec"}, "template")
            keys(d["spec"]["template"]["metadata"], {"labels"},
                 "template.metadata")
            facts["pod"] = "%s-pod-0" % d["metadata"]["name"]
            derive_pod(d["spec"]["template"]["spec"], cert_dir, mail_dir,
                       notes, facts)
            out.append(d)
        else:
            raise Unknown("kind %r: the podman derivation does not know it"
                          % kind)
    return out, notes, facts


def derive_pod(spec, cert_dir, mail_dir, notes, facts):
    keys(spec, {"hostname", "terminationGracePeriodSeconds",
                "enableServiceLinks", "securityContext", "containers",
                "volumes"}, "pod spec")
    facts["hostname"] = spec["hostname"]
    facts["grace"] = spec.pop("terminationGracePeriodSeconds")
    notes.append("terminationGracePeriodSeconds %d: dropped, used as "
                 "`podman stop -t %d`" % (facts["grace"], facts["grace"]))
    if spec.pop("enableServiceLinks", None) is not None:
        notes.append("enableServiceLinks: dropped (podman sets no service "
                     "variables)")
    psc = spec.pop("securityContext", {})
    keys(psc, {"fsGroup", "seccompProfile"}, "pod securityContext")
    if "fsGroup" in psc:
        facts["fsgroup"] = psc["fsGroup"]
        notes.append("fsGroup %d: dropped (ignored by podman); the "
                     "certificate directory is made group %d"
                     % (psc["fsGroup"], psc["fsGroup"]))
    if "seccompProfile" in psc:
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        notes.append("seccompProfile RuntimeDefault: dropped (podman "
                     "applies its default profile)")

    for v in spec["volumes"]:
        keys(v, {"name", "configMap", "secret"}, "volume")
        if "configMap" in v:
            keys(v["configMap"], {"name"}, "configMap volume")
        if "secret" in v:
            s = v.pop("secret")
            keys(s, {"secretName", "defaultMode"}, "secret volume")
            assert s["secretName"] == facts["secret"]
            facts["secret_mode"] = s["defaultMode"]
            v["hostPath"] = {"path": cert_dir, "type": "Directory"}
            notes.append("volume %s (secret %s): hostPath %s" % (
                v["name"], s["secretName"], cert_dir))
    spec["volumes"].append({"name": "test-maildir", "hostPath": {
        "path": mail_dir, "type": "Directory"}})

    for c in spec["containers"]:
        name = c["name"]
        keys(c, {"name", "image", "args", "ports", "securityContext",
                 "volumeMounts", "livenessProbe", "readinessProbe",
                 "resources", "lifecycle"}, "container " + name)
        notes.append("container %s: image %s -> %s" % (name, c["image"],
                                                      IMAGES[name]))
        c["image"] = IMAGES[name]
        for m in c.get("volumeMounts", []):
            keys(m, {"name", "mountPath", "readOnly"}, "volumeMount")
        if c.pop("ports", None):
            notes.append("container %s: ports dropped (podman would "
                         "publish them on the host)" % name)
        if "lifecycle" in c:
            lc = c.pop("lifecycle")
            keys(lc, {"preStop"}, "lifecycle")
            keys(lc["preStop"], {"exec"}, "preStop")
            facts["prestop_" + name] = lc["preStop"]["exec"]["command"]
            notes.append("container %s: preStop %r dropped (no hooks in "
                         "podman 4.3): the test stops the proxy first" % (
                             name, lc["preStop"]["exec"]["command"]))
        if "securityContext" in c:
            sc = c["securityContext"]
            keys(sc, {"runAsNonRoot", "runAsUser", "runAsGroup",
                      "readOnlyRootFilesystem", "allowPrivilegeEscalation",
                      "capabilities"}, "securityContext")
            keys(sc["capabilities"], {"drop", "add"}, "capabilities")
            if sc.pop("runAsNonRoot", None):
                facts["nonroot_" + name] = True
                notes.append("container %s: runAsNonRoot dropped (ignored "
                             "by podman 4.3); the test checks the uid"
                             % name)
        for probe in ("livenessProbe", "readinessProbe"):
            if probe in c:
                keys(c[probe], {"exec", "periodSeconds", "timeoutSeconds",
                                "failureThreshold"}, probe)
                keys(c[probe]["exec"], {"command"}, probe + ".exec")
                facts["%s_%s" % (probe, name)] = c[probe]["exec"]["command"]
        if "readinessProbe" in c:
            del c["readinessProbe"]
            notes.append("container %s: readinessProbe dropped (run by the "
                         "test with podman exec)" % name)
        if "resources" in c:
            keys(c["resources"], {"requests", "limits"}, "resources")
            keys(c["resources"].get("requests", {}), {"cpu", "memory"},
                 "requests")
            keys(c["resources"].get("limits", {}), {"cpu", "memory"},
                 "limits")
        if name == "mta":
            c.setdefault("volumeMounts", []).append(
                {"name": "test-maildir", "mountPath": "/var/mail/out"})
            notes.append("container mta: + hostPath %s at /var/mail/out "
                         "(the test's maildir)" % mail_dir)


def test_derivation_refuses_unknown_keys():
    docs = load()
    spec = pod_spec(docs)
    container(spec, "starttls-proxy")["volumeMounts"][1]["subPath"] = "x"
    with pytest.raises(Unknown):
        derive(docs, "/nonexistent", "/nonexistent")
    docs = load()
    pod_spec(docs)["hostNetwork"] = True
    with pytest.raises(Unknown):
        derive(docs, "/nonexistent", "/nonexistent")


# ----------------------------------------------------------------- play


def secret_volume(d, certs, leaf, stamp, gid, mode):
    """Lay out d as the kubelet writes a Secret volume, ..data pointing at
    the new ..<stamp> directory (renamed over: atomic)."""
    real = os.path.join(d, ".." + stamp)
    os.mkdir(real)
    os.chmod(real, 0o755)
    for src, dst in ((certs.cert(leaf), "tls.crt"), (certs.key(leaf),
                                                     "tls.key")):
        shutil.copy(src, os.path.join(real, dst))
        os.chown(os.path.join(real, dst), 0, gid)
        os.chmod(os.path.join(real, dst), mode)
    tmp = os.path.join(d, "..data_tmp")
    os.symlink(".." + stamp, tmp)
    os.rename(tmp, os.path.join(d, "..data"))
    for name in ("tls.crt", "tls.key"):
        link = os.path.join(d, name)
        if not os.path.islink(link):
            os.symlink(os.path.join("..data", name), link)


SERVED = r"""
import hashlib, socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), 20) as s:
    with ctx.wrap_socket(s) as t:
        print(hashlib.sha256(t.getpeercert(True)).hexdigest())
"""


def served_fp(p, ctr, port):
    r = p.in_netns(ctr, [sys.executable, "-c", SERVED, str(port)], timeout=60)
    return r.stdout.decode().strip()


def der_fp(path):
    r = subprocess.run(["openssl", "x509", "-in", path, "-outform", "DER"],
                       capture_output=True, check=True)
    return hashlib.sha256(r.stdout).hexdigest()


@pytest.mark.timeout(600)
def test_kube_play_serves_mail(certs, tmp_path):
    pe.check_usable()
    if shutil.which("catatonit") is None:
        pytest.skip("catatonit is not installed (podman's pod infra "
                    "container; scripts/setup-deps --deploy)")
    p = pe.Podman()
    p.images("all")
    docs = load()
    mail = pe.mail_dir(tmp_path)
    cert_dir = str(tmp_path / "secret-mx-tls")
    os.mkdir(cert_dir)
    played, notes, facts = derive(docs, cert_dir, mail)
    secret_volume(cert_dir, certs, "mx1", "2024_05_01_10_00_00.1",
                  facts["fsgroup"], facts["secret_mode"])
    derived = str(tmp_path / "played.yaml")
    with open(derived, "w") as f:
        yaml.safe_dump_all(played, f, sort_keys=False)
    report = "podman kube play substitutions:\n  " + "\n  ".join(notes)
    print(report)

    pod = facts["pod"]
    proxy, mta = pod + "-starttls-proxy", pod + "-mta"
    _, conf = proxy_config(docs)
    shutdown = conf_int(conf, "shutdown_timeout")
    p.run("kube", "down", derived, check=False)
    try:
        p.run("kube", "play", "--network", "none", derived, timeout=300)
        assert p.wait_listening(proxy, 25), report + p.logs(proxy)
        assert p.wait_listening(proxy, 465), p.logs(proxy)
        assert p.wait_listening(mta, 2525), p.logs(mta)

        # STARTTLS on 25, through the sidecar into the MTA
        token = "kube-%d" % os.getpid()
        rc, out = pe.swaks(p, proxy, token)
        assert rc == 0 and "TLS started" in out, out + p.logs(proxy)
        got = pe.wait_message(mail, token)
        assert len(got) == 1, got
        ours = [h for h in re.findall(r"^Received: .*(?:\n[ \t].*)*",
                                      got[0], re.M) if "starttls-proxy" in h]
        assert len(ours) == 1, got[0]
        assert "by %s (starttls-proxy" % facts["hostname"] in ours[0], ours
        assert "version=TLSv1.3" in ours[0], ours[0]
        # implicit TLS on 465
        token465 = "kube465-%d" % os.getpid()
        rc, out = pe.swaks(p, proxy, token465, port=465, tls=False,
                           extra=["--tlsc"])
        assert rc == 0, out + p.logs(proxy)
        assert len(pe.wait_message(mail, token465)) == 1

        # the securityContext, as the kernel sees the proxy
        with open("/proc/%d/status" % p.pid(proxy)) as f:
            st = dict(line.split(":", 1) for line in f.read().splitlines())
        assert st["Uid"].split() == [str(PROXY_UID)] * 4, st["Uid"]
        assert st["Gid"].split() == [str(PROXY_UID)] * 4, st["Gid"]
        assert int(st["CapEff"], 16) == 1 << 10, st["CapEff"]  # NET_BIND
        assert int(st["CapBnd"], 16) == 1 << 10, st["CapBnd"]
        assert st["NoNewPrivs"].strip() == "1", st["NoNewPrivs"]
        assert p.inspect(proxy)["HostConfig"]["ReadonlyRootfs"] is True
        r = p.run("exec", proxy, "/bin/sh", "-c", "echo x > /probe",
                  check=False)
        assert r.returncode != 0, "root filesystem is writable"

        # liveness (podman's healthcheck) and readiness (its command)
        r = p.run("healthcheck", "run", proxy, check=False, timeout=60)
        assert r.returncode == 0, (r.stdout + r.stderr).decode()
        r = p.run("exec", proxy, *facts["readinessProbe_starttls-proxy"],
                  check=False)
        assert r.returncode == 0, (r.stdout + r.stderr).decode()

        # a cert-manager renewal: the kubelet swaps ..data; the proxy's
        # watch_certificates serves the new certificate, no restart
        assert served_fp(p, proxy, 465) == der_fp(certs.cert("mx1"))
        pid = p.pid(proxy)
        secret_volume(cert_dir, certs, "mx1-rsa", "2024_06_01_10_00_00.2",
                      facts["fsgroup"], facts["secret_mode"])
        shutil.rmtree(os.path.join(cert_dir, "..2024_05_01_10_00_00.1"))
        want = der_fp(certs.cert("mx1-rsa"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if served_fp(p, proxy, 465) == want:
                break
            time.sleep(0.5)
        assert served_fp(p, proxy, 465) == want, p.logs(proxy)
        assert p.pid(proxy) == pid

        # Pod deletion: the MTA's preStop keeps it up while the proxy,
        # stopped with the pod's grace, drains: 421 4.3.2 and exit 0 after
        # shutdown_timeout, within terminationGracePeriodSeconds.
        client = subprocess.Popen(
            ["nsenter", "--net=" + p.netns(proxy), "--", sys.executable,
             "-c", pe.OPEN_SESSION], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        try:
            assert client.stdout.readline().strip() == b"READY"
            t0 = time.monotonic()
            p.run("stop", "-t", str(facts["grace"]), proxy,
                  timeout=facts["grace"] + 60)
            took = time.monotonic() - t0
            out, err = client.communicate(timeout=30)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait(5)
        assert b"421 4.3.2" in out, (out, err, p.logs(proxy))
        state = p.inspect(proxy)["State"]
        assert state["ExitCode"] == 0, (state, p.logs(proxy))
        assert shutdown - 1 <= took < facts["grace"], took
        p.run("kube", "down", derived, timeout=120)
        r = p.run("pod", "exists", pod, check=False)
        assert r.returncode != 0, "pod %s still there" % pod
    finally:
        p.run("kube", "down", derived, check=False, timeout=120)
