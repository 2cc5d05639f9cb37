"""SIGHUP reload (SPEC §2 signals, issue 4 item 2): new connections use the
new configuration and certificates, open sessions finish on what they
started with, a bad new configuration is logged and the running one stays,
listeners are opened and closed, and no session fails during reloads under
load."""

import re
import signal
import socket
import threading
import time

import pytest

import helpers

OLD_BANNER = "old.example ESMTP before-reload"
NEW_BANNER = "new.example ESMTP after-reload"


def cert_entry(certs, name):
    return {"cert": certs.cert(name), "key": certs.key(name)}


def listener0(cfg, **over):
    """A copy of cfg whose first listener has over merged in."""
    out = dict(cfg)
    out["listeners"] = [helpers.deep_merge(cfg["listeners"][0], over)] + \
        list(cfg["listeners"][1:])
    return out


# What the proxy logs when a reload was applied (proxy/master.c); a failed
# reload is recognised by any error-level line after the SIGHUP.
RELOAD_DONE = "reload done"
ERROR_LINE = re.compile(r"^\S+ error: ", re.M)


def count_in_log(proxy, needle):
    return proxy.stderr().count(needle)


def reload(proxy, cfg=None, expect="ok", timeout=10.0):
    """Write cfg (unless None), SIGHUP, and wait until the proxy logged
    that the reload was applied (expect="ok") or an error (expect="error",
    and then it must not have been applied)."""
    done_before = count_in_log(proxy, RELOAD_DONE)
    err_before = len(ERROR_LINE.findall(proxy.stderr()))
    if cfg is not None:
        proxy.rewrite(cfg)
    proxy.signal(signal.SIGHUP)
    if expect == "ok":
        ok = helpers.wait_until(
            lambda: count_in_log(proxy, RELOAD_DONE) > done_before, timeout)
    else:
        ok = helpers.wait_until(
            lambda: len(ERROR_LINE.findall(proxy.stderr())) > err_before,
            timeout)
    assert ok, "no %s logged within %.0fs after SIGHUP:\n%s" % (
        "reload" if expect == "ok" else "error", timeout,
        proxy.stderr()[-4000:])
    if expect != "ok":
        time.sleep(0.3)
        assert count_in_log(proxy, RELOAD_DONE) == done_before, \
            "a bad config was applied:\n%s" % proxy.stderr()[-4000:]
    assert proxy.proc.poll() is None, proxy.stderr()
    # The master logs "reload done" once it has posted the new set to the
    # workers; each applies it on its next loop turn (microseconds).
    time.sleep(0.1)


def tls_client(proxy, ctx, sni=None):
    """A new session through STARTTLS and the second EHLO."""
    c = helpers.Client(proxy.port)
    c.greeting_reply = c.greeting()
    c.ehlo()
    c.starttls(ctx, sni)
    c.ehlo()
    return c


def default_view(proxy, certs):
    """(greeting bytes, DER of the default certificate) seen by a new
    session without SNI."""
    c = helpers.Client(proxy.port)
    try:
        g = c.greeting()
        c.ehlo()
        c.starttls(helpers.no_sni_context(certs), None)
        return g.raw, c.sock.getpeercert(binary_form=True)
    finally:
        c.close()


