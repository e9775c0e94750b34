"""Certificates and TLS helpers for the TLS system tests.

`certs` (session-scoped fixture) builds, once per session in a temporary
directory, with scripts/gen-certs:
  CA A: hop0..hop10, client, stranger (valid), old (already expired);
  CA B: rogue (a valid certificate from a CA the relays do not trust).

certs.tls(name, allow=None) is the `tls` dict of conftest's Relay keyword
({"ca", "cert", "key"[, "allow"]}) for a relay using name's certificate
and trusting CA A; relay_tls(conf) is the Relay keyword arguments for it.
"""

import os
import re
import shutil
import ssl
import subprocess
import tempfile

import pytest

from conftest import REPO

GEN_CERTS = os.path.join(REPO, "scripts", "gen-certs")
HOPS = ["hop%d" % i for i in range(11)]
CA_A_NAMES = HOPS + ["client", "stranger"]
EXPIRED_NAMES = ["old"]
CA_B_NAMES = ["rogue"]


def openssl_fingerprint(pem):
    """'sha256:<64 lower-case hex>' of the certificate in pem, as the
    openssl command computes it."""
    r = subprocess.run(["openssl", "x509", "-noout", "-fingerprint",
                        "-sha256", "-in", pem], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0, "openssl x509 -fingerprint: %s" % r.stderr
    m = re.search(r"=\s*([0-9A-Fa-f:]+)\s*$", r.stdout)
    assert m, "unexpected openssl output %r" % r.stdout
    return "sha256:" + m.group(1).replace(":", "").lower()


def normalise_fingerprint(fp):
    """'sha256:' + hex without colons, lower case."""
    head, _, hexpart = fp.partition(":")
    return head.lower() + ":" + hexpart.replace(":", "").lower()


class Certs:
    """Paths of the certificates of one test session."""

    def __init__(self, root):
        self.root = root
        self.dir_a = os.path.join(root, "ca-a")
        self.dir_b = os.path.join(root, "ca-b")
        self.ca = os.path.join(self.dir_a, "ca.pem")       # CA A
        self.ca_b = os.path.join(self.dir_b, "ca.pem")
        self._dirs = {}
        for n in CA_A_NAMES + EXPIRED_NAMES:
            self._dirs[n] = self.dir_a
        for n in CA_B_NAMES:
            self._dirs[n] = self.dir_b

    def build(self):
        for args in ([self.dir_a] + CA_A_NAMES,
                     ["-e", self.dir_a] + EXPIRED_NAMES,
                     [self.dir_b] + CA_B_NAMES):
            r = subprocess.run(["sh", GEN_CERTS] + args, capture_output=True,
                               text=True, timeout=120)
            if r.returncode != 0:
                pytest.fail("gen-certs %s: exit %d\n%s%s" % (
                    " ".join(args), r.returncode, r.stdout, r.stderr))
        return self

    def cert(self, name):
        return os.path.join(self._dirs[name], name + ".pem")

    def key(self, name):
        return os.path.join(self._dirs[name], name + ".key")

    def tls(self, name, allow=None):
        """The Relay `tls` dict of a relay presenting name's certificate
        and trusting CA A."""
        conf = {"ca": self.ca, "cert": self.cert(name),
                "key": self.key(name)}
        if allow is not None:
            conf["allow"] = list(allow)
        return conf

    def fingerprint(self, name):
        return openssl_fingerprint(self.cert(name))

    def client_context(self, name=None, ca=None):
        """A TLS client context trusting CA A (or ca), presenting name's
        certificate (none if name is None); no host name check."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(ca or self.ca)
        if name is not None:
            ctx.load_cert_chain(self.cert(name), self.key(name))
        return ctx


@pytest.fixture(scope="session", name="certs")
def certs_fixture():
    """The session's certificates (see the module docstring)."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make certificates")
    root = tempfile.mkdtemp(prefix="rlycerts", dir="/tmp")
    try:
        yield Certs(root).build()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def relay_tls(conf):
    """Relay keyword arguments that give the relay the `tls` setting conf
    (conftest writes it as the top-level tls group)."""
    return {"tls": conf}


def make_dated_cert(directory, name, not_before, not_after):
    """A CA (made once per directory, valid from a year ago for ten years)
    and a certificate for CN=name it signed, valid from not_before to
    not_after (naive datetimes, UTC), with its own EC key: returns the
    Relay `tls` dict {"ca", "cert", "key"}.  Uses Python's cryptography,
    since openssl 3.0's command line cannot set both dates of a CA-signed
    certificate."""
    import datetime
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        pytest.fail("python3-cryptography is needed to make dated "
                    "certificates (make deps)")

    def pem_key(key, path):
        with open(path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))

    def load_key(path):
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), None)

    def build(subject, issuer, pub, signer, nb, na, is_ca):
        b = (x509.CertificateBuilder().subject_name(subject)
             .issuer_name(issuer).public_key(pub)
             .serial_number(x509.random_serial_number())
             .not_valid_before(nb).not_valid_after(na)
             .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None),
                            critical=True))
        if not is_ca:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(name)]), critical=False)
        return b.sign(signer, hashes.SHA256())

    os.makedirs(directory, exist_ok=True)
    ca_pem = os.path.join(directory, "ca.pem")
    ca_key_path = os.path.join(directory, "ca.key")
    if not os.path.exists(ca_pem):
        now = datetime.datetime.utcnow()
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                "relayd dated test CA")])
        cert = build(ca_name, ca_name, ca_key.public_key(), ca_key,
                     now - datetime.timedelta(days=365),
                     now + datetime.timedelta(days=3650), True)
        pem_key(ca_key, ca_key_path)
        with open(ca_pem, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(ca_pem, "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = build(subject, ca_cert.subject, key.public_key(),
                 load_key(ca_key_path), not_before, not_after, False)
    paths = {"ca": ca_pem,
             "cert": os.path.join(directory, name + ".pem"),
             "key": os.path.join(directory, name + ".key")}
    pem_key(key, paths["key"])
    with open(paths["cert"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return paths
