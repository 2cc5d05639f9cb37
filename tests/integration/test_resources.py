"""Resources (SPEC §2, issue 8 item 4): the descriptor limit is raised at
start and a too-low one is named; a connection the proxy cannot take for
lack of descriptors is answered "421 4.7.0", counted and logged at a
bounded rate, without spinning, and the proxy recovers by itself."""

import re
import resource
import selectors
import socket
import time

import pytest

import helpers

LOW = 200           # the proxy's RLIMIT_NOFILE in the exhaustion test
N = 400             # connections held open at once
EXTRA = 20          # connections made once it is exhausted


def nofile(soft, hard):
    """preexec_fn: the child's RLIMIT_NOFILE before exec."""
    def set_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return set_limit


@pytest.fixture
def many_fds():
    """This process holds N client sockets plus the sink's sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * N
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def cpu_seconds(pid):
    """utime + stime of pid (all threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    import os
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_lines(socks, timeout):
    """The first line (or b"" at EOF / reset) each socket receives; None
    for those that got nothing within timeout."""
    sel = selectors.DefaultSelector()
    got = {}
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    deadline = time.monotonic() + timeout
    while len(got) < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (ConnectionResetError, BlockingIOError):
                data = b"" if s not in got else None
            if data is None:
                continue
            bufs[s] += data
            if not data or b"\r\n" in bufs[s]:
                got[s] = bufs[s].split(b"\r\n", 1)[0] if data else bufs[s]
                sel.unregister(s)
    sel.close()
    return [got.get(s) for s in socks]


def connect_all(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def refusal_lines(text):
    return [l for l in text.splitlines()
            if re.search(r"refused|accept|descriptor", l)
            and "RLIMIT_NOFILE" not in l and "limit raised" not in l]


@pytest.mark.timeout(150)
def test_descriptor_exhaustion_refused_counted_bounded(
        proxy_factory, sink, many_fds):
    stats_port = helpers.free_port()
    p = proxy_factory(sink, top={"workers": 2, "stats": {
        "listen": "127.0.0.1:%d" % stats_port}},
        listener={"limits": {"max_connections_per_ip": 5000}},
        preexec_fn=nofile(LOW, LOW))
    held = []
    try:
        held = connect_all(p.port, N)
        lines = first_lines(held, 60)
        greeted = [l for l in lines if l is not None and l.startswith(b"220 ")]
        refused = [l for l in lines
                   if l is not None and l.startswith(b"421 4.7.0 ")]
        other = [l for l in lines if l not in greeted and l not in refused]
        assert not other, (
            "%d of %d connections got neither the greeting nor 421 4.7.0: "
            "%r; stderr:\n%s" % (len(other), N, other[:10],
                                 p.stderr()[-4000:]))
        assert greeted and refused, (len(greeted), len(refused))

        # Exhausted and steady: new connections are refused at once, and
        # the proxy does not spin while the clients hold their sockets.
        extra = connect_all(p.port, EXTRA)
        held += extra
        more = first_lines(extra, 30)
        assert all(l is not None and l.startswith(b"421 4.7.0 ")
                   for l in more), more
        before = cpu_seconds(p.proc.pid)
        time.sleep(3)
        spent = cpu_seconds(p.proc.pid) - before
        assert spent < 0.5, "proxy used %.2f s of CPU in 3 s while " \
            "exhausted and idle" % spent
        logged = refusal_lines(p.stderr())
        assert 1 <= len(logged) <= 30, (len(logged), logged[:40])
        n_refused = len(refused) + len(more)
    finally:
        for s in held:
            s.close()

    # Recovery: sessions end, descriptors come back, a session works.
    def idle():
        m = helpers.parse_metrics(helpers.scrape(stats_port)[2])
        return helpers.metric(m, "starttls_proxy_connections_active",
                              listener="mx") == 0
    assert helpers.wait_until(idle, 30), p.stderr()[-4000:]
    samples = helpers.parse_metrics(helpers.scrape(stats_port)[2])
    assert helpers.metric(samples, "starttls_proxy_connections_rejected_total",
                          listener="mx", reason="descriptors") == n_refused
    assert helpers.metric(samples, "starttls_proxy_connections_rejected_total",
                          listener="mx", reason="memory") == 0
    c = helpers.Client(p.port)
    try:
        assert c.greeting().code == 220
        assert c.ehlo().code == 250
        assert c.cmd("QUIT").code == 221
    finally:
        c.close()
    assert len(refusal_lines(p.stderr())) <= 40
    assert len(p.stderr()) < 200000


@pytest.mark.timeout(60)
def test_descriptor_limit_raised_to_hard(proxy_factory, sink):
    p = proxy_factory(sink, listener={"limits": {"max_connections": 100}},
                      preexec_fn=nofile(64, 4096))
    with open("/proc/%d/limits" % p.proc.pid) as f:
        row = [l for l in f if l.startswith("Max open files")][0]
    assert row.split()[3:5] == ["4096", "4096"], row
    assert "descriptor limit raised from 64 to 4096" in p.stderr()
    assert "RLIMIT_NOFILE" not in p.stderr()
    c = helpers.Client(p.port)
    try:
        assert c.greeting().code == 220
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_descriptor_limit_too_low_is_named(proxy_factory, sink):
    """Default max_connections (10000) under a hard limit of 1024."""
    p = proxy_factory(sink, preexec_fn=nofile(1024, 1024))
    m = re.search(r"descriptor limit \(RLIMIT_NOFILE\) is 1024, below the "
                  r"(\d+) that max_connections needs \(10000 connections",
                  p.stderr())
    assert m and int(m.group(1)) > 20000, p.stderr()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [{"proxy_protocol": True},
                                  {"tls_mode": "implicit"}])
def test_descriptor_exhaustion_no_plaintext_where_it_makes_no_sense(
        proxy_factory, sink, many_fds, mode):
    """Behind a PROXY header or on an implicit TLS port, a refusal closes
    the connection without a byte; still counted, still bounded."""
    stats_port = helpers.free_port()
    p = proxy_factory(sink, top={"stats": {
        "listen": "127.0.0.1:%d" % stats_port}},
        listener=dict(mode, limits={"max_connections_per_ip": 5000}),
        preexec_fn=nofile(LOW, LOW))
    held = []
    try:
        held = connect_all(p.port, N)
        # Taken ones wait for a header / ClientHello (None); refused ones
        # are closed at once (b"").
        lines = first_lines(held, 5)
        closed = [l for l in lines if l == b""]
        assert all(l is None or l == b"" for l in lines), \
            [l for l in lines if l][:5]
        assert closed and len(closed) < N, len(closed)
        logged = refusal_lines(p.stderr())
        assert 1 <= len(logged) <= 20, logged
    finally:
        for s in held:
            s.close()
    samples = {}

    def counted():
        samples.update(helpers.parse_metrics(helpers.scrape(stats_port)[2]))
        return helpers.metric(samples, "starttls_proxy_connections_active",
                              listener="mx") == 0
    assert helpers.wait_until(counted, 30), p.stderr()[-3000:]
    assert helpers.metric(samples, "starttls_proxy_connections_rejected_total",
                          listener="mx", reason="descriptors") == len(closed)
