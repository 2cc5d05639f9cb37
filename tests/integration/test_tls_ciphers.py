"""TLS cipher and version defaults (SPEC §3, issue 8 items 7 and 10).

ciphers = "" means ECDHE with AES-GCM or ChaCha20-Poly1305 only, AES-128
first, no CBC (LUCKY13), in the server's order; ciphersuites = "" puts
TLS_AES_128_GCM_SHA256 first.  A listener with min_version below TLSv1.2
must really complete TLS 1.0 and 1.1 handshakes (OpenSSL 3 and Debian's
security level refuse their SHA-1 and MD5+SHA-1 signatures unless told),
with the CBC suites those versions need, while TLS 1.2 sessions on the same
listener keep the full security level.

The clients are the openssl command line tool (s_client -starttls smtp) and
Python's ssl module; both need "@SECLEVEL=0" on their side to even offer
TLS 1.0 or 1.1 on Debian 12.
"""

import re
import ssl
import subprocess
import warnings

import pytest

SNI = "mx1.example.org"
OLD = "DEFAULT:@SECLEVEL=0"     # what an old-TLS client needs on Debian 12


def s_client(proxy, *args):
    """One STARTTLS handshake by openssl s_client; returns (ok, protocol,
    cipher, output).  stdin is empty, so it ends right after the
    handshake."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % proxy.port,
           "-starttls", "smtp", "-servername", SNI, "-brief"] + list(args)
    r = subprocess.run(cmd, input=b"", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode("utf-8", "replace")
    proto = re.search(r"^Protocol version: (\S+)", out, re.M)
    cipher = re.search(r"^Ciphersuite: (\S+)", out, re.M)
    ok = r.returncode == 0 and proto is not None and cipher is not None
    return (ok, proto.group(1) if proto else None,
            cipher.group(1) if cipher else None, out)


def py_session(connect, proxy, ctx):
    """STARTTLS with ctx, then EHLO over TLS; returns (version, cipher)."""
    c = connect(proxy)
    c.ehlo()
    c.starttls(ctx, SNI)
    assert c.ehlo().code == 250
    return c.sock.version(), c.sock.cipher()[0]


def old_context(certs, version):
    ctx = certs.client_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    ctx.set_ciphers(OLD)
    return ctx


def rsa_only(certs):
    return [{"cert": certs.cert("mx1-rsa"), "key": certs.key("mx1-rsa")}]


# -- item 7: AEAD only, AES-128 first, server's order -------------------------

def test_default_tls12_prefers_aes128_gcm_over_the_clients_aes256(
        sink, proxy_factory, connect, certs):
    proxy = proxy_factory(sink)
    ctx = certs.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    # The client's own order puts AES-256 and ChaCha20 first.
    ctx.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384:"
                    "ECDHE-ECDSA-CHACHA20-POLY1305:"
                    "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert py_session(connect, proxy, ctx) == (
        "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")


def test_default_tls12_openssl_client_offering_everything_gets_aes128_gcm(
        sink, proxy_factory):
    ok, proto, cipher, out = s_client(proxy_factory(sink), "-tls1_2")
    assert ok, out
    assert (proto, cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")


@pytest.mark.parametrize("cipher", [
    "ECDHE-ECDSA-AES128-SHA256",    # TLS 1.2 CBC with SHA-256 (LUCKY13)
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-ECDSA-AES128-SHA",       # CBC with SHA-1
    "ECDHE-ECDSA-AES256-SHA",
])
def test_default_refuses_cbc_suites(sink, proxy_factory, cipher):
    ok, _, _, out = s_client(proxy_factory(sink), "-tls1_2",
                             "-cipher", cipher)
    assert not ok, out


def test_default_refuses_cbc_with_an_rsa_certificate(sink, proxy_factory,
                                                     certs):
    proxy = proxy_factory(sink, certificates=rsa_only(certs))
    ok, _, _, out = s_client(proxy, "-tls1_2", "-cipher",
                             "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES128-SHA")
    assert not ok, out
    ok, proto, cipher, out = s_client(proxy, "-tls1_2")
    assert ok, out
    assert cipher == "ECDHE-RSA-AES128-GCM-SHA256", out


def test_default_tls12_chacha20_only_client_is_served(sink, proxy_factory):
    ok, proto, cipher, out = s_client(
        proxy_factory(sink), "-tls1_2", "-cipher",
        "ECDHE-ECDSA-CHACHA20-POLY1305")
    assert ok, out
    assert cipher == "ECDHE-ECDSA-CHACHA20-POLY1305", out


def test_default_tls13_prefers_aes128_gcm_over_the_clients_aes256(
        sink, proxy_factory):
    ok, proto, cipher, out = s_client(
        proxy_factory(sink), "-tls1_3", "-ciphersuites",
        "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"
        "TLS_AES_128_GCM_SHA256")
    assert ok, out
    assert (proto, cipher) == ("TLSv1.3", "TLS_AES_128_GCM_SHA256")


@pytest.mark.parametrize("suite", ["TLS_AES_256_GCM_SHA384",
                                   "TLS_CHACHA20_POLY1305_SHA256"])
def test_default_tls13_serves_the_other_suites_too(sink, proxy_factory,
                                                    suite):
    ok, proto, cipher, out = s_client(proxy_factory(sink), "-tls1_3",
                                      "-ciphersuites", suite)
    assert ok, out
    assert cipher == suite, out


def test_configured_ciphers_and_suites_replace_the_defaults(
        sink, proxy_factory):
    proxy = proxy_factory(sink, listener={"tls": {
        "ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA",
        "ciphersuites": "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
    }})
    ok, _, cipher, out = s_client(proxy, "-tls1_2")
    assert ok and cipher == "ECDHE-ECDSA-AES256-GCM-SHA384", out
    # The operator asked for a CBC suite: it is theirs to have.
    ok, _, cipher, out = s_client(proxy, "-tls1_2", "-cipher",
                                  "ECDHE-ECDSA-AES128-SHA")
    assert ok and cipher == "ECDHE-ECDSA-AES128-SHA", out
    ok, _, cipher, out = s_client(proxy, "-tls1_3")
    assert ok and cipher == "TLS_CHACHA20_POLY1305_SHA256", out


# -- item 10: min_version below TLSv1.2 really works ---------------------------

@pytest.mark.parametrize("flag,proto", [("-tls1", "TLSv1"),
                                        ("-tls1_1", "TLSv1.1")])
@pytest.mark.parametrize("key", ["ec", "rsa"])
def test_old_tls_versions_work_when_allowed(sink, proxy_factory, certs,
                                            flag, proto, key):
    proxy = proxy_factory(
        sink, listener={"tls": {"min_version": "TLSv1"}},
        certificates=rsa_only(certs) if key == "rsa" else None)
    ok, got, cipher, out = s_client(proxy, flag, "-cipher", OLD)
    assert ok, out
    assert got == proto, out
    # CBC is all TLS 1.0/1.1 have; the default adds only ECDHE ones.
    want = "ECDHE-RSA-AES128-SHA" if key == "rsa" else "ECDHE-ECDSA-AES128-SHA"
    assert cipher == want, out


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_old_tls_versions_refused_by_default(sink, proxy_factory, flag):
    ok, _, _, out = s_client(proxy_factory(sink), flag, "-cipher", OLD)
    assert not ok, out


def test_min_version_tlsv1_1_refuses_tlsv1(sink, proxy_factory):
    proxy = proxy_factory(sink, listener={"tls": {"min_version": "TLSv1.1"}})
    ok, got, _, out = s_client(proxy, "-tls1_1", "-cipher", OLD)
    assert ok and got == "TLSv1.1", out
    ok, _, _, out = s_client(proxy, "-tls1", "-cipher", OLD)
    assert not ok, out


@pytest.mark.parametrize("version,name", [
    (ssl.TLSVersion.TLSv1, "TLSv1"), (ssl.TLSVersion.TLSv1_1, "TLSv1.1")])
def test_old_tls_python_client_delivers_a_message(sink, proxy_factory,
                                                  connect, certs, version,
                                                  name):
    proxy = proxy_factory(sink, listener={"tls": {"min_version": "TLSv1"}})
    c = connect(proxy)
    c.ehlo()
    c.starttls(old_context(certs, version), SNI)
    assert c.sock.version() == name
    assert c.ehlo().code == 250
    assert c.cmd("MAIL FROM:<old@example.org>").code == 250
    assert c.cmd("RCPT TO:<rcpt@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: old tls\r\n\r\nhello from %s\r\n.\r\n" % name.encode())
    assert c.read_reply().code == 250
    assert sink.wait_for(lambda: len(sink.completed_messages()) == 1, 10)
    assert b"hello from " + name.encode() in sink.all_raw()


def test_old_tls_listener_still_gives_tls12_clients_aead(sink, proxy_factory):
    proxy = proxy_factory(sink, listener={"tls": {"min_version": "TLSv1"}})
    ok, got, cipher, out = s_client(proxy, "-tls1_2")
    assert ok, out
    assert (got, cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    ok, got, cipher, out = s_client(proxy, "-tls1_3")
    assert ok and (got, cipher) == ("TLSv1.3", "TLS_AES_128_GCM_SHA256"), out


@pytest.mark.parametrize("key,sigalgs", [("ec", "ECDSA+SHA1"),
                                         ("rsa", "RSA+SHA1")])
def test_old_tls_listener_keeps_sha1_signatures_out_of_tls12(
        sink, proxy_factory, certs, key, sigalgs):
    """The security level is lowered for TLS 1.0/1.1 handshakes only: a
    TLS 1.2 client that can verify nothing but SHA-1 signatures is still
    refused (at security level 0 it would be served)."""
    proxy = proxy_factory(
        sink, listener={"tls": {"min_version": "TLSv1"}},
        certificates=rsa_only(certs) if key == "rsa" else None)
    ok, got, _, out = s_client(proxy, "-tls1_2", "-cipher", OLD,
                               "-sigalgs", sigalgs)
    assert not ok, out
