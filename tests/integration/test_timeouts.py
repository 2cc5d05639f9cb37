"""Idle and handshake timeouts (SPEC §3 limits.idle_timeout,
tls.handshake_timeout)."""

import time

import pytest


def test_idle_timeout_sends_421_442_and_closes(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"limits": {"idle_timeout": 2}})
    c = connect(proxy)
    t0 = time.monotonic()
    r = c.read_reply()
    elapsed = time.monotonic() - t0
    assert (r.code, r.enhanced) == (421, "4.4.2"), r
    assert 1.0 <= elapsed <= 5.0, elapsed
    assert c.read_until_closed(3) == b""


def test_idle_timeout_with_partial_command_line(sink, proxy_factory,
                                                connect):
    proxy = proxy_factory(sink, listener={"limits": {"idle_timeout": 2}})
    c = connect(proxy)
    c.ehlo()
    t0 = time.monotonic()
    c.send(b"NOO")
    r = c.read_reply()
    assert (r.code, r.enhanced) == (421, "4.4.2"), r
    assert time.monotonic() - t0 <= 5.0
    assert c.read_until_closed(3) == b""


def test_activity_resets_idle_timer(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"limits": {"idle_timeout": 2}})
    c = connect(proxy)
    for _ in range(4):
        time.sleep(1.0)
        assert c.cmd("NOOP").code == 250


def test_idle_timeout_after_tls(sink, proxy_factory, connect, tls_ctx):
    proxy = proxy_factory(sink, listener={"limits": {"idle_timeout": 2}})
    c = connect(proxy)
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    r = c.read_reply()
    assert (r.code, r.enhanced) == (421, "4.4.2"), r


def test_handshake_timeout_closes_connection(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"tls": {"handshake_timeout": 2}})
    c = connect(proxy)
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    t0 = time.monotonic()
    c.read_until_closed(6)
    assert time.monotonic() - t0 <= 6.0
