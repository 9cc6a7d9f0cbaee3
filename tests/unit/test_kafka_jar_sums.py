"""Kafka's jars are checked against the SHA-256 sums kept in git before any is used."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from scripts.stack.kafka import SUMS, VERIFIED, verify_jars

STANDIN_SUMS = Path(__file__).resolve().parents[1] / "containers/standins/kafka/jars.sha256"


def lib_with(tmp_path: Path, jars: dict[str, bytes]) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    for name, content in jars.items():
        (lib / name).write_bytes(content)
    return lib


def sums_for(tmp_path: Path, jars: dict[str, bytes]) -> Path:
    sums = tmp_path / "jars.sha256"
    sums.write_text(
        "".join(f"{hashlib.sha256(c).hexdigest()}  {n}\n" for n, c in sorted(jars.items()))
    )
    return sums


def test_matching_jars_pass_and_are_marked(tmp_path: Path) -> None:
    jars = {"a-1.jar": b"a", "b-2.jar": b"b"}
    lib = lib_with(tmp_path, jars)
    verify_jars(lib, sums_for(tmp_path, jars))
    assert (lib / VERIFIED).exists()


@pytest.mark.parametrize(
    ("on_disk", "problem"),
    [
        ({"a-1.jar": b"tampered", "b-2.jar": b"b"}, "wrong SHA-256 ['a-1.jar']"),
        ({"a-1.jar": b"a", "b-2.jar": b"b", "evil-1.jar": b"x"}, "not listed ['evil-1.jar']"),
        ({"a-1.jar": b"a"}, "missing ['b-2.jar']"),
    ],
    ids=["changed", "extra", "missing"],
)
def test_a_changed_extra_or_missing_jar_is_refused(
    tmp_path: Path, on_disk: dict[str, bytes], problem: str
) -> None:
    sums = sums_for(tmp_path, {"a-1.jar": b"a", "b-2.jar": b"b"})
    lib = lib_with(tmp_path, on_disk)
    with pytest.raises(RuntimeError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        verify_jars(lib, sums)
    assert not (lib / VERIFIED).exists()


@pytest.mark.parametrize("sums", [SUMS, STANDIN_SUMS], ids=["broker", "stand-in"])
def test_the_recorded_sums_are_well_formed(sums: Path) -> None:
    lines = sums.read_text().splitlines()
    names = [line.split(maxsplit=1)[1] for line in lines]
    assert len(names) == len(set(names)) > 40
    for line in lines:
        digest, name = line.split(maxsplit=1)
        assert len(digest) == 64 and int(digest, 16) >= 0 and name.endswith(".jar"), line
    assert any(name.startswith("kafka_2.13-") for name in names)
