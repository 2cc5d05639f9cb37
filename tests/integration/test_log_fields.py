"""What an administrator reads in the log (SPEC §6, issue 10 item 3): the
session line's fields, one line per message with the backend's final
reply (its queue id), refusal lines with what is known so far, and session
ids that never repeat across restarts.  Read back from real sessions
through a real exim."""

import json
import re
import ssl

import helpers


def json_events(proxy, event):
    out = []
    for line in proxy.stderr().splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        obj = json.loads(line)
        if obj.get("event") == event:
            out.append(obj)
    return out


def wait_events(proxy, event, n=1, timeout=5.0):
    got = []

    def look():
        got[:] = json_events(proxy, event)
        return len(got) >= n

    helpers.wait_until(look, timeout)
    return got


def json_proxy(proxy_factory, backend, **kw):
    top = kw.pop("top", {})
    top.setdefault("log", {"level": "info", "format": "json"})
    return proxy_factory(backend, top=top, **kw)


def test_session_and_message_lines_through_exim(exim, proxy_factory,
                                                 connect, tls_ctx):
    proxy = json_proxy(proxy_factory, exim)
    c = connect(proxy)
    c.ehlo("sender.example.net")
    c.starttls(tls_ctx, "mx2.example.org")
    c.ehlo("sender.example.net")
    cport = c.sock.getsockname()[1]
    assert c.cmd("MAIL FROM:<alice@example.net>").code == 250
    assert c.cmd("RCPT TO:<bob@example.org>").code == 250
    assert c.cmd("RCPT TO:<carol@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    body = b"Subject: log\r\n\r\nhello\r\n"
    c.send(body + b".\r\n")
    r = c.read_reply()
    assert r.code == 250, r
    final = r.raw.decode().strip()
    assert c.cmd("QUIT").code == 221
    c.read_until_closed(5)

    msgs = wait_events(proxy, "message")
    assert len(msgs) == 1, proxy.stderr()
    m = msgs[0]
    assert m["from"] == "<alice@example.net>", m
    assert m["to"] == "<bob@example.org>,<carol@example.org>", m
    assert m["nrcpt"] == 2, m
    assert m["size"] == len(body), m
    # exim's "250 OK id=..." carries its queue id: follow it into exim's log.
    assert m["reply"] == final and re.search(r"id=\S+", m["reply"]), m

    sess = wait_events(proxy, "session")
    assert len(sess) == 1, proxy.stderr()
    s = sess[0]
    assert s["id"] == m["id"], (s, m)
    assert s["client"] == "127.0.0.1" and s["client_port"] == cport, s
    assert s["helo"] == "sender.example.net", s
    assert s["sni"] == "mx2.example.org", s
    assert s["cert"] == "mx2.example.org" and s["cert_key"] in (
        "ECDSA", "RSA"), s
    assert s["tls"].startswith("TLSv1."), s
    assert s["messages"] == 1, s


def test_failed_handshake_still_logs_the_sni_and_certificate(
        sink, proxy_factory, connect):
    proxy = json_proxy(proxy_factory, sink)
    c = connect(proxy)
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    # A client that trusts no CA fails the handshake after its
    # ClientHello (the SNI was sent).
    bad = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bad.check_hostname = False
    bad.verify_mode = ssl.CERT_REQUIRED
    try:
        bad.wrap_socket(c.sock, server_hostname="mx1.example.org")
    except (ssl.SSLError, OSError):
        pass
    c.close()
    sess = wait_events(proxy, "session")
    assert sess, proxy.stderr()
    assert sess[-1]["sni"] == "mx1.example.org", sess[-1]
    assert sess[-1]["tls"] == "-", sess[-1]
    # The certificate the client was shown (and did not trust).
    assert sess[-1]["cert"] == "mx1.example.org", sess[-1]
    assert sess[-1]["cert_key"] in ("ECDSA", "RSA"), sess[-1]


def the_one_refusal(proxy, c):
    """QUIT, then the session's only "refused" line."""
    c.cmd("QUIT")
    c.read_until_closed(5)
    refs = wait_events(proxy, "refused")
    assert len(refs) == 1, proxy.stderr()
    return refs[0]


def test_refusal_line_names_command_reason_and_envelope(sink, proxy_factory,
                                                        connect):
    proxy = json_proxy(proxy_factory, sink, listener={
        "policy": {"tls_required_domains": ["secure.example.org"]}})
    c = connect(proxy)
    c.ehlo("relay.example.net")
    assert c.cmd("MAIL FROM:<a@example.net>").code == 250
    assert c.cmd("RCPT TO:<ok@example.org>").code == 250
    r = c.cmd("RCPT TO:<x@secure.example.org>")
    assert r.code == 530, r
    f = the_one_refusal(proxy, c)
    assert f["command"] == "RCPT" and f["code"] == 530, f
    assert f["reason"] and f["helo"] == "relay.example.net", f
    assert f["from"] == "<a@example.net>" and f["to"] == "<ok@example.org>", f
    # The refused recipient itself (SPEC §6: "known so far").
    assert f["rcpt"] == "<x@secure.example.org>", f


def test_refused_mail_line_names_the_refused_sender(sink, proxy_factory,
                                                    connect):
    proxy = json_proxy(proxy_factory, sink, listener={
        "policy": {"require_tls": True}})
    c = connect(proxy)
    c.ehlo("relay.example.net")
    r = c.cmd("MAIL FROM:<who@example.net> SIZE=100")
    assert r.code == 530, r
    f = the_one_refusal(proxy, c)
    assert f["command"] == "MAIL" and f["code"] == 530, f
    assert f["from"] == "<who@example.net>" and f["rcpt"] == "-", f
    assert f["helo"] == "relay.example.net", f


def test_helo_before_tls_still_names_a_session_that_ends_after_it(
        sink, proxy_factory, connect, tls_ctx):
    """RFC 3207 resets the dialogue at TLS, but the log still names the
    client: a session refused (or ended) before its new EHLO shows the
    name it gave before TLS."""
    proxy = json_proxy(proxy_factory, sink)
    c = connect(proxy)
    c.ehlo("before.example.net")
    c.starttls(tls_ctx)
    r = c.cmd("MAIL FROM:<a@example.net>")
    assert r.code == 503, r             # the reset itself still holds
    c.cmd("QUIT")
    c.read_until_closed(5)
    sess = wait_events(proxy, "session")
    assert sess and sess[-1]["helo"] == "before.example.net", sess
    assert sess[-1]["tls"] != "-", sess[-1]


def test_every_json_line_is_one_object_with_event_and_level(
        sink, proxy_factory, connect):
    proxy = json_proxy(proxy_factory, sink)
    c = connect(proxy)
    c.ehlo()
    c.cmd("QUIT")
    c.read_until_closed(5)
    wait_events(proxy, "session")
    for line in proxy.stderr().splitlines():
        if line.strip():
            obj = json.loads(line)
            assert "level" in obj and "ts" in obj, line


def test_session_ids_differ_across_restarts(sink, proxy_factory, connect):
    ids = []
    for _ in range(2):
        proxy = json_proxy(proxy_factory, sink)
        c = connect(proxy)
        c.ehlo()
        c.cmd("QUIT")
        c.read_until_closed(5)
        ids.append(wait_events(proxy, "session")[0]["id"])
        proxy.stop()
    assert ids[0] != ids[1], ids
    assert all(re.fullmatch(r"[0-9a-f]{16,}", i) for i in ids), ids


def test_hostname_key_names_the_by_host_of_received(exim, proxy_factory,
                                                    connect, tls_ctx):
    proxy = proxy_factory(exim, top={"hostname": "mx9.example.org"})
    c = connect(proxy)
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    token = "by-host-%d" % c.sock.getsockname()[1]
    assert c.cmd("MAIL FROM:<a@example.net>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: " + token.encode() + b"\r\n\r\nx\r\n.\r\n")
    assert c.read_reply().code == 250
    c.cmd("QUIT")
    got = exim.wait_messages(token)[0]
    assert b"by mx9.example.org (starttls-proxy" in got, got[:600]


def test_hostname_key_must_be_a_host_name(proxy_factory, sink):
    p = proxy_factory(sink, top={"hostname": "bad host"}, start=False)
    r = helpers.run_cli(["-t", "-c", p.conf_path])
    assert r.returncode == 1 and "hostname" in r.out, r.out
