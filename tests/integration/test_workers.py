"""workers = N (issue 5 item 0, issue 4 item 1): N event-loop threads, each
with its own SO_REUSEPORT socket, accept in parallel; every session
completes; connection limits and metrics hold across all workers."""

import re
import socket
import threading
import time

import pytest

import helpers

SESSION_ID_RE = re.compile(r"\bsession id=([0-9a-f]{12,})\b")


def session_ids(proxy):
    return SESSION_ID_RE.findall(proxy.stderr())


def client_from(port, source_ip, timeout=helpers.IO_TIMEOUT):
    """A Client whose connection comes from source_ip (any 127/8 address
    works on Linux loopback), so that tests can be several 'IPs'."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source_ip, 0))
    s.connect(("127.0.0.1", port))
    return helpers.Client(port, sock=s, timeout=timeout)


def listening_sockets(port):
    """How many sockets LISTEN on 127.0.0.1:port (from /proc/net/tcp)."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        next(f)
        return sum(1 for line in f
                   if line.split()[1] == want and line.split()[3] == "0A")


def refused_with_421(port, source_ip="127.0.0.1"):
    """The connection's first and only reply is 421 4.7.0, then close."""
    c = client_from(port, source_ip)
    try:
        r = c.read_reply()
        assert (r.code, r.enhanced) == (421, "4.7.0"), r
        assert c.read_until_closed(5) == b"", "bytes after the 421"
    finally:
        c.close()


def held(port, source_ip="127.0.0.1"):
    c = client_from(port, source_ip)
    c.greeting()
    return c


