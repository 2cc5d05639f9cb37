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


@pytest.mark.parametrize("name", ["expired", "future"])
def test_check_expired_or_not_yet_valid_certificate_exits_1_naming_path(
        stp_bin, certs, tmp_path, name):
    """SPEC §5: an expired or not-yet-valid certificate is an error of
    -t (exit 1, naming the path)."""
    conf = tmp_path / (name + ".conf")
    write_config(conf, certs, tls={"certificates": [
        {"cert": certs.cert(name), "key": certs.key(name)}]})
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 1, r.out
    assert certs.cert(name) in r.out, r.out


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


# -- issue 10: long options, config lookup, strict and precise config ------

def line_of(text, needle):
    assert needle in text, (needle, text)
    return text[:text.index(needle)].count("\n") + 1


def env_without_config():
    e = dict(os.environ)
    e.pop("STARTTLS_PROXY_CONFIG", None)
    return e


@pytest.mark.parametrize("long,short", [("--help", "-h"),
                                        ("--version", "-V")])
def test_long_options_are_the_short_ones(stp_bin, long, short):
    r_long = helpers.run_cli([long])
    r_short = helpers.run_cli([short])
    assert r_long.returncode == 0, r_long.out
    assert r_long.stdout == r_short.stdout, (r_long.out, r_short.out)
    assert r_long.stdout.strip(), r_long.out


def test_help_names_every_config_place(stp_bin):
    r = helpers.run_cli(["--help"])
    assert r.returncode == 0, r.out
    for s in ("STARTTLS_PROXY_CONFIG", "config/starttls-proxy.conf",
              "/starttls-proxy/starttls-proxy.conf", "--version"):
        assert s in r.out, (s, r.out)


def installed_default():
    """The compiled-in SYSCONFDIR default, as --help prints it."""
    out = helpers.run_cli(["-h"]).out
    m = re.search(r"(/\S*/starttls-proxy/starttls-proxy\.conf)", out)
    assert m, out
    return m.group(1)


@pytest.mark.parametrize("args", [[], ["-t"]], ids=["run", "check"])
def test_no_config_found_says_where_it_looked(stp_bin, tmp_path, args):
    sysconf = installed_default()
    if os.path.exists(sysconf):
        pytest.skip("an installed default config exists: %s" % sysconf)
    r = subprocess.run([helpers.stp_bin()] + args, capture_output=True,
                       env=env_without_config(), cwd=str(tmp_path),
                       timeout=30, stdin=subprocess.DEVNULL)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 1, out
    assert "-c FILE" in out, out
    assert "STARTTLS_PROXY_CONFIG" in out, out
    assert str(tmp_path / "config" / "starttls-proxy.conf") in out, out
    assert sysconf in out, out


def test_sysconfdir_default_is_absolute_and_etc(stp_bin):
    sysconf = installed_default()
    assert sysconf.startswith("/") and "/etc/" in sysconf, sysconf


def test_environment_wins_over_cwd_config(stp_bin, certs, tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "starttls-proxy.conf").write_text("workers = ;\n")
    good = tmp_path / "env-good.conf"
    write_config(good, certs)
    r = helpers.run_cli(["-t"], env={"STARTTLS_PROXY_CONFIG": str(good)},
                        cwd=str(tmp_path))
    assert r.returncode == 0, r.out
    assert "env-good.conf: configuration OK" in r.out, r.out


def test_cwd_config_is_used_when_present(stp_bin, certs, tmp_path):
    (tmp_path / "config").mkdir()
    write_config(tmp_path / "config" / "starttls-proxy.conf", certs)
    r = subprocess.run([helpers.stp_bin(), "-t"], capture_output=True,
                       env=env_without_config(), cwd=str(tmp_path),
                       timeout=30, stdin=subprocess.DEVNULL)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, out
    assert "config/starttls-proxy.conf: configuration OK" in out, out


