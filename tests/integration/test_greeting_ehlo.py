"""Greeting and EHLO rewriting (SPEC §4 "Greeting", "EHLO replies")."""

import helpers

MULTI_GREETING = (b"220-sink.test ESMTP first greeting line\r\n"
                  b"220 RecordingSink second line, relayed verbatim\r\n")


def test_greeting_relayed_byte_for_byte(sink_factory, proxy_factory,
                                        connect):
    sink = sink_factory(greeting=MULTI_GREETING)
    proxy = proxy_factory(sink)
    c = connect(proxy)
    assert c.greeting_reply.raw == MULTI_GREETING


def test_ehlo_before_tls_adds_starttls_and_hides_backend_extensions(
        sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    r = c.ehlo("client.test")
    kws = r.keywords()
    assert r.texts[0] == "sink.test greets client.test"
    assert kws.count("STARTTLS") == 1, r
    for hidden in ("XCLIENT", "XFORWARD", "AUTH"):
        assert hidden not in kws, r
    for kept in ("PIPELINING", "SIZE", "8BITMIME", "CHUNKING",
                 "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN"):
        assert kept in kws, r
    assert "SIZE 52428800" in r.texts, r
    # Every line but the last continues with "250-".
    assert all(l.startswith("250-") for l in r.lines[:-1]), r
    assert r.lines[-1].startswith("250 "), r


def test_ehlo_after_tls_shows_auth_and_no_starttls(sink, proxy_factory,
                                                   connect, tls_ctx):
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.starttls(tls_ctx)
    r = c.ehlo("client.test")
    kws = r.keywords()
    assert "STARTTLS" not in kws, r
    assert "AUTH" in kws, r
    assert "AUTH PLAIN LOGIN" in r.texts, r
    assert "XCLIENT" not in kws and "XFORWARD" not in kws, r
    for kept in ("PIPELINING", "SIZE", "8BITMIME", "CHUNKING"):
        assert kept in kws, r


def test_auth_shown_before_tls_when_hide_auth_before_tls_is_false(
        sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={
        "policy": {"hide_auth_before_tls": False}})
    c = connect(proxy)
    r = c.ehlo()
    assert "AUTH PLAIN LOGIN" in r.texts, r
    assert "STARTTLS" in r.keywords(), r


def test_auth_before_tls_is_refused_and_never_reaches_the_backend(
        sink, proxy_factory, connect, tls_ctx):
    """hide_auth_before_tls (default): AUTH sent anyway before TLS is the
    proxy's before_tls_code 5.7.0; after TLS it is the backend's."""
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = c.cmd("AUTH PLAIN AHVzZXIAc2VjcmV0")
    assert (r.code, r.enhanced) == (530, "5.7.0"), r
    c.starttls(tls_ctx)
    c.ehlo()
    r = c.cmd("AUTH PLAIN AHVzZXIAc2VjcmV0")
    c.cmd("QUIT")
    c.read_until_closed(5)
    auths = [l for l in sink.all_commands()
             if l.upper().startswith(b"AUTH")]
    assert len(auths) == 1, sink.all_commands()


def test_backend_without_starttls_still_gets_starttls_advertised(
        sink_factory, proxy_factory, connect):
    sink = sink_factory(ehlo_keywords=["PIPELINING", "8BITMIME"])
    c = connect(proxy_factory(sink))
    r = c.ehlo()
    assert r.keywords().count("STARTTLS") == 1, r
    assert "PIPELINING" in r.keywords() and "8BITMIME" in r.keywords()


def test_ehlo_is_forwarded_to_backend(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.ehlo("hello.client.test")
    c.cmd("QUIT")
    assert sink.wait_closed()
    assert sink.all_commands()[0] == b"EHLO hello.client.test\r\n"


def test_helo_is_relayed(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    r = c.cmd("HELO client.test")
    assert r.code == 250
    assert r.raw == b"250 sink.test\r\n"


def test_listener_without_certificates_offers_no_starttls(
        sink, proxy_factory, connect):
    proxy = proxy_factory(sink, certificates=[])
    c = connect(proxy)
    r = c.ehlo()
    assert "STARTTLS" not in r.keywords(), r
    r = c.cmd("STARTTLS")
    assert (r.code, r.enhanced) == (454, "4.7.0"), r
    assert c.cmd("NOOP").code == 250
    c.cmd("QUIT")
    assert sink.wait_closed()
    assert b"STARTTLS" not in sink.all_raw()


def test_listener_without_tls_group_offers_no_starttls(
        sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={"tls": None})
    c = connect(proxy)
    r = c.ehlo()
    assert "STARTTLS" not in r.keywords(), r
    r = c.cmd("STARTTLS")
    assert (r.code, r.enhanced) == (454, "4.7.0"), r


def test_quit_relayed_and_connection_closed(sink, proxy_factory, connect):
    c = connect(proxy_factory(sink))
    c.ehlo()
    r = c.cmd("QUIT")
    assert r.code == 221
    assert c.read_until_closed(5) == b""


def _well_formed(r):
    assert all(l.startswith("250-") for l in r.lines[:-1]), r
    assert r.lines[-1].startswith("250 "), r
    assert r.raw.endswith(b"\r\n") and b"\r\n\r\n" not in r.raw, r


def test_ehlo_single_line_reply_gets_starttls(sink_factory, proxy_factory,
                                              connect):
    sink = sink_factory(ehlo_keywords=[])
    c = connect(proxy_factory(sink))
    # The sink's EHLO reply is then one line: "250 sink.test greets ..."
    r = c.ehlo()
    _well_formed(r)
    assert r.texts[0] == "sink.test greets client.test"
    assert r.keywords() == ["STARTTLS"], r


def test_ehlo_removed_last_line_keeps_reply_well_formed(
        sink_factory, proxy_factory, connect, tls_ctx):
    sink = sink_factory(ehlo_keywords=["PIPELINING", "XCLIENT ADDR",
                                       "STARTTLS", "AUTH PLAIN"])
    c = connect(proxy_factory(sink))
    r = c.ehlo()
    _well_formed(r)
    assert sorted(r.keywords()) == ["PIPELINING", "STARTTLS"], r
    c.starttls(tls_ctx)
    r = c.ehlo()
    _well_formed(r)
    assert r.keywords() == ["PIPELINING", "AUTH"], r


def test_ehlo_only_hidden_extensions_after_tls(sink_factory, proxy_factory,
                                               connect, tls_ctx):
    sink = sink_factory(ehlo_keywords=["STARTTLS", "XFORWARD NAME"])
    c = connect(proxy_factory(sink))
    c.ehlo()
    c.starttls(tls_ctx)
    r = c.ehlo()
    _well_formed(r)
    assert r.keywords() == [], r
    assert r.texts[0] == "sink.test greets client.test"


def test_ehlo_keywords_are_matched_case_insensitively(
        sink_factory, proxy_factory, connect):
    sink = sink_factory(ehlo_keywords=["starttls", "Auth PLAIN",
                                       "xclient ADDR", "pipelining"])
    c = connect(proxy_factory(sink))
    r = c.ehlo()
    _well_formed(r)
    assert sorted(r.keywords()) == ["PIPELINING", "STARTTLS"], r
    assert r.keywords().count("STARTTLS") == 1


def test_ehlo_without_argument_is_relayed(sink_factory, proxy_factory,
                                            connect):
    sink = sink_factory()
    c = connect(proxy_factory(sink))
    r = c.cmd("EHLO")           # sink answers an argument-less EHLO too
    assert r.code == 250
    _well_formed(r)


def test_banner_replaces_backend_greeting(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, listener={
        "banner": "mx.example.org ESMTP front door"})
    c = connect(proxy)
    g = c.greeting_reply
    assert g.code == 220
    assert "mx.example.org ESMTP front door" in g.text, g
    assert b"RecordingSink" not in g.raw, g
    assert c.ehlo().code == 250
