"""starttls-proxy -t: the per-certificate report (SPEC §5, issue 3)."""

import hashlib
import re
import subprocess

import helpers
from test_cli import write_config


def _spki_sha256(cert_path):
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-pubkey",
                          "-noout"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                         input=pub, check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


def test_check_prints_key_type_validity_issuer_and_chain(stp_bin, certs,
                                                         tmp_path):
    conf = tmp_path / "good.conf"
    write_config(conf, certs)
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 0, r.out
    assert "listener mx" in r.out, r.out
    assert re.search(r"key type: EC P-256", r.out), r.out
    assert re.search(r"not before: \d{4}-\d\d-\d\d", r.out), r.out
    assert re.search(r"not after: \d{4}-\d\d-\d\d", r.out), r.out
    assert re.search(r"issuer: .*\S", r.out), r.out
    assert re.search(r"chain: ", r.out), r.out


def test_check_prints_dane_tlsa_record_per_mx_name(stp_bin, certs, tmp_path):
    conf = tmp_path / "good.conf"
    # The record is for the listener's port (SPEC §5); -t binds nothing.
    write_config(conf, certs, listen="127.0.0.1:25")
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 0, r.out
    want = _spki_sha256(certs.cert("mx2"))
    line = "_25._tcp.mx2.example.org. IN TLSA 3 1 1 " + want
    assert line in r.out, r.out
    # A wildcard is not a host name a sender connects to: no record.
    assert "_25._tcp.*." not in r.out, r.out


def test_check_dane_owner_names_are_normalised(stp_bin, certs, tmp_path):
    """A configured name keeps its case and trailing dot in the config;
    the TLSA owner name is lower case with one final dot.  A wildcard is
    skipped, and -t says so."""
    conf = tmp_path / "names.conf"
    write_config(conf, certs, listen="127.0.0.1:2525", tls={
        "certificates": [
            {"cert": certs.cert("mx1"), "key": certs.key("mx1"),
             "names": ["MX1.Example.ORG."]},
            {"cert": certs.cert("wild"), "key": certs.key("wild")}]})
    r = helpers.run_cli(["-t", "-c", str(conf)])
    assert r.returncode == 0, r.out
    want = _spki_sha256(certs.cert("mx1"))
    tlsa = [l.strip() for l in r.out.splitlines() if " IN TLSA " in l]
    assert tlsa == ["tlsa: _2525._tcp.mx1.example.org. IN TLSA 3 1 1 "
                    + want], r.out
    assert "tlsa: skipping wildcard name *.wild.example.org" in r.out, r.out
