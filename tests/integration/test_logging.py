"""One log line per session (SPEC §6), text and JSON."""

import json
import re
import signal

import pytest

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


LEVELS = {"error", "warning", "info", "debug"}


def exercise(proxy, connect):
    """A refusal, a session, a good and a bad reload, a stop: events of
    every kind and level."""
    c = connect(proxy)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 530
    c.cmd("QUIT")
    c.read_until_closed(5)
    proxy.signal(signal.SIGHUP)
    assert helpers.wait_until(lambda: "reload done" in proxy.stderr(), 10), \
        proxy.stderr()
    good = open(proxy.conf_path).read()
    with open(proxy.conf_path, "w") as f:
        f.write(good + "requre_tls = true;\n")
    proxy.signal(signal.SIGHUP)
    assert helpers.wait_until(lambda: "did you mean" in proxy.stderr(), 10), \
        proxy.stderr()
    proxy.signal(signal.SIGTERM)
    assert proxy.proc.wait(10) == 0, proxy.stderr()


def test_json_every_event_is_one_object_with_one_level_spelling(
        sink, proxy_factory, connect):
    proxy = proxy_factory(sink, top={"log": {"level": "debug",
                                             "format": "json"}},
                          listener={"policy": {"require_tls": True}})
    exercise(proxy, connect)
    objs = []
    for line in proxy.stderr().splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                        obj.get("ts", "")), line
        assert obj.get("level") in LEVELS, line
        assert ("msg" in obj) != ("event" in obj), line
        objs.append(obj)
    levels = {o["level"] for o in objs}
    assert {"error", "info", "debug"} <= levels, levels
    sessions = [o for o in objs if o.get("event") == "session"]
    assert sessions, objs
    for k in ("id", "client", "listener", "backend", "messages",
              "refusals", "end", "duration"):
        assert k in sessions[-1], (k, sessions[-1])
    assert sessions[-1]["refusals"] >= 1, sessions[-1]
    # The config error of the failed reload, as an error object.
    bad = [o for o in objs if "did you mean" in o.get("msg", "")]
    assert bad and bad[0]["level"] == "error", objs
    assert re.search(r"\.conf:\d+: unknown key 'requre_tls'",
                     bad[0]["msg"]), bad


def test_text_every_line_has_timestamp_and_level(sink, proxy_factory,
                                                 connect):
    proxy = proxy_factory(sink, top={"log": {"level": "debug",
                                             "format": "text"}},
                          listener={"policy": {"require_tls": True}})
    exercise(proxy, connect)
    for line in proxy.stderr().splitlines():
        if not line.strip():
            continue
        m = re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                     r"(\w+)[: ]", line)
        assert m and m.group(1) in LEVELS, line


@pytest.mark.parametrize("level", ["warn", "WARNING", "err", "notice"])
def test_log_level_has_one_spelling(stp_bin, certs, tmp_path, level):
    conf = tmp_path / "lvl.conf"
    cfg = helpers.base_config(certs, helpers.free_port(),
                              "127.0.0.1:%d" % helpers.closed_port())
    cfg["log"] = {"level": level, "format": "json"}
    conf.write_text(helpers.to_libconfig(cfg))
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 1, r.out
    assert 'log.level must be one of "error", "warning", "info" or ' \
        '"debug"' in r.out, r.out
