"""Certificate choice by SNI (SPEC §5): exact name, then a one-label
wildcard, else the listener's default (the first certificate)."""

import socket
import ssl
import subprocess

import pytest

import helpers


def s_client_leaf(port, certs, servername=None):
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
            "-starttls", "smtp", "-CAfile", certs.ca]
    if servername is None:
        argv.append("-noservername")
    else:
        argv += ["-servername", servername]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    out = r.stdout.decode(errors="replace")
    assert "-----BEGIN CERTIFICATE-----" in out, (
        "s_client got no certificate (rc %d):\n%s\n%s"
        % (r.returncode, out, r.stderr.decode(errors="replace")))
    return helpers.normalise_pem(out)


def python_leaf_der(port, certs, servername):
    c = helpers.Client(port)
    try:
        c.greeting()
        c.ehlo()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(certs.ca)
        ctx.check_hostname = False      # we compare the certificate itself
        c.starttls(ctx, server_hostname=servername)
        return c.sock.getpeercert(binary_form=True)
    finally:
        c.close()


@pytest.mark.parametrize("servername,expected", [
    ("mx1.example.org", "mx1"),
    ("mx2.example.org", "mx2"),
    (None, "mx1"),
    ("unknown.example.net", "mx1"),
    ("a.wild.example.org", "wild"),
], ids=["mx1", "mx2", "no-sni", "unknown-name", "wildcard"])
def test_s_client_sni_selects_certificate(sink, proxy_factory, certs,
                                          servername, expected):
    proxy = proxy_factory(sink)
    assert s_client_leaf(proxy.port, certs, servername) == certs.pem(expected)


@pytest.mark.parametrize("servername,expected", [
    ("MX2.Example.ORG", "mx2"),
    ("mx2.example.org.", "mx2"),
    ("b.WILD.example.org", "wild"),
    ("x.y.wild.example.org", "mx1"),
    ("wild.example.org", "mx1"),
], ids=["case-insensitive", "trailing-dot", "wildcard-case",
        "wildcard-one-label-only", "wildcard-not-apex"])
def test_sni_name_matching_rules(sink, proxy_factory, certs, servername,
                                 expected):
    proxy = proxy_factory(sink)
    assert python_leaf_der(proxy.port, certs, servername) == \
        certs.der(expected)


def test_default_certificate_is_first_in_list(sink, proxy_factory, certs):
    proxy = proxy_factory(sink, certificates=[
        {"cert": certs.cert("mx2"), "key": certs.key("mx2")},
        {"cert": certs.cert("mx1"), "key": certs.key("mx1")},
    ])
    assert s_client_leaf(proxy.port, certs, None) == certs.pem("mx2")
    assert s_client_leaf(proxy.port, certs, "mx1.example.org") == \
        certs.pem("mx1")


def test_configured_names_override_certificate_names(sink, proxy_factory,
                                                     certs):
    proxy = proxy_factory(sink, certificates=[
        {"cert": certs.cert("mx1"), "key": certs.key("mx1")},
        {"cert": certs.cert("mx2"), "key": certs.key("mx2"),
         "names": ["alias.example.com"]},
    ])
    assert python_leaf_der(proxy.port, certs, "alias.example.com") == \
        certs.der("mx2")


def test_hostname_verification_succeeds_for_each_mx_name(
        sink, proxy_factory, connect, certs):
    """What a verifying sender does: check the certificate against the MX
    host name it connected to."""
    proxy = proxy_factory(sink)
    for name in ("mx1.example.org", "mx2.example.org", "z.wild.example.org"):
        c = connect(proxy)
        c.ehlo()
        c.starttls(certs.client_context(), server_hostname=name)
        assert c.ehlo().code == 250
        c.close()
