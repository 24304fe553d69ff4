"""A small certificate authority for tests and local experiments.

:func:`make_test_pki` writes a CA and one certificate per party, each naming
the party in its subject common name *and* its subject alternative name (a
DNS name), which is how :class:`~skfed.runtime.grpc.GrpcRuntime` identifies
peers: a party connecting to ``bank`` checks that the server's certificate
says ``bank``, and the ``bank`` server checks that a message claiming to come
from ``shop`` was sent over a connection authenticated by ``shop``'s
certificate.

For a deployment between organisations, each one generates its own private
key and has a CA the federation agreed on sign its certificate request; the
private keys never leave their owners. ``docs/deployment.rst`` shows the
``openssl`` commands.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["make_test_pki"]


def _key():
    # P-256: fast to generate and to handshake; what gRPC's TLS stack prefers.
    return ec.generate_private_key(ec.SECP256R1())


def _write(path, data, private=False):
    # Always a new file: O_TRUNC on an existing one would keep its (perhaps
    # wider) mode, and opening without O_NOFOLLOW would write through a
    # symlink planted in the directory. Unlinking removes a link, never its
    # target; O_EXCL then refuses anything recreated in between.
    mode = 0o600 if private else 0o644
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb") as f:
        if hasattr(os, "fchmod"):
            os.fchmod(f.fileno(), mode)  # exactly this mode, whatever the umask
        f.write(data)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_test_pki(directory, parties, *, ca_name="skfed test CA", days=30):
    """Create a CA and a certificate and key for each party under ``directory``.

    The keys are unencrypted files (mode 0600): fine for tests and local
    experiments, not for production, where each organisation keeps its own
    key and only sends a certificate signing request.

    Parameters
    ----------
    directory : str or path-like
        Created if missing. Receives ``ca.pem``, ``ca.key`` and, per party,
        ``<party>.pem`` and ``<party>.key``.
    parties : iterable of str
        Party names; each certificate names its party in the subject common
        name and as a DNS subject alternative name.
    ca_name : str, default="skfed test CA"
        Common name of the CA (a second, foreign CA for tests needs another).
    days : int, default=30
        Validity of every certificate.

    Returns
    -------
    paths : dict
        ``{"cafile": ..., "cakey": ..., party: {"certfile": ..., "keyfile": ...}, ...}``.

    Examples
    --------
    >>> import tempfile
    >>> from skfed.runtime.certs import make_test_pki
    >>> paths = make_test_pki(tempfile.mkdtemp(), ["bank", "shop"])
    >>> sorted(paths["bank"])
    ['certfile', 'keyfile']
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    ca_key = _key()
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject).issuer_name(ca_subject)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"cafile": os.path.join(directory, "ca.pem"),
             "cakey": os.path.join(directory, "ca.key")}
    _write(paths["cafile"], ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(paths["cakey"], _pem_key(ca_key), private=True)

    for party in parties:
        if not isinstance(party, str) or not party or "/" in party or party.startswith("."):
            raise ValueError(f"party names must be plain non-empty strings, got {party!r}")
        key = _key()
        names = [x509.DNSName(party)]
        try:  # a party named by an IP address also gets an IP SAN
            names.append(x509.IPAddress(ipaddress.ip_address(party)))
        except ValueError:
            pass
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)]))
            .issuer_name(ca_subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            # Every party is both a TLS server (it receives) and a client (it sends).
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        entry = {"certfile": os.path.join(directory, f"{party}.pem"),
                 "keyfile": os.path.join(directory, f"{party}.key")}
        _write(entry["certfile"], cert.public_bytes(serialization.Encoding.PEM))
        _write(entry["keyfile"], _pem_key(key), private=True)
        paths[party] = entry
    return paths