def test_session_open_across_reload_completes_on_old_config(
        sink, proxy_factory, certs):
    proxy = proxy_factory(sink, listener={
        "banner": OLD_BANNER, "received_header": True})
    ctx = helpers.no_sni_context(certs)

    old = tls_client(proxy, ctx)
    assert old.greeting_reply.raw == ("220 %s\r\n" % OLD_BANNER).encode()
    assert old.sock.getpeercert(binary_form=True) == certs.der("mx1")
    assert old.cmd("MAIL FROM:<old@example.org>").code == 250
    assert old.cmd("RCPT TO:<rcpt@example.org>").code == 250
    assert old.cmd("DATA").code == 354
    old.send(b"Subject: reload-old-1\r\n\r\nfirst half\r\n")

    new_cfg = listener0(proxy.config, banner=NEW_BANNER,
                        received_header=False,
                        limits={"max_line": 512},
                        tls={"certificates": [cert_entry(certs, "mx2"),
                                              cert_entry(certs, "mx1")]})
    reload(proxy, new_cfg)

    # A new connection sees the new banner and the new default certificate.
    new = tls_client(proxy, ctx)
    assert new.greeting_reply.raw == ("220 %s\r\n" % NEW_BANNER).encode()
    assert new.sock.getpeercert(binary_form=True) == certs.der("mx2")
    assert helpers.peer_names(new.sock) == ["mx2.example.org"]
    # ... and the new limits: a 700-byte line is over max_line = 512.
    r = new.cmd("NOOP " + "n" * 694)
    assert (r.code, r.enhanced) == (500, "5.5.2"), r
    assert new.cmd("MAIL FROM:<new@example.org>").code == 250
    assert new.cmd("RCPT TO:<rcpt@example.org>").code == 250
    assert new.cmd("DATA").code == 354
    new.send(b"Subject: reload-new\r\n\r\nnew session\r\n.\r\n")
    assert new.read_reply().code == 250
    assert new.cmd("QUIT").code == 221

    # The old session finishes its message, and keeps its own config.
    old.send(b"second half\r\n.\r\n")
    r = old.read_reply()
    assert r.code == 250, r
    r = old.cmd("NOOP " + "o" * 694)        # fine under the old 4096
    assert r.code == 250, r
    assert old.cmd("MAIL FROM:<old@example.org>").code == 250
    assert old.cmd("RCPT TO:<rcpt@example.org>").code == 250
    assert old.cmd("DATA").code == 354
    old.send(b"Subject: reload-old-2\r\n\r\nafter the reload\r\n.\r\n")
    assert old.read_reply().code == 250
    assert old.sock.getpeercert(binary_form=True) == certs.der("mx1")
    assert old.cmd("QUIT").code == 221
    old.close()
    new.close()

    assert sink.wait_for(lambda: len(sink.completed_messages()) == 3)
    by_subject = {}
    for m in sink.completed_messages():
        for tag in (b"reload-old-1", b"reload-old-2", b"reload-new"):
            if b"Subject: " + tag + b"\r\n" in m.content:
                by_subject[tag] = bytes(m.content)
    assert set(by_subject) == {b"reload-old-1", b"reload-old-2",
                               b"reload-new"}, sink.completed_messages()
    hdr, rest = helpers.split_received(by_subject[b"reload-old-1"])
    assert rest == b"Subject: reload-old-1\r\n\r\nfirst half\r\nsecond half\r\n"
    # Old session: received_header = true (old config) also for the
    # message it began after the reload; new session: no header.
    hdr, rest = helpers.split_received(by_subject[b"reload-old-2"])
    assert rest == b"Subject: reload-old-2\r\n\r\nafter the reload\r\n"
    assert by_subject[b"reload-new"] == \
        b"Subject: reload-new\r\n\r\nnew session\r\n"


def _broken_syntax(proxy, certs, tmp_path):
    return None, "workers = ;\nthis is not libconfig\n", \
        proxy.conf_path.rsplit("/", 1)[1] + ":1"


def _missing_cert(proxy, certs, tmp_path):
    missing = str(tmp_path / "no-such-cert.pem")
    cfg = listener0(proxy.config, banner=NEW_BANNER, tls={"certificates": [
        {"cert": missing, "key": certs.key("mx2")},
        cert_entry(certs, "mx1")]})
    return cfg, None, missing


def _key_mismatch(proxy, certs, tmp_path):
    cfg = listener0(proxy.config, banner=NEW_BANNER, tls={"certificates": [
        {"cert": certs.cert("mx2"), "key": certs.key("mx1")}]})
    return cfg, None, certs.cert("mx2").rsplit("/", 1)[1]


@pytest.mark.parametrize("breakage", [_broken_syntax, _missing_cert,
                                      _key_mismatch],
                         ids=["syntax-error", "missing-cert",
                              "key-mismatch"])
def test_bad_reload_keeps_running_config(sink, proxy_factory, certs,
                                         tmp_path, breakage):
    proxy = proxy_factory(sink, listener={"banner": OLD_BANNER})
    good_cfg = proxy.config
    assert default_view(proxy, certs) == (
        ("220 %s\r\n" % OLD_BANNER).encode(), certs.der("mx1"))
    open_before = tls_client(proxy, helpers.no_sni_context(certs))

    cfg, raw, needle = breakage(proxy, certs, tmp_path)
    if raw is not None:
        with open(proxy.conf_path, "w") as f:
            f.write(raw)
        reload(proxy, None, expect="error")
    else:
        reload(proxy, cfg, expect="error")
    err = proxy.stderr()
    # The error names what is wrong (file:line, or the certificate path).
    assert needle in err, "reload error does not name %r:\n%s" % (needle,
                                                                  err)
    time.sleep(0.2)
    assert proxy.proc.poll() is None, err

    # New sessions still get the OLD banner and certificate.
    assert default_view(proxy, certs) == (
        ("220 %s\r\n" % OLD_BANNER).encode(), certs.der("mx1"))
    # The session that was open goes on.
    assert open_before.cmd("NOOP").code == 250
    assert open_before.cmd("QUIT").code == 221
    open_before.close()

    # A good config afterwards is taken.
    fixed = listener0(good_cfg, banner=NEW_BANNER, tls={"certificates": [
        cert_entry(certs, "mx2")]})
    reload(proxy, fixed)
    assert default_view(proxy, certs) == (
        ("220 %s\r\n" % NEW_BANNER).encode(), certs.der("mx2"))