@pytest.mark.parametrize("over,key,suggestion", [
    ({"policy": {"requre_tls": True}}, "requre_tls",
     "listeners[0].policy.require_tls"),
    ({"require_tls": True}, "require_tls",
     "listeners[0].policy.require_tls"),
    ({"backend": {"adress": "127.0.0.1:25"}}, "adress",
     "listeners[0].backend.address"),
    ({"limits": {"idle_timout": 5}}, "idle_timout",
     "listeners[0].limits.idle_timeout"),
    ({"tls": {"cipher": "HIGH"}}, "cipher", "listeners[0].tls.ciphers"),
], ids=["policy-typo", "wrong-group", "backend-typo", "limits-typo",
        "tls-typo"])
def test_unknown_key_is_an_error_with_did_you_mean(stp_bin, certs, tmp_path,
                                                   over, key, suggestion):
    conf = tmp_path / "typo.conf"
    write_config(conf, certs, **over)
    text = conf.read_text()
    line = line_of(text, key + " =")
    for args in (["-t", "-c", str(conf)], ["-c", str(conf)]):
        r = helpers.run_cli(args)
        assert r.returncode == 1, (args, r.out)
        assert re.search(r"%s:%d: unknown key '[^']*%s'" % (
            re.escape(str(conf)), line, re.escape(key)), r.out), r.out
        assert "did you mean '%s'" % suggestion in r.out, r.out


def test_unknown_top_level_key_is_an_error(stp_bin, certs, tmp_path):
    conf = tmp_path / "top.conf"
    write_config(conf, certs)
    conf.write_text(conf.read_text() + "watch_certificate = false;\n")
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 1, r.out
    assert "did you mean 'watch_certificates'" in r.out, r.out


def test_new_keys_are_accepted(stp_bin, certs, tmp_path):
    conf = tmp_path / "new.conf"
    write_config(conf, certs, limits={"data_timeout": 600})
    conf.write_text(conf.read_text() + "watch_certificates = false;\n")
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 0, r.out


def test_bad_ciphers_are_reported_at_their_line(stp_bin, certs, tmp_path):
    conf = tmp_path / "ciphers.conf"
    write_config(conf, certs, tls={"ciphers": "NO-SUCH-CIPHER"})
    text = conf.read_text()
    line = line_of(text, "ciphers =")
    assert line != line_of(text, "name =")
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 1, r.out
    assert "%s:%d: listeners[0].tls.ciphers:" % (conf, line) in r.out, r.out


def test_missing_certificate_names_line_key_and_path(stp_bin, certs,
                                                     tmp_path):
    conf = tmp_path / "nocert.conf"
    missing = str(tmp_path / "missing-cert.pem")
    write_config(conf, certs, tls={"certificates": [
        {"cert": certs.cert("mx1"), "key": certs.key("mx1")},
        {"cert": missing, "key": certs.key("mx1")}]})
    line = line_of(conf.read_text(), "missing-cert.pem")
    for args in (["-t", "-c", str(conf)], ["-c", str(conf)]):
        r = helpers.run_cli(args)
        assert r.returncode == 1, (args, r.out)
        assert "%s:%d: listeners[0].tls.certificates[1].cert: %s:" % (
            conf, line, missing) in r.out, (args, r.out)


def test_syntax_error_says_what_was_expected(stp_bin, tmp_path):
    conf = tmp_path / "comma.conf"
    conf.write_text("workers = 1;\n"
                    "listeners = (\n"
                    "  { name = \"a\"; listen = \"127.0.0.1:2525\";\n"
                    "    backend = { address = \"127.0.0.1:25\"; }; }\n"
                    "  { name = \"b\"; listen = \"127.0.0.1:2526\";\n"
                    "    backend = { address = \"127.0.0.1:25\"; }; }\n"
                    ");\n")
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 1, r.out
    assert "%s:5: syntax error" % conf in r.out, r.out
    assert "a ',' is missing between the list elements ending on line 4 " \
        "and starting on line 5" in r.out, r.out


def test_syntax_error_unquoted_string(stp_bin, tmp_path):
    conf = tmp_path / "quote.conf"
    conf.write_text("workers = 1;\nuser = mail;\n")
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 1, r.out
    assert "%s:2:" % conf in r.out and '"mail"' in r.out and \
        "double quotes" in r.out, r.out


