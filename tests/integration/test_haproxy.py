"""Scale-out behind a real L4 load balancer (issue 11, part 6).

Debian's haproxy in TCP mode in front of two proxies with
`proxy_protocol = true`, sending PROXY v2 on every connection (health
checks included: `option smtpchk` + `check-send-proxy`), as
deploy/haproxy/haproxy.cfg shows.  20 messages come from 127.0.0.2; one
proxy is killed (SIGKILL) after 10.  Every message must reach the real exim
backend exactly once, and the client address the proxy saw, logged and
wrote into the Received header is 127.0.0.2, not HAProxy's 127.0.0.1.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

import helpers

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

pytestmark = pytest.mark.skipif(not os.path.exists(HAPROXY),
                                reason="haproxy is not installed")


def haproxy_config(front, ports):
    """deploy/haproxy/haproxy.cfg with our addresses."""
    src = os.path.join(helpers.REPO, "deploy", "haproxy", "haproxy.cfg")
    with open(src) as f:
        text = f.read()
    text = text.replace("bind :25", "bind 127.0.0.1:%d" % front)
    text = text.replace("10.0.0.11:2525", "127.0.0.1:%d" % ports[0])
    text = text.replace("10.0.0.12:2525", "127.0.0.1:%d" % ports[1])
    text = text.replace("maxconn 20000", "maxconn 200")
    # Quicker than in production, so the test does not wait long.
    text = text.replace("inter 2s fall 2 rise 2", "inter 300ms fall 2 rise 1")
    assert "127.0.0.1:%d" % ports[1] in text
    return text


def wait_servers_up(stats_sock, names, timeout):
    """True when HAProxy's runtime API reports every server UP."""
    def up():
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(2)
            s.connect(stats_sock)
            s.sendall(b"show servers state starttls_proxies\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
        except OSError:
            return False
        state = {}
        for line in data.decode().splitlines():
            f = line.split()
            if len(f) > 5 and f[0].isdigit():
                state[f[3]] = f[5]      # srv_name, srv_op_state (2 = up)
        return all(state.get(n) == "2" for n in names)
    return helpers.wait_until(up, timeout, step=0.1)


@pytest.mark.timeout(180)
def test_two_proxies_behind_haproxy(proxy_factory, exim, certs, tmp_path):
    proxies = [proxy_factory(exim, listener={"proxy_protocol": True})
               for _ in range(2)]
    front = helpers.free_port()
    conf = tmp_path / "haproxy.cfg"
    stats_sock = str(tmp_path / "haproxy.sock")
    conf.write_text(haproxy_config(front, [p.port for p in proxies]).replace(
        "global\n", "global\n    stats socket %s mode 600 level admin\n"
        % stats_sock, 1))
    log = open(str(tmp_path / "haproxy.log"), "wb")
    ha = subprocess.Popen([HAPROXY, "-db", "-f", str(conf)],
                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        assert helpers.wait_until(lambda: helpers.port_listening(front)
                                  or ha.poll() is not None, 15)
        assert ha.poll() is None, (tmp_path / "haproxy.log").read_text()
        assert wait_servers_up(stats_sock, ["stp1", "stp2"], 20), (
            "servers not UP:\n" + (tmp_path / "haproxy.log").read_text())

        ctx = helpers.no_sni_context(certs)
        tag = "haproxy-%d-%d" % (os.getpid(), int(time.time()))

        def send(i):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(helpers.IO_TIMEOUT)
            s.bind(("127.0.0.2", 0))
            s.connect(("127.0.0.1", front))
            content = ("Subject: message %d\r\n\r\n%s-msg-%02d\r\n"
                       % (i, tag, i)).encode()
            helpers.send_tls_message(front, ctx, content, sock=s)

        for i in range(10):
            send(i)
        served = [p.stderr().count("client=127.0.0.2") for p in proxies]
        assert all(n > 0 for n in served), (
            "the balancer should have used both proxies: %r" % served)

        proxies[0].proc.send_signal(signal.SIGKILL)
        proxies[0].proc.wait(10)
        # (killed on purpose: the teardown's exit-status check must not
        # count SIGKILL as a crash; it still checks stderr for sanitizers)
        proxies[0].start_failed = True
        for i in range(10, 20):
            send(i)

        exim.wait_messages(tag, n=20, timeout=30)
        time.sleep(0.5)         # a late duplicate would show up by now
        for i in range(20):
            got = exim.messages("%s-msg-%02d" % (tag, i))
            assert len(got) == 1, "message %d delivered %d times" % (
                i, len(got))
            _, rest = helpers.exim_headers_and_rest(got[0])
            ours = [h for h in helpers.received_headers(rest)
                    if "starttls-proxy" in h]
            assert len(ours) == 1, rest
            assert "(client [127.0.0.2])" in ours[0], ours[0]
        # Every session that carried a message was logged with the real
        # client address (HAProxy's own health checks come from 127.0.0.1
        # and carry none); the survivor took the 10 after the kill.
        per_proxy = []
        for p in proxies:
            lines = [ln for ln in p.stderr().splitlines()
                     if re.search(r"\bmessages=[1-9]", ln)]
            assert all("client=127.0.0.2" in ln for ln in lines), lines
            per_proxy.append(len(lines))
        assert sum(per_proxy) == 20, per_proxy
        assert per_proxy[1] >= 10, per_proxy
    finally:
        ha.send_signal(signal.SIGTERM)
        try:
            ha.wait(10)
        except subprocess.TimeoutExpired:
            ha.kill()
            ha.wait(5)
        log.close()
