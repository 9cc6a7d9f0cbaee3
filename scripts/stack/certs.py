"""A throwaway certificate authority and a broker certificate for one local stack.

`make_broker_certs(directory)` writes, once per directory (kept across restarts):

- `ca.pem`: the stack's own CA certificate, which clients trust (`ssl.ca.location`,
  `KAFKA_SSL_CA_LOCATION`) and the broker too (`ssl.truststore.type=PEM`), for the
  connections it makes to itself;
- `broker.pem`: the broker's private key (PKCS#8, unencrypted: the file is 0600 in a
  0700 state directory, like the passwords beside it) followed by its certificate,
  signed by that CA, for 127.0.0.1 and localhost — Kafka reads it as a PEM key store
  (`ssl.keystore.type=PEM`, Kafka 2.7+).

The CA's private key is never written: nothing can sign another certificate later, so
a stolen state directory cannot mint a broker the clients would trust elsewhere.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scripts.stack import credentials

VALID_FOR = datetime.timedelta(days=825)  # long enough for a dev stack, short by CA rules


@dataclass(frozen=True)
class BrokerCerts:
    ca: Path  # the CA certificate (PEM)
    keystore: Path  # the broker's key and certificate (PEM)


def make_broker_certs(directory: Path) -> BrokerCerts:
    """The CA and broker files in `directory`, made now if either is missing."""
    found = BrokerCerts(directory / "ca.pem", directory / "broker.pem")
    if found.ca.exists() and found.keystore.exists():
        return found
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orders local stack CA")])
    ca_cert = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    broker_cert = _certificate(broker_name, ca_name, broker_key.public_key(), ca_key, ca=False)
    key_pem = broker_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    chain = broker_cert.public_bytes(serialization.Encoding.PEM)
    credentials.write_private(found.keystore, (key_pem + chain).decode())
    found.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return found


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    signing_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    """A certificate: a CA that signs only certificates, or a TLS server for loopback."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a little clock skew
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256())
