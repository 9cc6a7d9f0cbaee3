"""The local stack's throwaway CA and broker certificate (scripts/stack/certs.py)."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from scripts.stack.certs import make_broker_certs
from scripts.stack.kafka import LocalKafka


def test_the_broker_certificate_is_signed_by_the_ca_for_loopback(tmp_path: Path) -> None:
    made = make_broker_certs(tmp_path)
    (ca,) = x509.load_pem_x509_certificates(made.ca.read_bytes())
    (broker,) = x509.load_pem_x509_certificates(made.keystore.read_bytes())
    broker.verify_directly_issued_by(ca)  # raises if not
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not broker.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_key_is_private_and_matches_the_certificate(tmp_path: Path) -> None:
    made = make_broker_certs(tmp_path)
    assert stat.S_IMODE(made.keystore.stat().st_mode) == 0o600
    text = made.keystore.read_bytes()
    assert text.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, what Kafka's PEM store reads
    key = load_pem_private_key(text, password=None)
    (broker,) = x509.load_pem_x509_certificates(text)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == broker.public_key()


def test_no_ca_key_is_left_to_sign_anything_else(tmp_path: Path) -> None:
    made = make_broker_certs(tmp_path)
    assert b"PRIVATE KEY" not in made.ca.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broker.pem", "ca.pem"]


def test_made_once_per_directory(tmp_path: Path) -> None:
    first = make_broker_certs(tmp_path).ca.read_bytes()
    assert make_broker_certs(tmp_path).ca.read_bytes() == first
    other = make_broker_certs(tmp_path / "other").ca.read_bytes()
    assert other != first, "each stack its own CA"


@pytest.mark.parametrize(("tls", "protocol"), [(True, "sasl_ssl"), (False, "sasl_plaintext")])
def test_clients_of_the_local_broker_trust_its_ca(tmp_path: Path, tls: bool, protocol: str) -> None:
    kafka = LocalKafka(tmp_path, port=1, controller_port=2, tls=tls)
    config = kafka.client_config()
    assert config["security.protocol"] == protocol
    assert config.get("ssl.ca.location") == (str(tmp_path / "tls" / "ca.pem") if tls else None)
    env = kafka.process_env("orders-relay")
    assert env.get("KAFKA_SSL_CA_LOCATION") == config.get("ssl.ca.location")
    properties = kafka._write_config().read_text()
    assert (f"ssl.keystore.location={tmp_path / 'tls' / 'broker.pem'}" in properties) == tls
