"""Production operation (SPEC §2 signals, §3 user/log/stats, §6; issue 4):
graceful stop, /metrics, JSON logs, privilege drop to a user after binding
a port below 1024."""

import json
import os
import re
import signal
import socket
import time

import pytest

import helpers


def session_lines(proxy):
    return [l for l in proxy.stderr().splitlines() if " session " in l
            or '"event":"session"' in l.replace(" ", "")]


def wait_session_lines(proxy, n, timeout=5.0):
    assert helpers.wait_until(lambda: len(session_lines(proxy)) >= n,
                              timeout), (
        "expected %d session log lines:\n%s" % (n, proxy.stderr()[-4000:]))



# -- graceful stop -----------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_graceful_stop_finishes_sessions_then_421(sink, proxy_factory,
                                                  tls_ctx, workers):
    proxy = proxy_factory(sink, top={"shutdown_timeout": 3,
                                     "workers": workers})
    idle = helpers.Client(proxy.port)
    idle.greeting()
    idle.ehlo()
    busy = helpers.Client(proxy.port)
    busy.greeting()
    busy.ehlo()
    busy.starttls(tls_ctx)
    busy.ehlo()
    assert busy.cmd("MAIL FROM:<a@example.org>").code == 250
    assert busy.cmd("RCPT TO:<b@example.org>").code == 250
    assert busy.cmd("DATA").code == 354
    busy.send(b"Subject: grace\r\n\r\nbegun before SIGTERM\r\n")

    t0 = time.monotonic()
    proxy.signal(signal.SIGTERM)
    time.sleep(0.3)
    # No new sessions once stopping: the listening sockets are closed.
    assert not helpers.port_listening(proxy.port)
    assert helpers.connect_refused(proxy.port), "new connection accepted"

    # The session that finishes its message in the grace period gets the
    # backend's 250, not 421, and its QUIT answered.
    busy.send(b"finished in the grace period\r\n.\r\n")
    r = busy.read_reply()
    assert r.code == 250, r
    r = busy.cmd("QUIT")
    assert r.code == 221, r
    assert busy.read_until_closed(5) == b""

    # The idle session gets 421 4.3.2 when shutdown_timeout (3 s) is over.
    r = idle.read_reply()
    waited = time.monotonic() - t0
    assert (r.code, r.enhanced) == (421, "4.3.2"), r
    assert 2.5 <= waited <= 6.0, "421 after %.2f s (shutdown_timeout 3)" % (
        waited,)
    assert idle.read_until_closed(5) == b""
    rc = proxy.proc.wait(10)
    assert rc == 0, proxy.stderr()
    assert time.monotonic() - t0 <= 8.0

    (m,) = sink.completed_messages()
    assert m.content.endswith(b"Subject: grace\r\n\r\nbegun before SIGTERM\r\n"
                              b"finished in the grace period\r\n"), m.content


def test_stop_exits_as_soon_as_last_session_ends(sink, proxy_factory,
                                                 tls_ctx):
    """shutdown_timeout is an upper bound: when the last session ends in
    the grace period, the process exits then (with 0), not 30 s later."""
    proxy = proxy_factory(sink, top={"shutdown_timeout": 30})
    c = helpers.Client(proxy.port)
    c.greeting()
    c.ehlo()
    proxy.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert c.cmd("NOOP").code == 250
    assert c.cmd("QUIT").code == 221
    c.read_until_closed(5)
    t0 = time.monotonic()
    rc = proxy.proc.wait(10)
    assert rc == 0, proxy.stderr()
    assert time.monotonic() - t0 < 3.0


# -- /metrics ----------------------------------------------------------------

def metrics_proxy(sink, proxy_factory, listener=None):
    mport = helpers.free_port()
    proxy = proxy_factory(sink, listener=listener, top={
        "stats": {"listen": "127.0.0.1:%d" % mport}})
    assert helpers.wait_until(lambda: helpers.port_listening(mport), 5), \
        proxy.stderr()
    return proxy, mport


def scrape_ok(mport):
    status, ctype, body = helpers.scrape(mport)
    assert status == 200, (status, body)
    assert ctype.startswith("text/plain"), ctype
    return helpers.parse_metrics(body), body


