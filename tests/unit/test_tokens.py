"""Token verification (no I/O): algorithms, keys, claims, and the principal a token makes."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, tzinfo
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from app import config
from app.auth.keys import JwksKeys, PemKey, published_keys
from app.auth.tokens import Verifier, scopes_of
from app.config import AuthSettings, ConfigError
from app.domain.errors import InvalidToken
from app.domain.principal import Principal, Scope
from scripts.stack.tokens import AUDIENCE, ISSUER, SEED_CUSTOMER, SigningKey
from tests.support.tokens import hostile_tokens

pytestmark = pytest.mark.anyio
SETTINGS = config.load(
    {"AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE, "CURSOR_SECRET": "s" * 32}, env_file=None
).auth


def claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SEED_CUSTOMER,
        "scope": "orders:read orders:write",
        "exp": now + 60,
        **changes,
    }


def pem(private: object, path: Path) -> str:
    public = private.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(public)
    return str(path)


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def verifier(key: SigningKey, tmp_path: Path) -> Verifier:
    return Verifier(SETTINGS, PemKey(pem(key.private, tmp_path / "k.pem"), SETTINGS.algorithms))


async def test_a_customer_token_makes_a_customer(key: SigningKey, verifier: Verifier) -> None:
    principal = await verifier.principal(key.customer())
    assert principal.customer_id == uuid.UUID(SEED_CUSTOMER)
    assert principal.scopes == {"orders:read", "orders:write"}
    assert not principal.is_staff and principal.actor == f"customer:{SEED_CUSTOMER}"


async def test_a_staff_token_needs_no_customer(key: SigningKey, verifier: Verifier) -> None:
    principal = await verifier.principal(key.admin("ops-1"))
    assert principal.is_staff and principal.customer_id is None
    assert principal.actor == "staff:ops-1"


@pytest.mark.parametrize(
    "name", [n for n in hostile_tokens(SigningKey.generate()) if n not in ("empty", "basic")]
)
async def test_hostile_tokens_are_refused(key: SigningKey, verifier: Verifier, name: str) -> None:
    value = hostile_tokens(key)[name][1].removeprefix("Bearer").strip()
    with pytest.raises(InvalidToken):
        await verifier.principal(value)
    assert len(verifier.verified) == 0  # a refused token is never remembered


@pytest.mark.parametrize(
    ("algorithm", "private"),
    [
        ("RS256", rsa.generate_private_key(65537, 2048)),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
    ],
)
async def test_each_allowed_algorithm_verifies(
    algorithm: str, private: object, tmp_path: Path
) -> None:
    verifier = Verifier(SETTINGS, PemKey(pem(private, tmp_path / "k.pem"), SETTINGS.algorithms))
    token = jwt.encode(claims(), private, algorithm=algorithm)  # type: ignore[arg-type]
    assert (await verifier.principal(token)).subject == SEED_CUSTOMER


async def test_an_allowed_algorithm_with_another_keys_type_is_refused(tmp_path: Path) -> None:
    """An RSA key cannot be made to check an ES256 token, or the reverse."""
    rsa_key = rsa.generate_private_key(65537, 2048)
    verifier = Verifier(SETTINGS, PemKey(pem(rsa_key, tmp_path / "k.pem"), SETTINGS.algorithms))
    es_token = jwt.encode(claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    with pytest.raises(InvalidToken, match="cannot verify ES256"):
        await verifier.principal(es_token)


def test_a_small_rsa_key_or_a_private_key_file_is_a_config_error(tmp_path: Path) -> None:
    small = rsa.generate_private_key(65537, 1024)
    with pytest.raises(ConfigError, match="AUTH_PUBLIC_KEY_FILE"):
        PemKey(pem(small, tmp_path / "small.pem"), SETTINGS.algorithms)
    private = tmp_path / "private.pem"
    private.write_bytes(
        small.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ConfigError, match="cannot read a PEM public key"):
        PemKey(str(private), SETTINGS.algorithms)


async def test_leeway_forgives_a_little_clock_skew(key: SigningKey, verifier: Verifier) -> None:
    now = int(time.time())
    assert await verifier.principal(key.customer(exp=now - 5, nbf=now + 5))
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.principal(key.customer(exp=now - 120))


async def test_a_token_without_exp_is_refused(key: SigningKey, verifier: Verifier) -> None:
    token = jwt.encode(
        {k: v for k, v in claims().items() if k != "exp"},
        key.private,
        algorithm="ES256",
    )
    with pytest.raises(InvalidToken):
        await verifier.principal(token)


def test_scopes_come_from_scope_or_scp() -> None:
    assert scopes_of({"scope": "orders:read  orders:write"}) == {"orders:read", "orders:write"}
    assert scopes_of({"scp": ["orders:admin", 5]}) == {"orders:admin"}
    assert scopes_of({"scp": "orders:read", "scope": 7}) == {"orders:read"}


async def test_the_customer_claim_is_configurable(key: SigningKey, tmp_path: Path) -> None:
    settings = AuthSettings(**{**_fields(SETTINGS), "customer_claim": "customer_id"})
    verifier = Verifier(settings, PemKey(pem(key.private, tmp_path / "k.pem"), ("ES256",)))
    customer = str(uuid.uuid4())
    principal = await verifier.principal(
        key.token("user-1", ("orders:read",), customer_id=customer)
    )
    assert (principal.subject, str(principal.customer_id)) == ("user-1", customer)


def _fields(settings: AuthSettings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in settings.__struct_fields__}


# --- JWKS ---------------------------------------------------------------------------


class FakeIssuer:
    """A JWKS endpoint: its keys change when the issuer rotates them."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = [SigningKey.generate()]
        self.fetches = 0
        self.now = 1000.0

    def fetch(self, _: str) -> bytes:
        self.fetches += 1
        jwks = [
            json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k.private.public_key())) for k in self.keys
        ]
        for entry, k in zip(jwks, self.keys, strict=True):
            entry.update(kid=k.kid, use="sig", alg="ES256")
        return json.dumps({"keys": jwks}).encode()


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


