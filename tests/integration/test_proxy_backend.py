"""Telling the backend who the client is (issue 4 items 5-7, SPEC §4 "PROXY
out"): a real exim with hosts_proxy logs the address a PROXY header from
the load balancer claimed; implicit TLS (tls_mode = "implicit") relays a
whole message, and PROXY v2 to the backend carries the TLS facts as TLVs."""

import re
import socket
import struct
import uuid

import pytest

import helpers
from sink import PROXY_V2_SIG

CLAIMED = "198.51.100.23"
LB_HEADER = b"PROXY TCP4 198.51.100.23 192.0.2.25 40123 25\r\n"


def token():
    return "tok" + uuid.uuid4().hex[:16]


# -- PROXY v2 parsing ----------------------------------------------------------

def parse_v2(h):
    """{"cmd", "fam", "src", "dst", "sport", "dport", "tlvs": [(type,
    value)]} of one whole PROXY v2 header (IPv4)."""
    assert h[:12] == PROXY_V2_SIG, h
    (length,) = struct.unpack("!H", h[14:16])
    assert len(h) == 16 + length, (len(h), length, h)
    out = {"cmd": h[12], "fam": h[13]}
    assert out["fam"] == 0x11, "not TCP over IPv4: %r" % h
    src, dst, sport, dport = struct.unpack("!4s4sHH", h[16:28])
    out.update(src=socket.inet_ntoa(src), dst=socket.inet_ntoa(dst),
               sport=sport, dport=dport)
    out["tlvs"] = parse_tlvs(h[28:])
    return out


def parse_tlvs(b):
    tlvs, i = [], 0
    while i < len(b):
        assert i + 3 <= len(b), "truncated TLV header at %d: %r" % (i, b)
        t = b[i]
        (n,) = struct.unpack("!H", b[i + 1:i + 3])
        assert i + 3 + n <= len(b), "TLV 0x%02x overruns: %r" % (t, b)
        tlvs.append((t, b[i + 3:i + 3 + n]))
        i += 3 + n
    return tlvs


def ssl_tlv(tlvs):
    """(client flags, verify, [(subtype, value)]) of the PP2_TYPE_SSL
    TLV, which must be there exactly once."""
    ssl = [v for t, v in tlvs if t == 0x20]
    assert len(ssl) == 1, "PP2_TYPE_SSL TLVs: %r" % tlvs
    v = ssl[0]
    assert len(v) >= 5, v
    (verify,) = struct.unpack("!I", v[1:5])
    return v[0], verify, parse_tlvs(v[5:])


def one(tlvs, t):
    vals = [v for tt, v in tlvs if tt == t]
    assert len(vals) == 1, "TLV 0x%02x: %r in %r" % (t, vals, tlvs)
    return vals[0]


def implicit_client(port, ctx, sni, before_tls=b""):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    if before_tls:
        raw.sendall(before_tls)
    cport = raw.getsockname()[1]
    tls = ctx.wrap_socket(raw, server_hostname=sni)
    c = helpers.Client(port, sock=tls)
    c.client_port = cport
    return c


def send_message(c, content, mail_from="<a@example.org>",
                 rcpt="<b@example.org>"):
    for line, code in (("MAIL FROM:" + mail_from, 250),
                       ("RCPT TO:" + rcpt, 250), ("DATA", 354)):
        r = c.cmd(line)
        assert r.code == code, (line, r)
    c.send(helpers.dot_stuff(content) + b".\r\n")
    r = c.read_reply()
    assert r.code == 250, r
    return r


# -- implicit TLS to the sink --------------------------------------------------

def test_implicit_tls_relays_a_message_with_v2_tls_tlvs(
        sink_factory, proxy_factory, certs, tls_ctx):
    sink = sink_factory(expect_proxy="v2")
    proxy = proxy_factory(sink, listener={
        "tls_mode": "implicit", "backend": {"proxy_protocol": "v2"}})
    c = implicit_client(proxy.port, tls_ctx, "mx2.example.org")
    try:
        assert c.sock.getpeercert(binary_form=True) == certs.der("mx2")
        version, cipher = c.sock.version(), c.sock.cipher()[0]
        assert version == "TLSv1.3"
        assert c.greeting().raw == b"220 sink.test ESMTP RecordingSink ready\r\n"
        r = c.ehlo()
        assert "STARTTLS" not in r.keywords(), r
        content = (b"Subject: implicit\r\n\r\nover TLS from the first byte\r\n"
                   b".leading dot\r\n")
        send_message(c, content)
        assert c.cmd("QUIT").code == 221
    finally:
        c.close()

    (m,) = sink.completed_messages()
    hdr, rest = helpers.split_received(bytes(m.content))
    assert rest == helpers.dot_stuff(content)
    for needle in (b"127.0.0.1", b"mx", version.encode(), cipher.encode(),
                   b"mx2.example.org"):
        assert needle in hdr, (needle, hdr)

    (s,) = sink.all_sessions()
    h = parse_v2(s.proxy_header)
    assert h["cmd"] == 0x21, h
    assert (h["src"], h["sport"]) == ("127.0.0.1", c.client_port), h
    assert (h["dst"], h["dport"]) == ("127.0.0.1", proxy.port), h
    assert one(h["tlvs"], 0x02) == b"mx2.example.org"       # AUTHORITY = SNI
    client, verify, subs = ssl_tlv(h["tlvs"])
    assert client & 0x01, "PP2_CLIENT_SSL not set: %r" % client
    assert not client & 0x06, "no client certificate was sent: %r" % client
    assert verify != 0, "verify must be non-zero without a client cert"
    assert one(subs, 0x21) == b"TLSv1.3"                    # SSL_VERSION
    assert one(subs, 0x23) == cipher.encode()               # SSL_CIPHER
    assert not [v for t, v in subs if t == 0x22], subs      # no SSL_CN