def families_typed(body):
    """Every sample belongs to a family with exactly one TYPE line that
    comes before it."""
    typed = {}
    for line in body.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)$", line)
        if m:
            assert m.group(1) not in typed, "TYPE twice: %r" % line
            typed[m.group(1)] = m.group(2)
            continue
        if line.startswith("#") or not line:
            continue
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        fam = name
        if typed.get(re.sub(r"_(bucket|sum|count)$", "", name)) == \
                "histogram":
            fam = re.sub(r"_(bucket|sum|count)$", "", name)
        assert fam in typed, "sample before/without its TYPE: %r" % line
    return typed


def test_metrics_count_one_tls_session_with_a_message(
        sink, proxy_factory, tls_ctx):
    proxy, mport = metrics_proxy(sink, proxy_factory,
                                 listener={"policy": {"require_tls": True}})
    before, body = scrape_ok(mport)
    typed = families_typed(body)
    for fam, kind in (("starttls_proxy_connections_total", "counter"),
                      ("starttls_proxy_connections_active", "gauge"),
                      ("starttls_proxy_handshakes_total", "counter"),
                      ("starttls_proxy_policy_refusals_total", "counter"),
                      ("starttls_proxy_messages_total", "counter"),
                      ("starttls_proxy_bytes_total", "counter"),
                      ("starttls_proxy_backend_failures_total", "counter"),
                      ("starttls_proxy_handshake_duration_seconds",
                       "histogram")):
        assert typed.get(fam) == kind, (fam, typed)
    L = {"listener": "mx"}

    content = b"Subject: metrics\r\n\r\n" + b"0123456789" * 100 + b"\r\n"
    helpers.send_tls_message(proxy.port, tls_ctx, content)
    wait_session_lines(proxy, 1)
    after, body = scrape_ok(mport)
    families_typed(body)

    def delta(name, **labels):
        return (helpers.metric(after, name, **labels)
                - helpers.metric(before, name, **labels))

    assert delta("starttls_proxy_connections_total", **L) == 1
    assert helpers.metric(after, "starttls_proxy_connections_active",
                          **L) == 0
    assert delta("starttls_proxy_handshakes_total", result="ok", **L) == 1
    assert delta("starttls_proxy_messages_total", **L) == 1
    assert delta("starttls_proxy_bytes_total", direction="in", **L) >= \
        len(content)
    assert delta("starttls_proxy_bytes_total", direction="out", **L) > 0
    assert delta("starttls_proxy_handshake_duration_seconds_count", **L) == 1
    assert delta("starttls_proxy_handshake_duration_seconds_sum", **L) > 0
    assert delta("starttls_proxy_handshake_duration_seconds_bucket",
                 le="+Inf", **L) == 1
    # Buckets are cumulative: non-decreasing in le, +Inf = count.
    buckets = sorted(
        (float(dict(lb)["le"].replace("+Inf", "inf")), v)
        for (n, lb), v in after.items()
        if n == "starttls_proxy_handshake_duration_seconds_bucket"
        and dict(lb).get("listener") == "mx")
    assert len(buckets) >= 2, buckets
    assert [v for _, v in buckets] == sorted(v for _, v in buckets), buckets
    assert buckets[-1] == (float("inf"), helpers.metric(
        after, "starttls_proxy_handshake_duration_seconds_count", **L))
    assert delta("starttls_proxy_policy_refusals_total",
                 reason="tls_required", **L) == 0

    # A command refused under require_tls counts as tls_required.
    c = helpers.Client(proxy.port)
    c.greeting()
    c.ehlo()
    r = c.cmd("MAIL FROM:<a@example.org>")
    assert (r.code, r.enhanced) == (530, "5.7.0"), r
    assert c.cmd("QUIT").code == 221
    c.close()
    wait_session_lines(proxy, 2)
    third, body = scrape_ok(mport)
    assert (helpers.metric(third, "starttls_proxy_policy_refusals_total",
                           reason="tls_required", **L)
            - helpers.metric(after, "starttls_proxy_policy_refusals_total",
                             reason="tls_required", **L)) == 1
    assert (helpers.metric(third, "starttls_proxy_messages_total", **L)
            == helpers.metric(after, "starttls_proxy_messages_total", **L))
    assert (helpers.metric(third, "starttls_proxy_connections_total", **L)
            - helpers.metric(after, "starttls_proxy_connections_total",
                             **L)) == 1


