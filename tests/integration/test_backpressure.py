"""Memory per connection is bounded (SPEC §6): when the backend stops
reading, the proxy stops reading from the client instead of buffering."""

import threading
import time

import pytest

import helpers


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


@pytest.mark.timeout(120)
def test_stalled_backend_does_not_make_proxy_buffer_the_message(
        sink_factory, proxy_factory, connect):
    sink = sink_factory(stall_data=6)
    proxy = proxy_factory(sink)
    c = connect(proxy)
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@example.org>")
    assert c.cmd("DATA").code == 354
    before = rss_kib(proxy.proc.pid)
    size = 64 * 1024 * 1024
    line = b"x" * 1022 + b"\r\n"
    sent = [0]
    err = []

    def pump():
        try:
            block = line * 256
            while sent[0] < size:
                c.sock.sendall(block)
                sent[0] += len(block)
            c.sock.sendall(b".\r\n")
        except Exception as e:      # reported below
            err.append(e)

    c.sock.settimeout(60)
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    assert sink.stalled.wait(5)
    time.sleep(3)                   # the sink still stalls
    during = rss_kib(proxy.proc.pid)
    stuck_at = sent[0]
    assert stuck_at < size, "client could send all of 64 MiB to a stalled sink"
    assert during - before < 32 * 1024, (
        "proxy RSS grew by %d KiB while the backend stalled" % (
            during - before))
    t.join(90)
    assert not t.is_alive() and not err, err
    c.sock.settimeout(helpers.IO_TIMEOUT * 3)
    r = c.read_reply()
    assert r.code == 250, r
    assert sink.wait_for(lambda: sink.completed_messages(), 10)
    (m,) = sink.completed_messages()
    assert len(helpers.split_received(bytes(m.content))[1]) == \
        (size // len(line)) * len(line)


@pytest.mark.timeout(60)
def test_client_that_never_reads_cannot_grow_proxy_output(
        sink, proxy_factory, connect):
    """Bad command lines get local 500 replies; a client that sends them
    without ever reading must be throttled, not buffered for."""
    proxy = proxy_factory(sink)
    c = connect(proxy)
    c.ehlo()
    before = rss_kib(proxy.proc.pid)
    bad = b"\x00bad\r\n" * 4096           # each line: 500 5.5.2 (~50 bytes)
    sent = 0
    c.sock.setblocking(False)
    deadline = time.time() + 10
    while sent < 64 * 1024 * 1024 and time.time() < deadline:
        try:
            sent += c.sock.send(bad)
        except BlockingIOError:
            time.sleep(0.01)               # the proxy paused reading
    time.sleep(0.5)
    grew = rss_kib(proxy.proc.pid) - before
    # 64 MiB of input would be ~530 MiB of replies if buffered.
    assert sent < 64 * 1024 * 1024, "proxy read 64 MiB without pause"
    assert grew < 16 * 1024, "proxy RSS grew by %d KiB" % grew
    assert not [x for x in sink.all_commands() if b"bad" in x]
