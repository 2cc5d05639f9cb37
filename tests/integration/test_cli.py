"""The command line (SPEC §2): -h, -V, -t, config lookup, exit codes,
signals."""

import os
import re
import signal
import subprocess
import time

import pytest

import helpers


def write_config(path, certs, **listener_over):
    cfg = helpers.base_config(certs, helpers.free_port(),
                              "127.0.0.1:%d" % helpers.closed_port())
    cfg["listeners"][0] = helpers.deep_merge(cfg["listeners"][0],
                                             listener_over)
    path.write_text(helpers.to_libconfig(cfg))
    return cfg


def test_help_exits_0_with_usage(stp_bin):
    r = helpers.run_cli(["-h"])
    assert r.returncode == 0, r.out
    assert "usage" in r.out.lower(), r.out
    for opt in ("-c", "-t", "-V", "-h"):
        assert opt in r.out, r.out


def test_version_exits_0_with_library_versions(stp_bin):
    r = helpers.run_cli(["-V"])
    assert r.returncode == 0, r.out
    assert re.search(r"\d+\.\d+\.\d+", r.out), r.out
    for lib in ("openssl", "libuv", "libconfig"):
        assert re.search(lib + r"\D{0,20}\d+\.\d+", r.out, re.I), (lib, r.out)


def test_unknown_option_is_an_error(stp_bin):
    r = helpers.run_cli(["-Z"])
    assert r.returncode != 0, r.out


def test_check_good_config_exits_0(stp_bin, certs, tmp_path):
    conf = tmp_path / "good.conf"
    write_config(conf, certs)
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 0, r.out


def test_check_reports_certificate_names(stp_bin, certs, tmp_path):
    conf = tmp_path / "good.conf"
    write_config(conf, certs)
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 0, r.out
    for name in ("mx1.example.org", "mx2.example.org", "*.wild.example.org"):
        assert name in r.out, r.out


def test_check_syntax_error_names_file_and_line(stp_bin, tmp_path):
    conf = tmp_path / "broken.conf"
    conf.write_text("# a comment\n"
                    "workers = 1;\n"
                    "shutdown_timeout = 5;\n"
                    "this is not libconfig;\n"
                    "user = \"\";\n")
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 1, r.out
    assert re.search(re.escape(conf.name) + r":4:", r.out), r.out


def test_run_with_syntax_error_exits_1(stp_bin, tmp_path):
    conf = tmp_path / "broken.conf"
    conf.write_text("workers = ;\n")
    r = helpers.run_cli(["-c", str(conf)])
    assert r.returncode == 1, r.out
    assert re.search(re.escape(conf.name) + r":1:", r.out), r.out


def test_semantic_error_names_file_and_line(stp_bin, certs, tmp_path):
    conf = tmp_path / "semantic.conf"
    write_config(conf, certs, policy={"bare_newline": "sometimes"})
    text = conf.read_text()
    line = text[:text.index("sometimes")].count("\n") + 1
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 1, r.out
    assert re.search(re.escape(conf.name) + r":%d:" % line, r.out), r.out


@pytest.mark.parametrize("over", [
    {"limits": {"max_line": 100}},
    {"policy": {"before_tls_code": 550}},
    {"tls_mode": "sometimes"},
    {"listen": "127.0.0.1:notaport"},
], ids=["max_line-below-512", "before_tls_code", "tls_mode", "listen"])
def test_bad_values_are_config_errors(stp_bin, certs, tmp_path, over):
    conf = tmp_path / "bad.conf"
    write_config(conf, certs, **over)
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 1, r.out
    assert conf.name in r.out, r.out


def test_missing_config_file_exits_1(stp_bin, tmp_path):
    r = helpers.run_cli(["-t", "-c", str(tmp_path / "nope.conf")])
    assert r.returncode == 1, r.out
    assert "nope.conf" in r.out, r.out


def test_missing_certificate_exits_1_naming_path(stp_bin, certs, tmp_path):
    conf = tmp_path / "nocert.conf"
    missing = str(tmp_path / "missing-cert.pem")
    write_config(conf, certs, tls={"certificates": [
        {"cert": missing, "key": certs.key("mx1")}]})
    for args in (["-t", "-c", str(conf)], ["-c", str(conf)]):
        r = helpers.run_cli(args)
        assert r.returncode == 1, (args, r.out)
        assert missing in r.out, (args, r.out)