def test_reload_adds_and_removes_listeners(sink, proxy_factory, certs,
                                          tls_ctx):
    proxy = proxy_factory(sink)
    port_a = proxy.port
    first = proxy.config["listeners"][0]
    port_b = helpers.free_port()
    second = helpers.deep_merge(first, {
        "name": "sub", "listen": "127.0.0.1:%d" % port_b,
        "banner": "sub.example ESMTP second listener"})

    held = helpers.Client(port_a)
    held.greeting()
    held.ehlo()

    # Add "sub": its port accepts, with its own banner; "mx" still works.
    cfg = dict(proxy.config, listeners=[first, second])
    reload(proxy, cfg)
    assert helpers.wait_until(lambda: helpers.port_listening(port_b), 5), \
        proxy.stderr()
    r = helpers.send_tls_message(port_b, tls_ctx,
                                 b"Subject: via-sub\r\n\r\nb\r\n")
    assert r["greeting"].raw == b"220 sub.example ESMTP second listener\r\n"
    r = helpers.send_tls_message(port_a, tls_ctx,
                                 b"Subject: via-mx\r\n\r\na\r\n")
    assert r["greeting"].raw == b"220 sink.test ESMTP RecordingSink ready\r\n"

    # Remove "mx": its port is closed (connect refused), "sub" goes on,
    # and the session that was open on "mx" finishes.
    cfg = dict(proxy.config, listeners=[second])
    reload(proxy, cfg)
    assert helpers.wait_until(lambda: not helpers.port_listening(port_a),
                              5), "port %d still listening" % port_a
    assert helpers.connect_refused(port_a), "port %d still accepts" % port_a
    r = helpers.send_tls_message(port_b, tls_ctx,
                                 b"Subject: via-sub-2\r\n\r\nc\r\n")
    assert r["end"].code == 250
    assert held.cmd("NOOP").code == 250
    assert held.cmd("QUIT").code == 221
    held.close()
    assert sink.wait_for(lambda: len(sink.completed_messages()) == 3)


@pytest.mark.timeout(60)
def test_reload_under_load_drops_no_session(sink, proxy_factory, certs):
    """8 threads x 15 sessions (STARTTLS + one message each, the message
    sent in two parts 100 ms apart so that sessions straddle reloads) while
    the default certificate is swapped by 5 SIGHUPs 200 ms apart."""
    threads_n, per_thread = 8, 15
    proxy = proxy_factory(sink, top={"workers": 2})
    cfgs = [proxy.config,
            listener0(proxy.config, tls={"certificates": [
                cert_entry(certs, "mx2"), cert_entry(certs, "mx1")]})]
    ctx = helpers.no_sni_context(certs)
    lock = threading.Lock()
    state = {"started": 0, "done": 0}
    failures, seen_certs, tokens_ok = [], set(), []
    deadline = time.monotonic() + 45

    def one(tid, j):
        token = "load-%d-%d" % (tid, j)
        c = helpers.Client(proxy.port, timeout=10)
        try:
            c.greeting()
            c.ehlo()
            c.starttls(ctx, None)
            der = c.sock.getpeercert(binary_form=True)
            c.ehlo()
            for line, code in (("MAIL FROM:<%s@example.org>" % token, 250),
                               ("RCPT TO:<rcpt@example.org>", 250),
                               ("DATA", 354)):
                r = c.cmd(line)
                assert r.code == code, (line, r)
            c.send(b"Subject: " + token.encode() + b"\r\n\r\n")
            time.sleep(0.1)
            c.send(b"body of " + token.encode() + b"\r\n.\r\n")
            r = c.read_reply()
            assert r.code == 250, ("end of DATA", r)
            r = c.cmd("QUIT")
            assert r.code == 221, ("QUIT", r)
            return der
        finally:
            c.close()

    def worker(tid):
        for j in range(per_thread):
            if time.monotonic() > deadline:
                failures.append((tid, j, "out of time"))
                return
            with lock:
                state["started"] += 1
            try:
                der = one(tid, j)
                with lock:
                    seen_certs.add(der)
                    tokens_ok.append("load-%d-%d" % (tid, j))
            except Exception as e:     # recorded, asserted below
                failures.append((tid, j, repr(e)))
            finally:
                with lock:
                    state["done"] += 1

    ts = [threading.Thread(target=worker, args=(i,), daemon=True)
          for i in range(threads_n)]
    for t in ts:
        t.start()
    helpers.wait_until(lambda: state["done"] >= threads_n, 15)
    in_flight = []
    for i in range(5):
        proxy.rewrite(cfgs[(i + 1) % 2])
        with lock:
            in_flight.append(state["started"] - state["done"])
        proxy.signal(signal.SIGHUP)
        time.sleep(0.2)
    for t in ts:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in ts), "client threads still running"

    assert failures == [], "failed sessions: %r\n%s" % (
        failures[:10], proxy.stderr()[-3000:])
    total = threads_n * per_thread
    assert len(tokens_ok) == total
    # The reloads happened while sessions were open, and took effect.
    assert sum(1 for n in in_flight if n > 0) >= 3, in_flight
    assert helpers.wait_until(
        lambda: count_in_log(proxy, RELOAD_DONE) == 5, 5), proxy.stderr()
    assert not ERROR_LINE.findall(proxy.stderr()), proxy.stderr()
    assert seen_certs == {certs.der("mx1"), certs.der("mx2")}
    # The sink got every message exactly once.
    assert sink.wait_for(lambda: len(sink.completed_messages()) >= total, 10)
    msgs = sink.completed_messages()
    subjects = sorted(
        m.content.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
        for m in msgs)
    assert subjects == sorted(tokens_ok), (len(subjects), len(tokens_ok))