@pytest.fixture
def jwks(issuer: FakeIssuer) -> Verifier:
    keys = JwksKeys("https://issuer.test/jwks", cache_seconds=300, fetch=issuer.fetch,
                    clock=lambda: issuer.now)  # fmt: skip
    return Verifier(SETTINGS, keys)


async def test_jwks_is_fetched_once_and_cached(issuer: FakeIssuer, jwks: Verifier) -> None:
    for _ in range(5):
        await jwks.principal(issuer.keys[0].customer())
    assert issuer.fetches == 1
    issuer.now += 301
    await jwks.principal(issuer.keys[0].customer())
    assert issuer.fetches == 2


async def test_an_unknown_kid_refetches_once_then_is_refused(
    issuer: FakeIssuer, jwks: Verifier
) -> None:
    await jwks.principal(issuer.keys[0].customer())
    issuer.now += 11
    issuer.keys.append(SigningKey.generate())  # rotation: a new key appears
    assert await jwks.principal(issuer.keys[1].customer())
    assert issuer.fetches == 2
    stranger = SigningKey.generate()
    for _ in range(20):  # made-up kids do not turn into a fetch each
        with pytest.raises(InvalidToken, match="not one the issuer publishes"):
            await jwks.principal(stranger.customer())
    assert issuer.fetches == 2


async def test_a_key_pinned_to_another_alg_is_refused(issuer: FakeIssuer) -> None:
    body = json.loads(issuer.fetch(""))
    body["keys"][0]["alg"] = "RS256"
    keys = JwksKeys("https://x", cache_seconds=60, fetch=lambda _: json.dumps(body).encode())
    with pytest.raises(InvalidToken):  # the key is skipped as unusable, or refused for ES256
        await Verifier(SETTINGS, keys).principal(issuer.keys[0].customer())


def test_unusable_jwks_entries_are_skipped() -> None:
    good = json.loads(
        jwt.algorithms.OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key())
    )
    found = published_keys(
        {
            "keys": [
                {**good, "kid": "ok"},
                {**good},  # no kid
                {**good, "kid": "enc", "use": "enc"},
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                {"kty": "nonsense", "kid": "x"},
                "not an object",
            ]
        }
    )
    assert list(found) == ["ok"]
    with pytest.raises(ValueError, match="no `keys`"):
        published_keys({"keys": "x"})


