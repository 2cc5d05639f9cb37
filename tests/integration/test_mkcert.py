"""certs/mkcert (issue 10): host names only, --rsa, key file modes."""

import os
import subprocess

import pytest

MKCERT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "certs", "mkcert")


def mkcert(*args):
    r = subprocess.run(["sh", MKCERT] + list(args), capture_output=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    r.out = (r.stdout + r.stderr).decode(errors="replace")
    return r


def key_text(cert):
    return subprocess.run(["openssl", "x509", "-in", cert, "-noout",
                           "-text"], capture_output=True, check=True,
                          timeout=30).stdout.decode()


@pytest.mark.parametrize("name", ["192.0.2.1", "10.0.0.1.", "::1",
                                  "2001:db8::25"])
def test_ip_address_is_refused_as_a_host_name(tmp_path, name):
    r = mkcert("-d", str(tmp_path), "mx.example.org", name)
    assert r.returncode == 1, r.out
    assert "IP" in r.out and "not a host name" in r.out, r.out
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)


def test_default_is_ecdsa_p256(tmp_path):
    r = mkcert("-d", str(tmp_path), "mx.example.org")
    assert r.returncode == 0, r.out
    text = key_text(str(tmp_path / "mx.example.org.pem"))
    assert "id-ecPublicKey" in text and "prime256v1" in text, text
    assert "warning" not in r.out, r.out


@pytest.mark.parametrize("opt,bits", [("--rsa", 2048), ("--rsa=3072", 3072)])
def test_rsa_key_next_to_the_ecdsa_one(tmp_path, opt, bits):
    assert mkcert("-d", str(tmp_path), "mx.example.org").returncode == 0
    r = mkcert(opt, "-d", str(tmp_path), "mx.example.org")
    assert r.returncode == 0, r.out
    crt = tmp_path / "mx.example.org.rsa.pem"
    assert str(crt) in r.out, r.out
    text = key_text(str(crt))
    assert "rsaEncryption" in text and "(%d bit)" % bits in text, text
    assert "DNS:mx.example.org" in text, text
    assert oct(os.stat(tmp_path / "mx.example.org.rsa.key").st_mode
               & 0o777) == "0o600"


def test_rsa_bad_size_is_refused(tmp_path):
    r = mkcert("--rsa=1024", "-d", str(tmp_path), "mx.example.org")
    assert r.returncode == 1, r.out
    assert "2048 or 3072" in r.out, r.out


@pytest.mark.parametrize("mode,word", [(0o644, "world-readable"),
                                       (0o640, "group-readable")])
def test_warns_about_a_readable_key_it_finds(tmp_path, mode, word):
    assert mkcert("-d", str(tmp_path), "mx.example.org").returncode == 0
    key = tmp_path / "mx.example.org.key"
    os.chmod(key, mode)
    r = mkcert("-d", str(tmp_path), "mx.example.org")
    assert r.returncode == 1, r.out          # exists, no -f
    assert word in r.out and str(key) in r.out, r.out


def test_tlsa_port(tmp_path):
    assert mkcert("-d", str(tmp_path), "mx.example.org").returncode == 0
    r = mkcert("--tlsa", "--port", "465", str(tmp_path / "mx.example.org.pem"))
    assert r.returncode == 0, r.out
    assert r.out.startswith("_465._tcp.mx.example.org. IN TLSA 3 1 1 "), r.out