def test_implicit_tls_behind_lb_v2_carries_claimed_source_and_client_cn(
        sink_factory, proxy_factory, certs):
    sink = sink_factory(expect_proxy="v2")
    proxy = proxy_factory(sink, listener={
        "tls_mode": "implicit", "proxy_protocol": True,
        "backend": {"proxy_protocol": "v2"},
        "tls": {"client_ca": certs.ca, "verify_client": "optional"}})
    ctx = certs.client_context()
    ctx.load_cert_chain(certs.cert("client"), certs.key("client"))
    c = implicit_client(proxy.port, ctx, "mx1.example.org",
                        before_tls=LB_HEADER)
    try:
        assert c.greeting().code == 220
        c.ehlo()
        send_message(c, b"Subject: lb\r\n\r\nbehind a balancer\r\n")
        assert c.cmd("QUIT").code == 221
    finally:
        c.close()
    (s,) = sink.all_sessions()
    h = parse_v2(s.proxy_header)
    assert (h["src"], h["sport"]) == (CLAIMED, 40123), h
    assert (h["dst"], h["dport"]) == ("192.0.2.25", 25), h
    assert one(h["tlvs"], 0x02) == b"mx1.example.org"
    client, verify, subs = ssl_tlv(h["tlvs"])
    assert client & 0x01, client
    assert client & 0x02, "PP2_CLIENT_CERT_CONN not set: %r" % client
    assert verify == 0, "client certificate verified, verify must be 0"
    assert one(subs, 0x21) == b"TLSv1.3"
    assert one(subs, 0x22) == b"client.example.org"          # SSL_CN
    (m,) = sink.completed_messages()
    hdr, _ = helpers.split_received(bytes(m.content))
    assert CLAIMED.encode() in hdr, hdr
    assert b"client.example.org" in hdr, hdr


# -- a real exim with hosts_proxy -----------------------------------------------

@pytest.mark.parametrize("version,mode", [("v1", "starttls"),
                                          ("v2", "starttls"),
                                          ("v2", "implicit")])
def test_exim_hosts_proxy_sees_the_claimed_client_address(
        exim_proxy, proxy_factory, certs, tls_ctx, version, mode):
    proxy = proxy_factory(exim_proxy, listener={
        "proxy_protocol": True, "tls_mode": mode,
        "backend": {"proxy_protocol": version}})
    tok = token()
    if mode == "implicit":
        c = implicit_client(proxy.port, tls_ctx, "mx1.example.org",
                            before_tls=LB_HEADER)
    else:
        c = helpers.Client(proxy.port)
        c.send(LB_HEADER)
    try:
        g = c.greeting()
        assert b"Exim" in g.raw, g
        r = c.ehlo()
        # exim greets the address the PROXY header gave it.
        assert "[%s]" % CLAIMED in r.texts[0], r
        if mode == "starttls":
            c.starttls(tls_ctx, "mx1.example.org")
            c.ehlo()
        content = b"Subject: %s\r\n\r\nthrough hosts_proxy\r\n" % tok.encode()
        send_message(c, content, mail_from="<%s@example.org>" % tok,
                     rcpt="<pp@example.org>")
        assert c.cmd("QUIT").code == 221
    finally:
        c.close()

    (delivered,) = exim_proxy.wait_messages(tok)
    exim_hdr, rest = helpers.exim_headers_and_rest(delivered)
    (exim_received,) = helpers.received_headers(exim_hdr)
    assert "[%s]" % CLAIMED in exim_received, exim_received
    assert "127.0.0.1" not in exim_received, exim_received
    # The proxy's own Received header names the claimed client too.
    proxy_received = helpers.received_headers(rest)[0]
    assert CLAIMED in proxy_received, proxy_received

    log = exim_proxy.mainlog()
    arrivals = [l for l in log.splitlines()
                if " <= %s@example.org " % tok in l]
    assert len(arrivals) == 1, log[-3000:]
    assert re.search(r"\bH=\S* ?\[%s\]" % re.escape(CLAIMED), arrivals[0]), \
        arrivals[0]
    assert "127.0.0.1" not in arrivals[0], arrivals[0]
