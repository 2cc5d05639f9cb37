"""Fixtures: per-test time limit, certificates, exim, the recording sink and
the proxy factory.  See helpers.py for the pieces."""

import os
import shutil
import signal

import pytest

import helpers
from sink import Sink

TEST_TIMEOUT = int(os.environ.get("STP_TEST_TIMEOUT", "60"))


class PerTestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _time_limit(request):
    """Every test is bounded: SIGALRM raises in the main thread."""
    limit = TEST_TIMEOUT
    marker = request.node.get_closest_marker("timeout")
    if marker is not None:
        limit = int(marker.args[0])

    def on_alarm(signum, frame):
        raise PerTestTimeout("test exceeded its %d s limit" % limit)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def pytest_configure(config):
    config.addinivalue_line("markers",
                            "timeout(seconds): per-test time limit")


@pytest.fixture(scope="session")
def stp_bin():
    path = helpers.stp_bin()
    if not os.access(path, os.X_OK):
        pytest.fail("proxy binary %s not found or not executable "
                    "(set STP_BIN)" % path, pytrace=False)
    return path


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl CLI is needed to make test certificates")
    return helpers.Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def exim():
    if not os.path.exists(helpers.Exim.EXIM):
        pytest.skip("exim4 is not installed")
    if os.geteuid() != 0:
        pytest.skip("the exim backend needs root (spool owned by "
                    "Debian-exim, -C config owned by root)")
    e = helpers.Exim().start()
    yield e
    e.stop()
    if os.environ.get("STP_KEEP_EXIM") is None:
        shutil.rmtree(e.dir, ignore_errors=True)


@pytest.fixture
def sink_factory():
    sinks = []

    def make(**kw):
        s = Sink(**kw).start()
        sinks.append(s)
        return s

    yield make
    for s in sinks:
        s.stop()
    errors = [e for s in sinks for e in s.errors]
    assert not errors, "sink errors: %r" % errors


@pytest.fixture
def sink(sink_factory):
    return sink_factory()


@pytest.fixture
def proxy_factory(stp_bin, certs, tmp_path):
    """make(backend, listener={...}, top={...}, certificates=[...]) starts a
    proxy with one listener "mx" in front of backend (a Sink, an Exim, or
    an address string) and returns the Proxy.  Each proxy is stopped with
    SIGTERM at teardown and must not have crashed."""
    procs = []

    def make(backend, listener=None, top=None, certificates=None,
             start=True, env=None, use_c=True, preexec_fn=None):
        addr = backend if isinstance(backend, str) else backend.address
        port = helpers.free_port()
        cfg = helpers.base_config(certs, port, addr)
        if certificates is not None:
            cfg["listeners"][0]["tls"]["certificates"] = certificates
        cfg["listeners"][0] = helpers.deep_merge(cfg["listeners"][0],
                                                 listener)
        cfg = helpers.deep_merge(cfg, top)
        p = helpers.Proxy(tmp_path, cfg, port, env=env, use_c=use_c,
                          preexec_fn=preexec_fn)
        procs.append(p)
        if start:
            p.start()
        return p

    yield make
    problems = []
    for p in procs:
        try:
            rc = p.stop()
            if rc is not None:
                p.check_clean_exit(rc)
        except AssertionError as e:
            problems.append(str(e))
    assert not problems, "\n".join(problems)


@pytest.fixture
def client_factory():
    clients = []

    def make(port, **kw):
        c = helpers.Client(port, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def tls_ctx(certs):
    return certs.client_context()


@pytest.fixture
def connect(client_factory):
    """connect(proxy) -> Client with the 220 greeting already read (kept in
    client.greeting_reply)."""

    def make(proxy, greet=True, **kw):
        port = proxy if isinstance(proxy, int) else proxy.port
        c = client_factory(port, **kw)
        if greet:
            c.greeting_reply = c.greeting()
        return c

    return make


@pytest.fixture(scope="session")
def exim_proxy():
    """A second private exim, separate from `exim`, whose config has
    hosts_proxy = 127.0.0.1: it expects a PROXY v1/v2 header from the proxy
    and logs the address the header carries.  Needs an exim built with
    SUPPORT_PROXY: $STP_EXIM_PROXY_BIN (an exim binary or a wrapper script
    that runs one), else /usr/sbin/exim4 when its -bV lists PROXY
    (Debian: exim4-daemon-heavy; exim4-daemon-light lacks it)."""
    if os.geteuid() != 0:
        pytest.skip("the exim backend needs root")
    binary = os.environ.get("STP_EXIM_PROXY_BIN") or helpers.Exim.EXIM
    if not os.path.exists(binary):
        pytest.skip("exim4 is not installed")
    if not helpers.exim_supports_proxy(binary):
        pytest.skip("%s was built without SUPPORT_PROXY (no hosts_proxy; "
                    "Debian's exim4-daemon-light): install "
                    "exim4-daemon-heavy or set STP_EXIM_PROXY_BIN" % binary)
    e = helpers.Exim(extra_main="hosts_proxy = 127.0.0.1",
                     binary=None if binary == helpers.Exim.EXIM
                     else binary).start()
    yield e
    e.stop()
    if os.environ.get("STP_KEEP_EXIM") is None:
        shutil.rmtree(e.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postfix():
    """A private Postfix (module-scoped) unpacked from Debian's .deb by
    scripts/get-postfix (run here if setup-deps has not): smtpd with
    XCLIENT for 127.0.0.1 and smtpd_forbid_unauth_pipelining = yes on
    .address, the same with smtpd_upstream_proxy_protocol = haproxy on
    .proxy_address.  See postfix.py.  Stopped after the module; a process
    of it left behind fails the teardown."""
    import postfix as pf
    if os.geteuid() != 0:
        pytest.skip("the postfix backend needs root (master runs as root, "
                    "queue owned by the postfix user)")
    root, why = pf.ensure_unpacked()
    if root is None:
        pytest.skip(why)
    pf.ensure_accounts()
    p = pf.Postfix(root).start()
    yield p
    left = p.stop()
    if os.environ.get("STP_KEEP_POSTFIX") is None:
        shutil.rmtree(p.dir, ignore_errors=True)
    assert not left, "postfix processes left after stop: %r" % left