def test_user_that_does_not_exist_is_a_config_error(stp_bin, certs,
                                                    tmp_path):
    """SPEC §2: exit 1 with file:LINE, from -t (which used to warn and
    pass) as from a start (which failed after binding, without a line)."""
    import pwd
    with pytest.raises(KeyError):
        pwd.getpwnam("stp-no-such-user")
    conf = tmp_path / "user.conf"
    cfg = write_config(conf, certs)
    cfg["user"] = "stp-no-such-user"
    conf.write_text(helpers.to_libconfig(cfg))
    line = line_of(conf.read_text(), "stp-no-such-user")
    for args in (["-t", "-c", str(conf)], ["-c", str(conf)]):
        r = helpers.run_cli(args)
        assert r.returncode == 1, (args, r.out)
        assert '%s:%d: user "stp-no-such-user": no such user' % (
            conf, line) in r.out, (args, r.out)
        assert "configuration OK" not in r.out, (args, r.out)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"],
                         ids=["same-address", "wildcard"])
def test_stats_on_a_listener_port_is_a_config_error(stp_bin, certs,
                                                    tmp_path, host):
    """The stats server cannot bind a listener's port (it has no
    SO_REUSEPORT): a config error at stats.listen's line, for -t and a
    start alike, never a start that fails after -t passed."""
    conf = tmp_path / "stats.conf"
    cfg = write_config(conf, certs)
    port = int(cfg["listeners"][0]["listen"].rsplit(":", 1)[1])
    cfg["stats"] = {"listen": "%s:%d" % (host, port)}
    conf.write_text(helpers.to_libconfig(cfg))
    text = conf.read_text()
    at = text.index('"%s:%d"' % (host, port), text.index("stats = "))
    line = text[:at].count("\n") + 1
    for args in (["-t", "-c", str(conf)], ["-c", str(conf)]):
        r = helpers.run_cli(args)
        assert r.returncode == 1, (args, r.out)
        assert ('%s:%d: stats.listen "%s:%d" collides with '
                'listeners[0].listen "127.0.0.1:%d"' % (
                    conf, line, host, port, port)) in r.out, (args, r.out)


@pytest.mark.parametrize("port,mode", [(465, "implicit"), (25, "starttls"),
                                       (2525, "starttls")])
def test_check_dane_lines_use_the_listener_port(stp_bin, certs, tmp_path,
                                                port, mode):
    conf = tmp_path / "dane.conf"
    write_config(conf, certs, listen="127.0.0.1:%d" % port, tls_mode=mode)
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 0, r.out
    tlsa = [l for l in r.out.splitlines() if "IN TLSA 3 1 1" in l]
    assert tlsa, r.out
    assert any("_%d._tcp.mx1.example.org. IN TLSA 3 1 1 " % port in l
               for l in tlsa), tlsa
    assert all("_%d._tcp." % port in l for l in tlsa), tlsa


def shipped_configs():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "config")
    root = os.path.abspath(root)
    out = [os.path.join(root, "starttls-proxy.conf")]
    ex = os.path.join(root, "examples")
    out += sorted(os.path.join(ex, f) for f in os.listdir(ex)
                  if f.endswith(".conf"))
    return out


@pytest.mark.parametrize("path", shipped_configs(),
                         ids=lambda p: os.path.basename(p))
def test_shipped_configs_pass_check(stp_bin, certs, tmp_path, path):
    """The reference config and every example pass -t under the strict
    rules once their certificate paths point at real files and their
    user exists (in-front-of-exim's "starttls-proxy" is made by the
    Debian package; here it becomes the invoking user)."""
    import pwd
    text = open(path).read()
    text = re.sub(r'\bcert\s*=\s*"[^"]*"', 'cert = "%s"' % certs.cert("mx1"),
                  text)
    text = re.sub(r'\bkey\s*=\s*"[^"]*"', 'key = "%s"' % certs.key("mx1"),
                  text)
    for user in re.findall(r'^\s*user\s*=\s*"([^"]+)"', text, re.M):
        try:
            pwd.getpwnam(user)
        except KeyError:
            me = pwd.getpwuid(os.geteuid()).pw_name
            text = re.sub(r'^(\s*user\s*=\s*)"%s"' % re.escape(user),
                          r'\1"%s"' % me, text, flags=re.M)
    conf = tmp_path / os.path.basename(path)
    conf.write_text(text)
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 0, r.out
    assert "configuration OK" in r.out, r.out