def test_key_not_matching_certificate_exits_1(stp_bin, certs, tmp_path):
    conf = tmp_path / "mismatch.conf"
    write_config(conf, certs, tls={"certificates": [
        {"cert": certs.cert("mx1"), "key": certs.key("mx2")}]})
    for args in (["-t", "-c", str(conf)], ["-c", str(conf)]):
        r = helpers.run_cli(args)
        assert r.returncode == 1, (args, r.out)
        assert certs.cert("mx1") in r.out or certs.key("mx2") in r.out, \
            (args, r.out)


def test_check_expired_certificate_exits_1_naming_path(stp_bin, certs,
                                                       tmp_path):
    conf = tmp_path / "expired.conf"
    write_config(conf, certs, tls={"certificates": [
        {"cert": certs.cert("expired"), "key": certs.key("expired")}]})
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 1, r.out
    assert certs.cert("expired") in r.out, r.out


def test_relative_paths_are_relative_to_config_dir(stp_bin, certs, tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    for n in ("mx1",):
        (d / (n + ".pem")).write_bytes(open(certs.cert(n), "rb").read())
        (d / (n + ".key")).write_bytes(open(certs.key(n), "rb").read())
    conf = d / "rel.conf"
    write_config(conf, certs, tls={"certificates": [
        {"cert": "mx1.pem", "key": "mx1.key"}]})
    r = helpers.run_cli(["-t", "-c", str(conf)], cwd="/")
    assert r.returncode == 0, r.out


def test_config_from_environment_variable(stp_bin, certs, tmp_path):
    bad = tmp_path / "env-broken.conf"
    bad.write_text("workers = ;\n")
    r = helpers.run_cli(["-t"], env={"STARTTLS_PROXY_CONFIG": str(bad)},
                        cwd=str(tmp_path))
    assert r.returncode == 1, r.out
    assert "env-broken.conf" in r.out, r.out
    good = tmp_path / "env-good.conf"
    write_config(good, certs)
    r = helpers.run_cli(["-t"], env={"STARTTLS_PROXY_CONFIG": str(good)},
                        cwd=str(tmp_path))
    assert r.returncode == 0, r.out


def test_dash_c_wins_over_environment(stp_bin, certs, tmp_path):
    good = tmp_path / "good.conf"
    write_config(good, certs)
    bad = tmp_path / "env-broken.conf"
    bad.write_text("workers = ;\n")
    r = helpers.run_cli(["-t", "-c", str(good)],
                        env={"STARTTLS_PROXY_CONFIG": str(bad)})
    assert r.returncode == 0, r.out


def test_default_config_path_relative_to_cwd(stp_bin, tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "starttls-proxy.conf").write_text("workers = ;\n")
    e = dict(os.environ)
    e.pop("STARTTLS_PROXY_CONFIG", None)
    r = subprocess.run([helpers.stp_bin(), "-t"], capture_output=True,
                       env=e, cwd=str(tmp_path), timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 1, out
    assert "starttls-proxy.conf" in out, out


def test_proxy_started_from_environment_config_serves(
        sink, proxy_factory, connect):
    proxy = proxy_factory(sink, start=False, use_c=False)
    proxy.env["STARTTLS_PROXY_CONFIG"] = proxy.conf_path
    proxy.start()
    c = connect(proxy)
    assert c.greeting_reply.raw == b"220 sink.test ESMTP RecordingSink ready\r\n"


def test_sigterm_stops_idle_proxy_with_exit_0(sink, proxy_factory):
    proxy = proxy_factory(sink)
    proxy.signal(signal.SIGTERM)
    rc = proxy.proc.wait(10)
    assert rc == 0, proxy.stderr()


def test_sigint_stops_idle_proxy_with_exit_0(sink, proxy_factory):
    proxy = proxy_factory(sink)
    proxy.signal(signal.SIGINT)
    rc = proxy.proc.wait(10)
    assert rc == 0, proxy.stderr()


def test_sigterm_with_open_session_sends_421_432_and_exits_0(
        sink, proxy_factory, connect):
    proxy = proxy_factory(sink, top={"shutdown_timeout": 1})
    c = connect(proxy)
    c.ehlo()
    t0 = time.monotonic()
    proxy.signal(signal.SIGTERM)
    time.sleep(0.3)
    # New connections are no longer served: refused, closed, 421, or left
    # unanswered; never greeted.
    try:
        n = helpers.Client(proxy.port, timeout=1.0)
        try:
            first = n.pending(1.0)
        finally:
            n.close()
        assert not first.startswith(b"220"), first
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    r = c.read_reply()
    assert (r.code, r.enhanced) == (421, "4.3.2"), r
    assert time.monotonic() - t0 <= 6
    c.read_until_closed(5)
    assert proxy.proc.wait(10) == 0, proxy.stderr()


def test_sigterm_lets_running_session_finish(sink, proxy_factory, connect):
    proxy = proxy_factory(sink, top={"shutdown_timeout": 10})
    c = connect(proxy)
    c.ehlo()
    proxy.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: late\r\n\r\nx\r\n.\r\n")
    assert c.read_reply().code == 250
    assert c.cmd("QUIT").code == 221
    assert proxy.proc.wait(8) == 0, proxy.stderr()


def test_sighup_reloads_certificates_for_new_connections(
        sink, proxy_factory, connect, certs):
    proxy = proxy_factory(sink)
    old = connect(proxy)
    old.ehlo()
    cfg = dict(proxy.config)
    lst = dict(cfg["listeners"][0])
    lst["tls"] = dict(lst["tls"], certificates=[
        {"cert": certs.cert("mx2"), "key": certs.key("mx2")}])
    cfg["listeners"] = [lst]
    proxy.rewrite(cfg)
    proxy.signal(signal.SIGHUP)

    def default_cert():
        c = helpers.Client(proxy.port)
        try:
            c.greeting()
            c.ehlo()
            ctx = certs.client_context()
            ctx.check_hostname = False
            c.starttls(ctx, server_hostname=None)
            return c.sock.getpeercert(binary_form=True)
        finally:
            c.close()

    assert helpers.wait_until(lambda: default_cert() == certs.der("mx2"), 5)
    # The session opened before the reload keeps working.
    assert old.cmd("NOOP").code == 250
    old.starttls(certs.client_context(), "mx1.example.org")
    assert old.ehlo().code == 250


def test_sighup_with_bad_config_keeps_old_one(sink, proxy_factory, connect):
    proxy = proxy_factory(sink)
    with open(proxy.conf_path, "w") as f:
        f.write("workers = ;\n")
    proxy.signal(signal.SIGHUP)
    time.sleep(1.0)
    assert proxy.proc.poll() is None, proxy.stderr()
    c = connect(proxy)
    assert c.ehlo().code == 250


def test_sigterm_reaches_tls_session_with_421_432(sink, proxy_factory,
                                                  connect, tls_ctx):
    proxy = proxy_factory(sink, top={"shutdown_timeout": 1})
    c = connect(proxy)
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    proxy.signal(signal.SIGTERM)
    r = c.read_reply()
    assert (r.code, r.enhanced) == (421, "4.3.2"), r
    assert proxy.proc.wait(10) == 0, proxy.stderr()


def _tree_uids(pid):
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    uids = {}
    for p in pids:
        with open("/proc/%d/status" % p) as f:
            for line in f:
                if line.startswith("Uid:"):
                    uids[p] = int(line.split()[2])      # effective uid
    return uids


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_user_drops_privileges_and_still_serves(sink, proxy_factory, connect,
                                                tls_ctx):
    import pwd
    nobody = pwd.getpwnam("nobody").pw_uid
    proxy = proxy_factory(sink, top={"user": "nobody"})
    c = connect(proxy)
    c.ehlo()
    c.starttls(tls_ctx)
    assert c.ehlo().code == 250
    uids = _tree_uids(proxy.proc.pid)
    assert nobody in uids.values(), uids