def test_starting_without_a_way_to_check_tokens_is_one_line() -> None:
    with pytest.raises(ConfigError, match="AUTH_PUBLIC_KEY_FILE or AUTH_JWKS_URL"):
        config.require_auth(config.load({"CURSOR_SECRET": "s" * 32}, env_file=None).auth)
    disabled = config.load({"AUTH_DISABLED": "true", "CURSOR_SECRET": "s" * 32}, env_file=None)
    config.require_auth(disabled.auth)  # explicit: allowed
    with pytest.raises(ConfigError, match="CURSOR_SECRET"):
        config.require_auth(config.load({"AUTH_DISABLED": "true"}, env_file=None).auth)
    with pytest.raises(ConfigError, match="AUTH_ALGORITHMS"):
        config.load({"AUTH_ALGORITHMS": "RS256,HS256"}, env_file=None)
    with pytest.raises(ConfigError, match="at least 32"):
        config.load({"CURSOR_SECRET": "short"}, env_file=None)


# --- verified tokens, remembered -------------------------------------------------------


class Clock:
    """One instant for the cache and for PyJWT's own checks, moved by the test."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Also PyJWT's clock (jwt/api_jwt.py reads `datetime.now(tz=timezone.utc)`), so that an
    uncached check at the test's instant is the oracle a cached one is compared with."""
    clock = Clock()

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(clock.now, tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", Frozen)
    return clock


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature was checked (jwt.decode), in order."""
    seen: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        seen.append(token)
        return decode(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


@pytest.fixture
def pem_keys(key: SigningKey, tmp_path: Path) -> PemKey:
    return PemKey(pem(key.private, tmp_path / "k.pem"), SETTINGS.algorithms)


async def verdict(verifier: Verifier, token: str) -> Principal | str:
    """The principal, or the refusal's message: what a caller could tell apart."""
    try:
        return await verifier.principal(token)
    except InvalidToken as exc:
        return str(exc)


async def test_a_repeat_token_skips_the_signature_check(
    key: SigningKey, pem_keys: PemKey, decodes: list[str]
) -> None:
    verifier = Verifier(SETTINGS, pem_keys)
    token = key.customer()
    first = await verifier.principal(token)
    for _ in range(3):
        assert await verifier.principal(token) is first
    assert decodes == [token] and len(verifier.verified) == 1


# Token: iat t0, nbf t0+10, exp t0+60, remembered at t0; leeway 30. PyJWT: expired when
# exp <= now - leeway, not yet valid when nbf or iat > now + leeway.
@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-45.0, "the token is not valid yet"),  # the wall clock stepped back
        (-20.5, "the token is not valid yet"),
        (-20.0, SEED_CUSTOMER),  # nbf == now + leeway: valid
        (89.5, SEED_CUSTOMER),
        (90.0, "the token has expired"),  # exp == now - leeway: expired
        (3600.0, "the token has expired"),
    ],
)
async def test_a_hit_is_judged_as_an_uncached_check_at_the_same_instant(
    key: SigningKey,
    pem_keys: PemKey,
    clock: Clock,
    decodes: list[str],
    offset: float,
    expected: str,
) -> None:
    t0 = int(clock.now)
    token = key.customer(iat=t0, nbf=t0 + 10, exp=t0 + 60)
    cached = Verifier(SETTINGS, pem_keys, clock=clock)
    uncached = Verifier(SETTINGS, pem_keys, capacity=0)
    await cached.principal(token)
    clock.now = t0 + offset
    found = await verdict(cached, token)
    assert decodes == [token]  # answered from the cache
    assert found == await verdict(uncached, token)
    assert (found.subject if isinstance(found, Principal) else found) == expected
    assert len(cached.verified) == (0 if "expired" in expected else 1)  # expired: dropped


