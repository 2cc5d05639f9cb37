"""One log line per session (SPEC §6), text and JSON."""

import json
import re

import helpers


def session_with_tls(proxy, connect, ctx):
    c = connect(proxy)
    c.ehlo()
    c.starttls(ctx, "mx2.example.org")
    c.ehlo()
    cipher = c.sock.cipher()[0]
    version = c.sock.version()
    port = c.sock.getsockname()[1]
    c.cmd("QUIT")
    c.read_until_closed(5)
    return version, cipher, port


def lines_with(proxy, *needles, timeout=5.0):
    found = []

    def look():
        found[:] = [l for l in proxy.stderr().splitlines()
                    if all(n in l for n in needles)]
        return bool(found)

    helpers.wait_until(look, timeout)
    return found


def test_session_log_line_has_client_listener_tls_and_end(
        sink, proxy_factory, connect, tls_ctx):
    proxy = proxy_factory(sink)
    version, cipher, port = session_with_tls(proxy, connect, tls_ctx)
    lines = lines_with(proxy, "127.0.0.1", version, cipher)
    assert lines, proxy.stderr()
    line = lines[-1]
    assert re.search(r"(?<![\w.-])mx(?![\w.-])", line), line
    assert "mx2.example.org" in line, line              # the SNI
    assert re.search(r"quit|end|clos|reason|disconnect", line, re.I), line
    # One summary per session: the client's port appears in one such line.
    if str(port) in line:
        assert len([l for l in lines if str(port) in l]) == 1, lines


def test_one_summary_line_per_session(sink, proxy_factory, connect, tls_ctx):
    proxy = proxy_factory(sink)
    ciphers = []
    for _ in range(3):
        _, cipher, _ = session_with_tls(proxy, connect, tls_ctx)
        ciphers.append(cipher)
    assert helpers.wait_until(
        lambda: len([l for l in proxy.stderr().splitlines()
                     if ciphers[0] in l and "127.0.0.1" in l]) >= 3, 5), \
        proxy.stderr()
    lines = [l for l in proxy.stderr().splitlines()
             if ciphers[0] in l and "127.0.0.1" in l]
    assert len(lines) == 3, lines


def test_session_without_tls_is_logged_too(sink, proxy_factory, connect):
    proxy = proxy_factory(sink)
    c = connect(proxy)
    c.ehlo()
    c.cmd("QUIT")
    c.read_until_closed(5)
    assert lines_with(proxy, "127.0.0.1"), proxy.stderr()


def test_json_log_format_one_object_per_line(sink, proxy_factory, connect,
                                             tls_ctx):
    proxy = proxy_factory(sink, top={"log": {"level": "info",
                                             "format": "json"}})
    version, cipher, _ = session_with_tls(proxy, connect, tls_ctx)
    assert lines_with(proxy, cipher), proxy.stderr()
    objs = []
    for line in proxy.stderr().splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)          # every line is one JSON object
        assert isinstance(obj, dict), line
        objs.append(obj)
    summary = [o for o in objs if cipher in json.dumps(o)]
    assert summary, objs
    text = json.dumps(summary[-1])
    assert "127.0.0.1" in text and version in text, summary[-1]


def test_policy_refusal_is_logged(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"policy": {"require_tls": True}})
    c = connect(proxy)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 530
    c.cmd("QUIT")
    c.read_until_closed(5)
    assert lines_with(proxy, "127.0.0.1"), proxy.stderr()