def test_metrics_count_failed_handshakes_and_backend_failures(
        sink, proxy_factory, tls_ctx):
    proxy, mport = metrics_proxy(sink, proxy_factory)
    before, _ = scrape_ok(mport)
    c = helpers.Client(proxy.port)
    c.greeting()
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    c.send(b"this is not a TLS ClientHello\r\n" * 4)
    c.read_until_closed(10)
    c.close()
    wait_session_lines(proxy, 1)
    after, _ = scrape_ok(mport)

    def failed(s):
        return sum(v for (n, lb), v in s.items()
                   if n == "starttls_proxy_handshakes_failed_total"
                   and dict(lb).get("listener") == "mx")
    assert failed(after) - failed(before) == 1
    assert (helpers.metric(after, "starttls_proxy_handshakes_total",
                           listener="mx", result="ok")
            == helpers.metric(before, "starttls_proxy_handshakes_total",
                              listener="mx", result="ok"))

    # Backend down: 421 4.3.0 and one backend failure counted.
    mport2 = helpers.free_port()
    down = proxy_factory("127.0.0.1:%d" % helpers.closed_port(), top={
        "stats": {"listen": "127.0.0.1:%d" % mport2}})
    assert helpers.wait_until(lambda: helpers.port_listening(mport2), 5)
    b0, _ = scrape_ok(mport2)
    c = helpers.Client(down.port)
    r = c.read_reply()
    assert (r.code, r.enhanced) == (421, "4.3.0"), r
    c.close()
    wait_session_lines(down, 1)
    b1, _ = scrape_ok(mport2)
    assert (helpers.metric(b1, "starttls_proxy_backend_failures_total",
                           listener="mx")
            - helpers.metric(b0, "starttls_proxy_backend_failures_total",
                             listener="mx")) == 1


def test_metrics_other_paths(sink, proxy_factory):
    proxy, mport = metrics_proxy(sink, proxy_factory)
    status, _, _ = helpers.scrape(mport, "/other")
    assert status == 404
    status, _, _ = helpers.scrape(mport, "/")
    assert status == 404
    status, _, body = helpers.scrape(mport, "/metrics")
    assert status == 200
    helpers.parse_metrics(body)
    # The proxy's SMTP side is unaffected by scrapes.
    c = helpers.Client(proxy.port)
    assert c.greeting().code == 220
    c.close()


# -- JSON logs ---------------------------------------------------------------

SESSION_FIELDS = ("client", "listener", "sni", "tls", "cipher", "client_cert",
                  "backend", "messages", "bytes_in", "bytes_out", "refusals",
                  "end", "duration")


def json_lines(proxy):
    objs = []
    for line in proxy.stderr().splitlines():
        obj = json.loads(line)            # every line is one JSON object
        assert isinstance(obj, dict), line
        objs.append(obj)
    return objs


def test_json_log_session_line_has_every_field(sink, proxy_factory, certs):
    proxy = proxy_factory(sink, top={"log": {"level": "info",
                                             "format": "json"}},
                          listener={"policy": {"require_tls": True},
                                    "tls": {"client_ca": certs.ca,
                                            "verify_client": "optional"}})
    ctx = certs.client_context()
    ctx.load_cert_chain(certs.cert("client"), certs.key("client"))
    c = helpers.Client(proxy.port)
    c.greeting()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 530    # a refusal
    c.starttls(ctx, "mx2.example.org")
    c.ehlo()
    version, cipher = c.sock.version(), c.sock.cipher()[0]
    content = b"Subject: json\r\n\r\n" + b"x" * 300 + b"\r\n"
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(content + b".\r\n")
    assert c.read_reply().code == 250
    assert c.cmd("QUIT").code == 221
    c.read_until_closed(5)
    c.close()

    def sessions():
        return [o for o in json_lines(proxy) if o.get("event") == "session"]
    assert helpers.wait_until(lambda: len(sessions()) == 1, 5), \
        proxy.stderr()
    # A reload logs too, and stays JSON.
    proxy.signal(signal.SIGHUP)
    assert helpers.wait_until(lambda: "reload done" in proxy.stderr(), 5)
    objs = json_lines(proxy)
    assert len(objs) >= 4, objs

    (s,) = sessions()
    missing = [f for f in SESSION_FIELDS if f not in s]
    assert not missing, "session line lacks %r: %r" % (missing, s)
    assert s["client"].startswith("127.0.0.1"), s
    assert s["listener"] == "mx", s
    assert s["sni"] == "mx2.example.org", s
    assert s["tls"] == version, s
    assert s["cipher"] == cipher, s
    assert "client.example.org" in s["client_cert"], s
    assert s["backend"] == sink.address, s
    assert s["messages"] == 1, s
    assert s["refusals"] == 1, s
    for f in ("messages", "bytes_in", "bytes_out", "refusals", "duration"):
        assert isinstance(s[f], (int, float)) and not isinstance(s[f], bool), (
            f, s)
    assert s["bytes_in"] >= len(content), s
    assert s["bytes_out"] > 0, s
    assert 0 <= s["duration"] < 30, s
    assert isinstance(s["end"], str) and s["end"], s


