"""A real third-party client: swaks with STARTTLS and SNI."""

import os
import shutil
import subprocess
import uuid

import pytest

import helpers

pytestmark = pytest.mark.skipif(shutil.which("swaks") is None,
                                reason="swaks not installed")


def run_swaks(port, *extra):
    argv = ["swaks", "--server", "127.0.0.1:%d" % port,
            "--to", "x@example.org", "--from", "y@example.org",
            "--helo", "swaks.client.test", "--timeout", "20"] + list(extra)
    r = subprocess.run(argv, capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    return r, (r.stdout + r.stderr).decode(errors="replace")


def test_swaks_starttls_with_sni_delivers_to_exim(exim, proxy_factory, certs,
                                                  tmp_path):
    proxy = proxy_factory(exim)
    tok = "swaks-" + uuid.uuid4().hex
    peer = str(tmp_path / "peer.pem")
    r, out = run_swaks(proxy.port, "--tls", "--tls-sni", "mx2.example.org",
                       "--tls-get-peer-cert", peer,
                       "--header", "Subject: %s" % tok,
                       "--body", "hello from swaks\n")
    assert r.returncode == 0, out
    assert "STARTTLS" in out
    with open(peer) as f:
        assert helpers.normalise_pem(f.read()) == certs.pem("mx2")
    (got,) = exim.wait_messages(tok)
    assert b"hello from swaks" in got
    _, rest = helpers.exim_headers_and_rest(got)
    hdr, _ = helpers.exim_headers_and_rest(rest)
    assert b"TLSv1.3" in hdr


def test_swaks_pipelining_without_tls(exim, proxy_factory):
    proxy = proxy_factory(exim)
    tok = "swaks-pipe-" + uuid.uuid4().hex
    r, out = run_swaks(proxy.port, "--pipeline",
                       "--header", "Subject: %s" % tok)
    assert r.returncode == 0, out
    exim.wait_messages(tok)


def test_swaks_required_tls_without_starttls_is_refused(sink, proxy_factory):
    proxy = proxy_factory(sink, listener={"policy": {"require_tls": True}})
    r, out = run_swaks(proxy.port)
    assert r.returncode != 0, out
    assert "530 5.7.0" in out, out
