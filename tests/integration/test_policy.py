"""The policy module: require_tls, tls_required_domains and "insufficient"
TLS (SPEC §3 policy, §4 table)."""

import ssl

import pytest


def test_require_tls_refuses_mail_before_tls(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"policy": {"require_tls": True}})
    c = connect(proxy)
    c.ehlo()
    r = c.cmd("MAIL FROM:<a@example.org>")
    assert (r.code, r.enhanced) == (530, "5.7.0"), r
    assert "Must issue a STARTTLS command first" in r.text
    c.cmd("QUIT")
    assert sink.wait_closed()
    assert not any(l.upper().startswith(b"MAIL") for l in sink.all_commands())


@pytest.mark.parametrize("cmd", ["RCPT TO:<b@example.org>", "DATA",
                                 "VRFY postmaster",
                                 "AUTH PLAIN AGFhAGI=", "HELP"])
def test_require_tls_refuses_other_commands_before_tls(
        sink, proxy_factory, connect, cmd):
    proxy = proxy_factory(sink, listener={"policy": {"require_tls": True}})
    c = connect(proxy)
    c.ehlo()
    r = c.cmd(cmd)
    assert (r.code, r.enhanced) == (530, "5.7.0"), r
    assert c.cmd("NOOP").code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    verb = cmd.split()[0].encode()
    assert verb not in [v for s in sink.all_sessions() for v in s.verbs()]


def test_require_tls_allows_the_permitted_commands(sink, proxy_factory,
                                                   connect, tls_ctx):
    proxy = proxy_factory(sink, listener={"policy": {"require_tls": True}})
    c = connect(proxy)
    assert c.cmd("HELO client.test").code == 250
    assert c.cmd("EHLO client.test").code == 250
    assert c.cmd("NOOP").code == 250
    assert c.cmd("RSET").code == 250
    c.starttls(tls_ctx)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    r = c.cmd("QUIT")
    assert r.code == 221


def test_require_tls_with_before_tls_code_554(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={
        "policy": {"require_tls": True, "before_tls_code": 554}})
    c = connect(proxy)
    c.ehlo()
    r = c.cmd("MAIL FROM:<a@example.org>")
    assert (r.code, r.enhanced) == (554, "5.7.0"), r


@pytest.mark.parametrize("rcpt,refused", [
    ("x@example.net", True),
    ("x@EXAMPLE.NET", True),
    ("x@sub.secure.example", True),
    ("x@deep.sub.secure.example", True),
    ("x@secure.example", False),
    ("x@notexample.net", False),
    ("x@example.net.other", False),
    ('"odd@example.org"@example.net', True),
    ('"odd@example.net"@example.org', False),
])
def test_tls_required_domains_without_tls(sink, proxy_factory, connect,
                                          rcpt, refused):
    proxy = proxy_factory(sink, listener={"policy": {
        "tls_required_domains": ["example.net", ".secure.example"]}})
    c = connect(proxy)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    if refused:
        assert (r.code, r.enhanced) == (530, "5.7.0"), r
    else:
        assert r.raw == b"250 2.1.5 Ok\r\n", r
    c.cmd("QUIT")
    assert sink.wait_closed()
    rcpts = [l for l in sink.all_commands() if l.upper().startswith(b"RCPT")]
    assert len(rcpts) == (0 if refused else 1), rcpts


def test_tls_required_domains_relayed_after_tls(sink, proxy_factory, connect,
                                                tls_ctx):
    proxy = proxy_factory(sink, listener={"policy": {
        "tls_required_domains": ["example.net", ".secure.example"]}})
    c = connect(proxy)
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    for rcpt in ("x@example.net", "y@sub.secure.example", "z@secure.example"):
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.raw == b"250 2.1.5 Ok\r\n", r
    c.cmd("QUIT")
    assert sink.wait_closed()
    rcpts = [l for l in sink.all_commands() if l.upper().startswith(b"RCPT")]
    assert len(rcpts) == 3


def test_tls_required_domain_with_before_tls_code_554(sink, proxy_factory,
                                                      connect):
    proxy = proxy_factory(sink, listener={"policy": {
        "tls_required_domains": ["example.net"], "before_tls_code": 554}})
    c = connect(proxy)
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.org>")
    r = c.cmd("RCPT TO:<x@example.net>")
    assert (r.code, r.enhanced) == (554, "5.7.0"), r


def _insufficient_session(proxy, connect, ctx):
    c = connect(proxy)
    c.ehlo()
    c.starttls(ctx)
    return c


def test_policy_min_version_refuses_everything_but_quit(
        sink, proxy_factory, connect, certs):
    proxy = proxy_factory(sink, listener={
        "policy": {"min_version": "TLSv1.3"}})
    c = _insufficient_session(
        proxy, connect, certs.client_context(maximum=ssl.TLSVersion.TLSv1_2))
    assert c.sock.version() == "TLSv1.2"
    for cmd in ("EHLO client.test", "HELO client.test", "NOOP", "RSET",
                "MAIL FROM:<a@example.org>", "STARTTLS"):
        r = c.cmd(cmd)
        assert (r.code, r.enhanced) == (554, "5.7.0"), (cmd, r)
    r = c.cmd("QUIT")
    assert (r.code, r.enhanced) == (221, "2.0.0"), r
    assert c.read_until_closed(5) == b""
    assert sink.wait_closed()
    verbs = [v for s in sink.all_sessions() for v in s.verbs()]
    assert verbs.count(b"EHLO") == 1, sink.all_commands()   # the plain one
    assert b"MAIL" not in verbs


def test_policy_min_version_satisfied_by_tls13(sink, proxy_factory, connect,
                                               tls_ctx):
    proxy = proxy_factory(sink, listener={
        "policy": {"min_version": "TLSv1.3"}})
    c = _insufficient_session(proxy, connect, tls_ctx)
    assert c.ehlo().code == 250
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250


def test_policy_reject_code_530(sink, proxy_factory, connect, certs):
    proxy = proxy_factory(sink, listener={
        "policy": {"min_version": "TLSv1.3", "reject_code": 530}})
    c = _insufficient_session(
        proxy, connect, certs.client_context(maximum=ssl.TLSVersion.TLSv1_2))
    r = c.cmd("EHLO client.test")
    assert (r.code, r.enhanced) == (530, "5.7.0"), r


def test_policy_min_cipher_bits(sink, proxy_factory, connect, certs):
    proxy = proxy_factory(sink, listener={"policy": {"min_cipher_bits": 256}})
    weak = certs.client_context(maximum=ssl.TLSVersion.TLSv1_2,
                                ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    c = _insufficient_session(proxy, connect, weak)
    assert c.sock.cipher()[2] == 128
    r = c.cmd("EHLO client.test")
    assert (r.code, r.enhanced) == (554, "5.7.0"), r

    strong = certs.client_context(maximum=ssl.TLSVersion.TLSv1_2,
                                  ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
    c2 = _insufficient_session(proxy, connect, strong)
    assert c2.sock.cipher()[2] == 256
    assert c2.ehlo().code == 250


def test_policy_require_client_cert_without_one(sink, proxy_factory,
                                                connect, certs, tls_ctx):
    proxy = proxy_factory(sink, listener={
        "policy": {"require_client_cert": True}})
    c = _insufficient_session(proxy, connect, tls_ctx)
    r = c.cmd("EHLO client.test")
    assert (r.code, r.enhanced) == (554, "5.7.0"), r