async def test_a_token_valid_from_later_is_accepted_once_that_time_comes(
    key: SigningKey, pem_keys: PemKey, clock: Clock, decodes: list[str]
) -> None:
    t0 = int(clock.now)
    verifier = Verifier(SETTINGS, pem_keys, clock=clock)
    token = key.customer(nbf=t0 + 100, exp=t0 + 600)
    with pytest.raises(InvalidToken, match=r"^the token is not valid yet$"):
        await verifier.principal(token)
    assert len(verifier.verified) == 0
    clock.now = t0 + 70  # nbf == now + leeway
    assert (await verifier.principal(token)).subject == SEED_CUSTOMER
    clock.now = t0 + 80
    assert (await verifier.principal(token)).subject == SEED_CUSTOMER
    assert decodes == [token, token]  # refused, verified; then one hit


@pytest.fixture
def rotating(issuer: FakeIssuer) -> JwksKeys:
    return JwksKeys(
        "https://issuer.test/jwks", cache_seconds=300, fetch=issuer.fetch, clock=lambda: issuer.now
    )


async def test_a_key_rotated_out_fails_a_remembered_token_as_uncached(
    issuer: FakeIssuer, rotating: JwksKeys
) -> None:
    verifier, uncached = Verifier(SETTINGS, rotating), Verifier(SETTINGS, rotating, capacity=0)
    token = issuer.keys[0].customer()
    await verifier.principal(token)
    issuer.keys = [SigningKey.generate()]  # the old key is withdrawn
    issuer.now += 301  # the JWKS is stale: the next key_for fetches it again
    found = await verdict(verifier, token)
    assert found == "the token's key is not one the issuer publishes"
    assert found == await verdict(uncached, token)
    assert len(verifier.verified) == 0


async def test_a_jwks_refetch_that_keeps_the_key_verifies_once_more(
    issuer: FakeIssuer, rotating: JwksKeys, decodes: list[str]
) -> None:
    """A refetch makes new key objects: the remembered one is not trusted, but checked again."""
    verifier = Verifier(SETTINGS, rotating)
    token = issuer.keys[0].customer()
    await verifier.principal(token)
    issuer.now += 301
    for _ in range(3):
        assert (await verifier.principal(token)).subject == SEED_CUSTOMER
    assert decodes == [token, token] and issuer.fetches == 2


async def test_the_cache_holds_at_most_its_capacity_least_recently_used_first(
    key: SigningKey, pem_keys: PemKey, decodes: list[str]
) -> None:
    verifier = Verifier(SETTINGS, pem_keys, capacity=8)
    tokens = [key.customer() for _ in range(40)]  # distinct: each has its own jti
    for token in tokens[:8]:
        await verifier.principal(token)
    await verifier.principal(tokens[0])  # used again: now the most recent
    await verifier.principal(tokens[8])  # one too many: the least recently used goes
    decodes.clear()
    await verifier.principal(tokens[0])
    await verifier.principal(tokens[1])
    assert decodes == [tokens[1]]  # tokens[0] was still there, tokens[1] verified afresh
    for token in tokens[9:]:
        await verifier.principal(token)
        assert len(verifier.verified) == 8


def _one_character_off(token: str, segment: int) -> str:
    """The token with one character in the middle of a segment changed (every bit of a
    middle character is data, so the decoded bytes differ)."""
    parts = token.split(".")
    middle = len(parts[segment]) // 2
    old = parts[segment][middle]
    parts[segment] = (
        parts[segment][:middle] + ("A" if old != "A" else "B") + parts[segment][middle + 1 :]
    )
    return ".".join(parts)


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["header", "payload", "signature"])
async def test_a_token_one_character_off_a_remembered_one_is_checked_afresh(
    key: SigningKey, pem_keys: PemKey, decodes: list[str], segment: int
) -> None:
    verifier = Verifier(SETTINGS, pem_keys)
    token = key.customer()
    await verifier.principal(token)
    forged = _one_character_off(token, segment)
    assert forged != token and len(forged) == len(token)
    with pytest.raises(InvalidToken):
        await verifier.principal(forged)
    assert len(verifier.verified) == 1
    assert (await verifier.principal(token)).subject == SEED_CUSTOMER


def test_scopes_are_the_documented_names() -> None:
    assert [s.value for s in Scope] == ["orders:read", "orders:write", "orders:admin"]
