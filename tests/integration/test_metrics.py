"""Metrics and health (SPEC §6; issue 10 item 4): /metrics passes
`promtool check metrics`; TLS sessions by version and cipher, reloads by
result and the time of the last good one, each served certificate's
notAfter, build_info and process_start_time_seconds have the values a
real session and real reloads give; /healthz answers 200 when every
worker loop responds and never opens a backend connection.

promtool comes from Debian's prometheus package, extracted into .cache/
by scripts/get-promtool (run by scripts/setup-deps); $STP_PROMTOOL
overrides."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

import helpers


def promtool():
    p = os.environ.get("STP_PROMTOOL")
    if p:
        return p
    p = os.path.join(helpers.REPO, ".cache", "promtool", "usr", "bin",
                     "promtool")
    if os.access(p, os.X_OK):
        return p
    p = shutil.which("promtool")
    if p:
        return p
    pytest.fail("promtool not found: run scripts/get-promtool (or "
                "scripts/setup-deps), or set STP_PROMTOOL", pytrace=False)


def promtool_check(body):
    r = subprocess.run([promtool(), "check", "metrics"], input=body,
                       capture_output=True, text=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


def metrics_proxy(backend, proxy_factory, top=None, **kw):
    mport = helpers.free_port()
    t = {"stats": {"listen": "127.0.0.1:%d" % mport}}
    t.update(top or {})
    proxy = proxy_factory(backend, top=t, **kw)
    assert helpers.wait_until(lambda: helpers.port_listening(mport), 5), \
        proxy.stderr()
    return proxy, mport


def scrape(mport):
    status, ctype, body = helpers.scrape(mport)
    assert status == 200, (status, body)
    return helpers.parse_metrics(body), body


def not_after_epoch(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout",
                          "-enddate"], capture_output=True, text=True,
                         check=True).stdout.strip()
    import calendar
    return calendar.timegm(time.strptime(out.split("=", 1)[1],
                                         "%b %d %H:%M:%S %Y GMT"))


def sample(samples, family, **labels):
    """helpers.metric() for label sets that include "name"."""
    key = (family, frozenset(labels.items()))
    assert key in samples, "no sample %s%r; have: %s" % (
        family, labels, sorted(str(dict(l)) for n, l in samples
                               if n == family))
    return samples[key]


def reload_and_wait(proxy, needle, count):
    proxy.signal(signal.SIGHUP)
    assert helpers.wait_until(
        lambda: proxy.stderr().count(needle) >= count, 10), proxy.stderr()
    time.sleep(0.1)


def test_promtool_passes_after_sessions_refusals_and_reloads(
        sink, proxy_factory, tls_ctx, connect):
    proxy, mport = metrics_proxy(sink, proxy_factory,
                                 listener={"limits": {
                                     "max_connections_per_ip": 1}})
    helpers.send_tls_message(proxy.port, tls_ctx,
                             b"Subject: promtool\r\n\r\nbody\r\n")
    held = connect(proxy)
    refused = helpers.Client(proxy.port)
    assert refused.read_reply().code == 421
    refused.close()
    held.close()
    reload_and_wait(proxy, "reload done", 1)
    _, body = scrape(mport)
    rc, out = promtool_check(body)
    assert rc == 0, "promtool check metrics:\n%s\n---\n%s" % (out, body)
    # Every family of SPEC §6 is there.
    for fam in ("connections_total", "connections_active",
                "connections_rejected_total", "handshakes_total",
                "handshakes_failed_total", "tls_sessions_total",
                "policy_refusals_total", "messages_total", "bytes_total",
                "backend_failures_total", "handshake_duration_seconds",
                "reloads_total", "reload_last_success_timestamp_seconds",
                "certificate_expiry_timestamp_seconds", "build_info"):
        assert "# TYPE starttls_proxy_%s " % fam in body, fam
    assert "# TYPE process_start_time_seconds gauge" in body


def test_tls_sessions_by_version_and_cipher(sink, proxy_factory, tls_ctx,
                                            certs):
    proxy, mport = metrics_proxy(sink, proxy_factory)
    r13 = helpers.send_tls_message(proxy.port, tls_ctx,
                                   b"Subject: a\r\n\r\n13\r\n")
    ctx12 = certs.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    r12 = helpers.send_tls_message(proxy.port, ctx12,
                                   b"Subject: b\r\n\r\n12\r\n")
    r12b = helpers.send_tls_message(proxy.port, ctx12,
                                    b"Subject: c\r\n\r\n12\r\n")
    assert r13["version"] == "TLSv1.3" and r12["version"] == "TLSv1.2"
    assert r12["cipher"] == r12b["cipher"]
    m, _ = scrape(mport)
    name = "starttls_proxy_tls_sessions_total"
    assert helpers.metric(m, name, listener="mx", version="TLSv1.3",
                          cipher=r13["cipher"]) == 1
    assert helpers.metric(m, name, listener="mx", version="TLSv1.2",
                          cipher=r12["cipher"]) == 2
    assert sum(v for (n, _), v in m.items() if n == name) == 3


def test_reloads_by_result_and_last_success(sink, proxy_factory):
    before = time.time()
    proxy, mport = metrics_proxy(sink, proxy_factory)
    after = time.time()
    m, _ = scrape(mport)
    ok = "starttls_proxy_reloads_total"
    last = "starttls_proxy_reload_last_success_timestamp_seconds"
    assert helpers.metric(m, ok, result="ok") == 0
    assert helpers.metric(m, ok, result="failed") == 0
    start = helpers.metric(m, "process_start_time_seconds")
    assert before - 1 <= start <= after + 1, (before, start, after)
    assert before - 1 <= helpers.metric(m, last) <= after + 1
    # A good reload.
    time.sleep(1.1)
    t0 = time.time()
    reload_and_wait(proxy, "reload done", 1)
    m, _ = scrape(mport)
    assert helpers.metric(m, ok, result="ok") == 1
    assert helpers.metric(m, ok, result="failed") == 0
    good = helpers.metric(m, last)
    assert t0 - 0.5 <= good <= time.time() + 0.5, (t0, good)
    assert helpers.metric(m, "process_start_time_seconds") == start
    # A bad one: counted, and the last good time stays.
    cfg = dict(proxy.config)
    cfg["workers"] = "many"
    proxy.rewrite(cfg)
    reload_and_wait(proxy, "reload failed", 1)
    m, _ = scrape(mport)
    assert helpers.metric(m, ok, result="ok") == 1
    assert helpers.metric(m, ok, result="failed") == 1
    assert helpers.metric(m, last) == good


def test_certificate_expiry_and_build_info(sink, proxy_factory, certs):
    proxy, mport = metrics_proxy(sink, proxy_factory, certificates=[
        {"cert": certs.cert("mx1"), "key": certs.key("mx1")},
        {"cert": certs.cert("mx1-rsa"), "key": certs.key("mx1-rsa")},
        {"cert": certs.cert("soon"), "key": certs.key("soon")},
    ])
    m, _ = scrape(mport)
    name = "starttls_proxy_certificate_expiry_timestamp_seconds"
    want = {("mx1.example.org", "ECDSA"):
                not_after_epoch(certs.cert("mx1")),
            ("mx1.example.org", "RSA"):
                not_after_epoch(certs.cert("mx1-rsa")),
            ("soon.example.org", "ECDSA"):
                not_after_epoch(certs.cert("soon"))}
    for (cn, kt), t in want.items():
        assert sample(m, name, listener="mx", name=cn, key_type=kt) == t
    assert len([1 for (n, _) in m if n == name]) == 3
    # An alert rule's expression works on it: "soon" expires within 14 days.
    soon = sample(m, name, listener="mx", name="soon.example.org",
                  key_type="ECDSA")
    assert soon - time.time() < 14 * 86400
    # build_info carries what -V prints.
    v = helpers.run_cli(["-V"]).out
    info = [dict(l) for (n, l) in m if n == "starttls_proxy_build_info"]
    assert len(info) == 1
    assert "starttls-proxy %s" % info[0]["version"] in v, (info, v)
    assert "OpenSSL: %s" % info[0]["openssl"] in v, (info, v)
    assert "libuv: %s" % info[0]["libuv"] in v, (info, v)
    assert helpers.metric(m, "starttls_proxy_build_info", **info[0]) == 1


def test_certificate_expiry_follows_a_reload(sink, proxy_factory, certs):
    proxy, mport = metrics_proxy(sink, proxy_factory)
    m, _ = scrape(mport)
    name = "starttls_proxy_certificate_expiry_timestamp_seconds"
    assert {dict(l)["name"] for (n, l) in m if n == name} == {
        "mx1.example.org", "mx2.example.org", "*.wild.example.org"}
    cfg = dict(proxy.config)
    cfg["listeners"] = [dict(cfg["listeners"][0])]
    cfg["listeners"][0]["tls"] = dict(cfg["listeners"][0]["tls"])
    cfg["listeners"][0]["tls"]["certificates"] = [
        {"cert": certs.cert("soon"), "key": certs.key("soon")}]
    proxy.rewrite(cfg)
    reload_and_wait(proxy, "reload done", 1)
    m, _ = scrape(mport)
    assert {dict(l)["name"] for (n, l) in m if n == name} == {
        "soon.example.org"}


def test_bytes_and_messages_count_while_the_session_is_open(
        sink, proxy_factory, connect):
    """SPEC §6 "messages and bytes relayed": seen on /metrics while a
    long session runs, not only when it ends."""
    proxy, mport = metrics_proxy(sink, proxy_factory)
    c = connect(proxy)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    body = b"Subject: open\r\n\r\n" + b"x" * 5000 + b"\r\n"
    c.send(body + b".\r\n")
    assert c.read_reply().code == 250
    name = "starttls_proxy_bytes_total"

    def counted():
        m, _ = scrape(mport)
        return (helpers.metric(m, "starttls_proxy_messages_total",
                               listener="mx") == 1 and
                helpers.metric(m, name, listener="mx", direction="in")
                >= len(body) and
                helpers.metric(m, name, listener="mx", direction="out")
                > 0)
    assert helpers.wait_until(counted, 5), scrape(mport)[1]
    c.cmd("QUIT")
    c.read_until_closed(5)
    # The end of the session adds only what it had not counted yet.
    m, _ = scrape(mport)
    got_in = helpers.metric(m, name, listener="mx", direction="in")
    assert len(body) <= got_in < len(body) + 200, got_in


def test_rejected_connections_by_reason(sink, proxy_factory, connect):
    proxy, mport = metrics_proxy(sink, proxy_factory, listener={
        "limits": {"max_connections_per_ip": 1}})
    held = connect(proxy)
    for _ in range(2):
        c = helpers.Client(proxy.port)
        assert c.read_reply().code == 421
        c.close()
    m, _ = scrape(mport)
    assert helpers.metric(m, "starttls_proxy_connections_rejected_total",
                          listener="mx", reason="limit") == 2
    held.close()


def test_client_rejecting_our_certificate_counts_as_certificate(
        sink, proxy_factory, tmp_path):
    """A client whose CA does not trust the served certificate aborts the
    handshake with an alert (unknown CA): reason "certificate", as a
    refused client certificate would be, not "other"."""
    ca = str(tmp_path / "other-ca.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "other-ca.key"), "-out", ca,
                    "-days", "2", "-subj", "/CN=Other CA"],
                   check=True, capture_output=True, timeout=60)
    proxy, mport = metrics_proxy(sink, proxy_factory)
    name = "starttls_proxy_handshakes_failed_total"
    before, _ = scrape(mport)
    c = helpers.Client(proxy.port)
    c.greeting()
    c.ehlo()
    with pytest.raises(ssl.SSLCertVerificationError):
        c.starttls(ssl.create_default_context(cafile=ca))
    c.close()
    assert helpers.wait_until(lambda: " session " in proxy.stderr(), 5), \
        proxy.stderr()
    after, _ = scrape(mport)
    for reason, want in (("certificate", 1), ("other", 0)):
        assert (helpers.metric(after, name, listener="mx", reason=reason)
                - helpers.metric(before, name, listener="mx",
                                 reason=reason)) == want, (
            reason, proxy.stderr()[-2000:])


@pytest.mark.parametrize("workers", [1, 3])
def test_healthz_200_and_no_backend_connection(sink, proxy_factory,
                                               workers):
    proxy, mport = metrics_proxy(sink, proxy_factory,
                                 top={"workers": workers})
    time.sleep(0.3)
    log_before = proxy.stderr()
    for _ in range(20):
        status, ctype, body = helpers.scrape(mport, "/healthz")
        assert (status, body) == (200, "ok\n"), (status, body)
        assert ctype.startswith("text/plain")
    status, _, _ = helpers.scrape(mport, "/metrics")
    assert status == 200
    time.sleep(0.3)
    assert sink.all_sessions() == [], "a probe reached the backend"
    m, _ = scrape(mport)
    assert helpers.metric(m, "starttls_proxy_connections_total",
                          listener="mx") == 0
    # Probes make no log lines.
    assert proxy.stderr() == log_before
    # Other paths are still refused.
    assert helpers.scrape(mport, "/healthzz")[0] == 404
    assert helpers.scrape(mport, "/")[0] == 404


def test_healthz_during_reloads_and_slow_request(sink, proxy_factory):
    """/healthz keeps answering 200 across reloads; a client that sends
    nothing does not hold the stats listener up."""
    proxy, mport = metrics_proxy(sink, proxy_factory,
                                 top={"workers": 2})
    idle = socket.create_connection(("127.0.0.1", mport), timeout=5)
    try:
        for i in range(3):
            reload_and_wait(proxy, "reload done", i + 1)
            assert helpers.scrape(mport, "/healthz")[:1] == (200,)
    finally:
        idle.close()


def test_idle_http_client_neither_blocks_probes_nor_delays_stop(
        sink, proxy_factory):
    """A client that connects to the stats port and sends nothing: probes
    still answer, and SIGTERM still ends the process at once (its
    connection is closed with the listener)."""
    proxy, mport = metrics_proxy(sink, proxy_factory)
    idle = socket.create_connection(("127.0.0.1", mport), timeout=5)
    try:
        assert helpers.scrape(mport, "/healthz")[0] == 200
        t0 = time.monotonic()
        rc = proxy.stop(timeout=10)
        assert rc == 0, proxy.stderr()
        assert time.monotonic() - t0 < 5, proxy.stderr()
        idle.settimeout(5)
        assert idle.recv(100) == b""
    finally:
        idle.close()


def test_shipped_alert_rules_are_valid():
    path = os.path.join(helpers.REPO, "config", "examples",
                        "prometheus-alerts.yml")
    r = subprocess.run([promtool(), "check", "rules", path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 3 rules found" in r.stdout, r.stdout
    with open(path) as f:
        text = f.read()
    assert "starttls_proxy_certificate_expiry_timestamp_seconds" in text