def test_reload_with_listen_port_in_use_keeps_running_set(
        sink, proxy_factory, tls_ctx):
    """A new listener that cannot bind makes the whole reload fail: the
    error is logged, the running listeners and config stay."""
    proxy = proxy_factory(sink, listener={"banner": OLD_BANNER})
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    busy_port = squatter.getsockname()[1]
    try:
        first = proxy.config["listeners"][0]
        extra = helpers.deep_merge(first, {
            "name": "extra", "listen": "127.0.0.1:%d" % busy_port})
        cfg = dict(listener0(proxy.config, banner=NEW_BANNER),
                   listeners=[dict(first, banner=NEW_BANNER), extra])
        reload(proxy, cfg, expect="error")
        assert str(busy_port) in proxy.stderr().split("SIGHUP")[-1], \
            proxy.stderr()
        r = helpers.send_tls_message(proxy.port, tls_ctx,
                                     b"Subject: kept\r\n\r\nstill old\r\n")
        assert r["greeting"].raw == ("220 %s\r\n" % OLD_BANNER).encode()
    finally:
        squatter.close()


def test_reload_moves_metrics_endpoint_and_keeps_counters(
        sink, proxy_factory, tls_ctx):
    """stats.listen changed by a reload: the new address serves /metrics,
    the old one is closed, and counters survive the reload."""
    mport = helpers.free_port()
    proxy = proxy_factory(sink, top={"stats": {
        "listen": "127.0.0.1:%d" % mport}})
    assert helpers.wait_until(lambda: helpers.port_listening(mport), 5)
    helpers.send_tls_message(proxy.port, tls_ctx, b"Subject: m\r\n\r\nm\r\n")
    assert helpers.wait_until(lambda: " session " in proxy.stderr(), 5)
    _, _, body = helpers.scrape(mport)
    before = helpers.parse_metrics(body)
    assert helpers.metric(before, "starttls_proxy_messages_total",
                          listener="mx") == 1

    mport2 = helpers.free_port()
    reload(proxy, dict(proxy.config, stats={
        "listen": "127.0.0.1:%d" % mport2}))
    assert helpers.wait_until(lambda: helpers.port_listening(mport2), 5), \
        proxy.stderr()
    assert helpers.wait_until(lambda: not helpers.port_listening(mport), 5)
    status, _, body = helpers.scrape(mport2)
    assert status == 200, (status, body)
    after = helpers.parse_metrics(body)
    for name, labels in (("starttls_proxy_messages_total", {}),
                         ("starttls_proxy_connections_total", {}),
                         ("starttls_proxy_handshakes_total",
                          {"result": "ok"})):
        assert helpers.metric(after, name, listener="mx", **labels) == \
            helpers.metric(before, name, listener="mx", **labels), name
    assert proxy.proc.poll() is None, proxy.stderr()