@pytest.mark.timeout(60)
def test_four_workers_40_concurrent_sessions(sink, proxy_factory, tls_ctx):
    n = 40
    mport = helpers.free_port()
    proxy = proxy_factory(sink, top={"workers": 4, "stats": {
        "listen": "127.0.0.1:%d" % mport}})
    # One SO_REUSEPORT listening socket per worker.
    assert listening_sockets(proxy.port) == 4
    barrier = threading.Barrier(n, timeout=20)
    results, failures = {}, []

    def one(i):
        c = None
        try:
            c = helpers.Client(proxy.port, timeout=15)
            c.greeting()
            c.ehlo()
            barrier.wait()          # all 40 open at once
            c.starttls(tls_ctx)
            c.ehlo()
            for line, code in (("MAIL FROM:<w%d@example.org>" % i, 250),
                               ("RCPT TO:<rcpt@example.org>", 250),
                               ("DATA", 354)):
                r = c.cmd(line)
                assert r.code == code, (line, r)
            c.send(b"Subject: worker-%d\r\n\r\nbody %d\r\n.\r\n" % (i, i))
            r = c.read_reply()
            assert r.code == 250, r
            assert c.cmd("QUIT").code == 221
            results[i] = True
        except Exception as e:       # recorded, asserted below
            failures.append((i, repr(e)))
            try:
                barrier.abort()
            except threading.BrokenBarrierError:
                pass
        finally:
            if c is not None:
                c.close()

    ts = [threading.Thread(target=one, args=(i,), daemon=True)
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(40)
    assert not any(t.is_alive() for t in ts), "client threads hang"
    assert failures == [], failures[:5]
    assert len(results) == n

    assert helpers.wait_until(lambda: len(session_ids(proxy)) >= n, 5), \
        proxy.stderr()[-3000:]
    ids = session_ids(proxy)
    assert len(ids) == n, ids
    assert len(set(ids)) == n, "session ids repeat: %r" % ids
    # id = start time (8 hex) + random (4) + worker (2) + counter
    workers = {int(i[12:14], 16) for i in ids}
    assert workers <= {0, 1, 2, 3}, workers
    assert len(workers) >= 2, "all sessions on worker(s) %r" % workers
    lines = [l for l in proxy.stderr().splitlines() if SESSION_ID_RE.search(l)]
    assert all(" messages=1 " in l for l in lines), lines

    assert sink.wait_for(lambda: len(sink.completed_messages()) == n)
    subjects = sorted(int(m.content.split(b"Subject: worker-")[1]
                          .split(b"\r\n")[0]) for m in sink.completed_messages())
    assert subjects == list(range(n))

    # Metrics are the sum over the four workers.
    _, _, body = helpers.scrape(mport)
    m = helpers.parse_metrics(body)
    L = {"listener": "mx"}
    assert helpers.metric(m, "starttls_proxy_connections_total", **L) == n
    assert helpers.metric(m, "starttls_proxy_connections_active", **L) == 0
    assert helpers.metric(m, "starttls_proxy_messages_total", **L) == n
    assert helpers.metric(m, "starttls_proxy_handshakes_total",
                          result="ok", **L) == n
    assert helpers.metric(m, "starttls_proxy_handshake_duration_seconds_count",
                          **L) == n


def test_per_ip_limit_holds_across_workers(sink, proxy_factory):
    mport = helpers.free_port()
    proxy = proxy_factory(sink, top={"workers": 4, "stats": {
        "listen": "127.0.0.1:%d" % mport}},
        listener={"limits": {"max_connections_per_ip": 3}})
    clients = [held(proxy.port) for _ in range(3)]
    # The 4th..8th connections (whichever worker takes them) are refused
    # before any greeting.
    for _ in range(5):
        refused_with_421(proxy.port)
    # Another address is not limited by 127.0.0.1's count.
    other = held(proxy.port, "127.0.0.2")
    assert other.ehlo().code == 250
    for c in clients:
        assert c.cmd("NOOP").code == 250
    # After one of the three leaves, one more is accepted, and only one.
    assert clients[0].cmd("QUIT").code == 221
    clients[0].read_until_closed(5)
    clients[0].close()

    fresh = []

    def admitted():
        c = client_from(proxy.port, "127.0.0.1")
        r = c.read_reply()
        if r.code == 220:
            fresh.append(c)
            return True
        c.close()
        return False

    assert helpers.wait_until(admitted, 5, step=0.1)
    refused_with_421(proxy.port)
    for c in clients[1:] + fresh + [other]:
        assert c.cmd("NOOP").code == 250
        c.close()

    # Refused connections never reached the backend: 3 + 1 + 1 did.
    assert len(sink.all_sessions()) == 5, sink.all_sessions()

    _, _, body = helpers.scrape(mport)
    m = helpers.parse_metrics(body)
    assert helpers.metric(m, "starttls_proxy_connections_rejected_total",
                          listener="mx", reason="limit") >= 6


def test_max_connections_holds_across_workers(sink, proxy_factory):
    proxy = proxy_factory(sink, top={"workers": 4},
                          listener={"limits": {"max_connections": 3}})
    # Three sessions from three addresses fill the listener.
    clients = [held(proxy.port, ip)
               for ip in ("127.0.0.1", "127.0.0.2", "127.0.0.3")]
    for ip in ("127.0.0.4", "127.0.0.5", "127.0.0.1", "127.0.0.6",
               "127.0.0.7"):
        refused_with_421(proxy.port, ip)
    for c in clients:
        assert c.cmd("NOOP").code == 250
    assert clients[1].cmd("QUIT").code == 221
    clients[1].read_until_closed(5)
    clients[1].close()

    fresh = []

    def admitted():
        c = client_from(proxy.port, "127.0.0.8")
        r = c.read_reply()
        if r.code == 220:
            fresh.append(c)
            return True
        c.close()
        return False

    assert helpers.wait_until(admitted, 5, step=0.1)
    refused_with_421(proxy.port, "127.0.0.9")
    for c in [clients[0], clients[2]] + fresh:
        assert c.cmd("NOOP").code == 250
        c.close()
    time.sleep(0.1)


def test_per_ip_limit_uses_the_proxy_protocol_address(sink, proxy_factory):
    """Behind a load balancer every connection comes from its address; the
    limit counts the client address the PROXY header gives (issue 4 item
    5), across workers."""
    proxy = proxy_factory(sink, top={"workers": 2}, listener={
        "proxy_protocol": True, "limits": {"max_connections_per_ip": 2}})

    def via_lb(claimed):
        c = helpers.Client(proxy.port)
        c.send(b"PROXY TCP4 %s 192.0.2.25 40000 25\r\n" % claimed.encode())
        return c

    held_ = []
    for _ in range(2):
        c = via_lb("198.51.100.1")
        assert c.greeting().code == 220
        held_.append(c)
    for _ in range(3):
        c = via_lb("198.51.100.1")
        r = c.read_reply()
        assert (r.code, r.enhanced) == (421, "4.7.0"), r
        assert c.read_until_closed(5) == b""
        c.close()
    # Other claimed clients from the same balancer address are fine.
    for ip in ("198.51.100.2", "198.51.100.3", "198.51.100.4"):
        c = via_lb(ip)
        assert c.greeting().code == 220
        held_.append(c)
    for c in held_:
        assert c.cmd("NOOP").code == 250
        c.close()
    assert " client=198.51.100.1 " in proxy.stderr(), proxy.stderr()