# -- privileges ----------------------------------------------------------------

def _ids(pid, tid=None):
    path = ("/proc/%d/status" % pid if tid is None
            else "/proc/%d/task/%d/status" % (pid, tid))
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out


def _low_port_free(port):
    if helpers.port_listening(port):
        return False
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.mark.skipif(os.geteuid() != 0,
                    reason="binding a port < 1024 and dropping to nobody "
                           "needs root")
def test_user_nobody_binds_low_port_then_drops(sink, proxy_factory, tls_ctx):
    import pwd
    port = 587
    if not _low_port_free(port):
        pytest.skip("127.0.0.1:%d is in use" % port)
    nobody = pwd.getpwnam("nobody")
    proxy = proxy_factory(sink, start=False, top={"user": "nobody"},
                          listener={"listen": "127.0.0.1:%d" % port})
    proxy.port = port
    proxy.start()
    r = helpers.send_tls_message(port, tls_ctx,
                                 b"Subject: as nobody\r\n\r\nlow port\r\n")
    assert r["end"].code == 250
    pid = proxy.proc.pid
    tids = [int(t) for t in os.listdir("/proc/%d/task" % pid)]
    assert len(tids) >= 2, tids          # master + worker thread(s)
    for tid in tids:
        ids = _ids(pid, tid)
        # real, effective, saved and filesystem uid/gid: none is root.
        assert ids["Uid"] == [nobody.pw_uid] * 4, (tid, ids)
        assert ids["Gid"] == [nobody.pw_gid] * 4, (tid, ids)
        assert 0 not in ids["Groups"], (tid, ids)
    assert "running as root" not in proxy.stderr()
    (m,) = sink.completed_messages()
    assert m.content.endswith(b"Subject: as nobody\r\n\r\nlow port\r\n")
    # A SIGHUP after the drop (the config may now be unreadable) must not
    # stop the proxy; it keeps serving on the privileged port.
    proxy.signal(signal.SIGHUP)
    assert helpers.wait_until(lambda: "reload" in proxy.stderr().split(
        "SIGHUP", 1)[-1], 5), proxy.stderr()
    time.sleep(0.2)
    assert proxy.proc.poll() is None, proxy.stderr()
    r = helpers.send_tls_message(port, tls_ctx,
                                 b"Subject: after hup\r\n\r\nstill\r\n")
    assert r["end"].code == 250


def test_graceful_stop_mid_data_gets_421_and_backend_never_completes(
        sink, proxy_factory, tls_ctx):
    """A message still open when shutdown_timeout ends is not lost: the
    client gets 421 4.3.2 (so it retries) and the backend never gets the
    end of that message."""
    proxy = proxy_factory(sink, top={"shutdown_timeout": 1})
    c = helpers.Client(proxy.port)
    c.greeting()
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: cut\r\n\r\nnot finished\r\n")
    assert sink.wait_for(lambda: b"not finished" in sink.all_raw(), 5)
    proxy.signal(signal.SIGTERM)
    out = c.read_until_closed(8)
    assert out == b"421 4.3.2 Service shutting down, try again later\r\n" \
        or out.startswith(b"421 4.3.2 "), out
    assert proxy.proc.wait(10) == 0, proxy.stderr()
    assert sink.wait_closed(5)
    assert sink.completed_messages() == [], sink.all_messages()
