"""Certificate handling beyond SNI (SPEC §5): key types, client
certificates, expiry."""

import ssl

import pytest

import helpers


def handshake(proxy, ctx, sni="mx1.example.org"):
    c = helpers.Client(proxy.port)
    c.greeting()
    c.ehlo()
    c.starttls(ctx, server_hostname=sni)
    return c


def test_rsa_or_ecdsa_certificate_chosen_by_client_capability(
        sink, proxy_factory, certs):
    proxy = proxy_factory(sink, certificates=[
        {"cert": certs.cert("mx1"), "key": certs.key("mx1")},
        {"cert": certs.cert("mx1-rsa"), "key": certs.key("mx1-rsa")},
    ])
    rsa_only = certs.client_context(maximum=ssl.TLSVersion.TLSv1_2,
                                    ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    c = handshake(proxy, rsa_only)
    assert c.sock.getpeercert(binary_form=True) == certs.der("mx1-rsa")
    c.close()
    ec_only = certs.client_context(maximum=ssl.TLSVersion.TLSv1_2,
                                   ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    c = handshake(proxy, ec_only)
    assert c.sock.getpeercert(binary_form=True) == certs.der("mx1")
    c.close()


def _client_cert_ctx(certs):
    ctx = certs.client_context()
    ctx.load_cert_chain(certs.cert("client"), certs.key("client"))
    return ctx


def test_client_certificate_subject_in_received_header(
        sink, proxy_factory, certs):
    proxy = proxy_factory(sink, listener={"tls": {
        "client_ca": certs.ca, "verify_client": "optional"}})
    c = handshake(proxy, _client_cert_ctx(certs))
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@example.org>")
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: cc\r\n\r\nx\r\n.\r\n")
    assert c.read_reply().code == 250
    c.close()
    assert sink.wait_for(lambda: sink.completed_messages())
    (m,) = sink.completed_messages()
    hdr, _ = helpers.split_received(bytes(m.content))
    assert b"client.example.org" in hdr, hdr


def test_require_client_cert_satisfied_by_verified_certificate(
        sink, proxy_factory, certs):
    proxy = proxy_factory(sink, listener={
        "tls": {"client_ca": certs.ca, "verify_client": "optional"},
        "policy": {"require_client_cert": True}})
    c = handshake(proxy, _client_cert_ctx(certs))
    assert c.ehlo().code == 250
    c.close()
    c = handshake(proxy, certs.client_context())
    r = c.cmd("EHLO client.test")
    assert (r.code, r.enhanced) == (554, "5.7.0"), r
    c.close()


def test_verify_client_required_refuses_handshake_without_cert(
        sink, proxy_factory, certs):
    proxy = proxy_factory(sink, listener={"tls": {
        "client_ca": certs.ca, "verify_client": "required"}})
    with pytest.raises((ssl.SSLError, EOFError, ConnectionError, OSError)):
        c = handshake(proxy, certs.client_context())
        # TLS 1.3: the server's refusal arrives after the client finished.
        c.ehlo()


def test_check_warns_about_certificate_expiring_soon(stp_bin, certs,
                                                     tmp_path):
    conf = tmp_path / "soon.conf"
    cfg = helpers.base_config(certs, helpers.free_port(), "127.0.0.1:2525")
    cfg["listeners"][0]["tls"]["certificates"] = [
        {"cert": certs.cert("soon"), "key": certs.key("soon")}]
    conf.write_text(helpers.to_libconfig(cfg))
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 0, r.out
    assert "expir" in r.out.lower(), r.out


def test_expired_certificate_is_served_at_normal_start(
        sink, proxy_factory, certs):
    proxy = proxy_factory(sink, certificates=[
        {"cert": certs.cert("expired"), "key": certs.key("expired")}])
    assert certs.cert("expired") in proxy.stderr(), proxy.stderr()
    # SPEC §5: logged as an error (but served).
    lines = [ln for ln in proxy.stderr().splitlines()
             if certs.cert("expired") in ln]
    assert any(" error: " in ln and "expired" in ln for ln in lines), lines
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE     # an opportunistic sender
    c = handshake(proxy, ctx, sni=None)
    assert c.sock.getpeercert(binary_form=True) == certs.der("expired")
    assert c.ehlo().code == 250
    c.close()
