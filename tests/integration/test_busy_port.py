"""A busy listen port (SPEC §2, issue 8 item 9): SO_REUSEPORT must not let
the proxy share a port with a second instance or another program, at
start or at reload; and a listener whose backend is its own listen
address (the proxy would connect to itself) is a configuration error,
for -t too."""

import re
import signal
import socket
import subprocess

import pytest

import helpers

OLD_BANNER = "old.example ESMTP before-reload"
NEW_BANNER = "new.example ESMTP after-reload"


def squat(host, port=0, reuseport=True):
    """A listening socket in this process; with SO_REUSEPORT it is what a
    second starttls-proxy (same user) would hold."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, port))
    s.listen(8)
    return s


def write_conf(tmp_path, certs, listen, backend, name="busy.conf", **top):
    cfg = helpers.base_config(certs, 0, backend)
    cfg["listeners"][0]["listen"] = listen
    cfg.update(top)
    path = tmp_path / name
    path.write_text(helpers.to_libconfig(cfg))
    return str(path)


def line_of(path, needle):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if needle in line:
                return n
    raise AssertionError("%s not in %s" % (needle, path))


def start_fails(conf):
    """Run the proxy on conf: it must exit 1 at once (not run)."""
    try:
        r = helpers.run_cli(["-c", conf], timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("the proxy started (ran 15 s) instead of refusing %s"
                    % conf)
    assert r.returncode == 1, r.out
    return r


def in_use_message(conf, listen):
    return re.compile(r"%s:%d: listener \"mx\": listen address %s is "
                      r"already in use" % (re.escape(conf),
                                           line_of(conf, "listen = "),
                                           re.escape(listen)))


def test_second_instance_refused(proxy_factory, sink, connect):
    first = proxy_factory(sink)
    r = start_fails(first.conf_path)
    assert in_use_message(first.conf_path,
                          "127.0.0.1:%d" % first.port).search(r.out), r.out
    # Every connection still reaches the first one.
    for _ in range(8):
        c = connect(first)
        assert c.greeting_reply.code == 220
        c.close()


@pytest.mark.parametrize("held,listen", [
    ("127.0.0.1", "127.0.0.1"),
    ("0.0.0.0", "127.0.0.1"),       # a wildcard holder covers 127.0.0.1
])
def test_port_held_with_reuseport_refused(certs, tmp_path, held, listen):
    s = squat(held)
    try:
        addr = "%s:%d" % (listen, s.getsockname()[1])
        conf = write_conf(tmp_path, certs, addr,
                          "127.0.0.1:%d" % helpers.closed_port())
        r = start_fails(conf)
        assert in_use_message(conf, addr).search(r.out), r.out
    finally:
        s.close()


def test_port_held_by_exim_refused(exim, certs, tmp_path):
    conf = write_conf(tmp_path, certs, exim.address,
                      "127.0.0.1:%d" % helpers.closed_port())
    r = start_fails(conf)
    assert in_use_message(conf, exim.address).search(r.out), r.out


def test_reload_onto_busy_port_keeps_running_config(proxy_factory, sink,
                                                    connect):
    proxy = proxy_factory(sink, listener={"banner": OLD_BANNER})
    s = squat("127.0.0.1")
    busy = s.getsockname()[1]
    try:
        first = proxy.config["listeners"][0]
        for listeners in (
                # the listener moves onto the busy port
                [dict(first, banner=NEW_BANNER,
                      listen="127.0.0.1:%d" % busy)],
                # or a new listener is added there
                [dict(first, banner=NEW_BANNER),
                 dict(first, name="extra", listen="127.0.0.1:%d" % busy)]):
            before = proxy.stderr().count("reload failed")
            proxy.rewrite(dict(proxy.config, listeners=listeners))
            proxy.signal(signal.SIGHUP)
            assert helpers.wait_until(
                lambda: proxy.stderr().count("reload failed") > before, 10), \
                proxy.stderr()[-3000:]
            tail = proxy.stderr().split("SIGHUP")[-1]
            assert re.search(r"listen address 127\.0\.0\.1:%d is already "
                             r"in use" % busy, tail), tail
            assert "reload done" not in tail, tail
            c = connect(proxy)
            assert c.greeting_reply.raw == ("220 %s\r\n"
                                            % OLD_BANNER).encode()
            assert c.ehlo().code == 250
            assert c.cmd("QUIT").code == 221
            c.close()
    finally:
        s.close()


def backend_self_message(conf, backend, listen):
    return re.compile(
        r"%s:%d: listeners\[0\]\.backend\.address \"%s\" is the "
        r"listener's own listen address \"%s\": the proxy would connect "
        r"to itself" % (re.escape(conf), line_of(conf, "address = "),
                        re.escape(backend), re.escape(listen)))


@pytest.mark.parametrize("listen,backend", [
    ("127.0.0.1:{p}", "127.0.0.1:{p}"),
    ("0.0.0.0:{p}", "127.0.0.1:{p}"),    # a wildcard takes loopback too
    ("127.0.0.1:{p}", "0.0.0.0:{p}"),    # connect(0.0.0.0) is loopback
    ("[::]:{p}", "[::1]:{p}"),
])
def test_backend_is_own_listen_address_check(certs, tmp_path, listen,
                                             backend):
    p = helpers.free_port()
    listen, backend = listen.format(p=p), backend.format(p=p)
    conf = write_conf(tmp_path, certs, listen, backend)
    r = helpers.run_cli(["-t", "-c", conf])
    assert r.returncode == 1, r.out
    assert backend_self_message(conf, backend, listen).search(r.out), r.out


def test_backend_is_own_listen_address_start(certs, tmp_path):
    p = helpers.free_port()
    addr = "127.0.0.1:%d" % p
    conf = write_conf(tmp_path, certs, addr, addr)
    r = start_fails(conf)
    assert backend_self_message(conf, addr, addr).search(r.out), r.out


@pytest.mark.parametrize("listen,backend", [
    ("127.0.0.1:{p}", "127.0.0.2:{p}"),      # another loopback address
    ("127.0.0.1:{p}", "127.0.0.1:{q}"),      # another port
    ("0.0.0.0:{p}", "[::1]:{p}"),            # listeners are v4 or v6 only
])
def test_backend_elsewhere_is_fine(certs, tmp_path, listen, backend):
    p, q = helpers.free_port(), helpers.free_port()
    conf = write_conf(tmp_path, certs, listen.format(p=p),
                      backend.format(p=p, q=q))
    r = helpers.run_cli(["-t", "-c", conf])
    assert r.returncode == 0, r.out
