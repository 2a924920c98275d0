"""A real private index: ./dev publish every member to pypiserver, install from that index only.

pypiserver runs on a free loopback port with its packages in a temporary directory, uploads
behind an htpasswd file and `--disable-fallback` (without it, pypiserver redirects a name it does
not hold to public PyPI: the very dependency confusion the install instructions avoid). The
index also serves the third-party wheels the installs need, downloaded once with the machine's
pip configuration, as a company mirror would. Every install here runs pip with its configuration
files switched off (a machine-wide `extra-index-url` would otherwise join in).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from dist_requirements import install_closure
from members import load_members

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
INSTALL = ["aegis-db[sqlite]", "aegis-auth"]  # what the service below installs
PUBLISHER = "publisher"

SERVICE = """
import asyncio
import json

from pydantic import SecretStr
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import aegis.auth
from aegis.core.errors import NotFoundError
from aegis.core.web import install_error_handlers
from aegis.db import DatabaseManager, DatabaseSettings

db = DatabaseManager(DatabaseSettings(url=SecretStr("sqlite:///service.db")))


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"database": await db.health_check()})


async def user(request: Request) -> JSONResponse:
    async with db.session() as session:
        row = (await session.execute(text("SELECT 1 WHERE 1 = 0"))).first()
    if row is None:
        raise NotFoundError(f"no user {request.path_params['user_id']}")
    return JSONResponse({})


app = Starlette(routes=[Route("/health", health), Route("/users/{user_id}", user)])
install_error_handlers(app)


async def get(path: str) -> tuple[int, str, object]:
    sent = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    headers = dict(sent[0]["headers"])
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], headers[b"content-type"].decode(), json.loads(body)


async def main() -> None:
    print(json.dumps([await get("/health"), await get("/users/42"), aegis.auth.__name__]))
    await db.dispose()


asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _pip_env() -> dict[str, str]:
    """The environment without pip's settings: no config file, no find-links, no extra index."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


@contextmanager
def _pypiserver(packages: Path, htpasswd: Path | None) -> Iterator[str]:
    """Run pypiserver on a free loopback port; yield its root URL."""
    port = _free_port()
    auth = ["-P", str(htpasswd), "-a", "update"] if htpasswd else ["-P", ".", "-a", "."]
    log = packages.parent / f"pypiserver-{port}.log"
    command = [str(BIN / "pypi-server"), "run", "-i", "127.0.0.1", "-p", str(port)]
    with log.open("w") as output:
        server = subprocess.Popen(
            [*command, "--disable-fallback", *auth, str(packages)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, f"pypiserver exited:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(url + "health", timeout=1) as answer:  # noqa: S310 - loopback
                    if answer.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, f"pypiserver did not answer:\n{log.read_text()}"
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@dataclass(frozen=True)
class Index:
    """A running private index: upload to ``url``, install from ``simple``."""

    url: str
    packages: Path
    password: str

    @property
    def simple(self) -> str:
        """The PEP 503 URL that pip's --index-url takes."""
        return self.url + "simple/"


@pytest.fixture(scope="module")
def mirror(built_dists: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The third-party wheels that installing INSTALL needs, as a company mirror holds them."""
    mirror = tmp_path_factory.mktemp("mirror")
    requirements = mirror.parent / "mirror-requirements.txt"
    closure = install_closure(built_dists, [*INSTALL, "aegis-core"])
    requirements.write_text("\n".join(str(r) for r in closure.third_party) + "\n")
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
    subprocess.run([*download, "--dest", str(mirror), "-r", str(requirements)], check=True)
    return mirror


@pytest.fixture(scope="module")
def private_index(
    built_dists: Path, mirror: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Index]:
    """pypiserver with upload auth, holding the mirror and every member, published by ./dev."""
    packages = tmp_path_factory.mktemp("private-index")
    for wheel in mirror.iterdir():
        shutil.copy2(wheel, packages)
    password = secrets.token_urlsafe(16)
    htpasswd = packages.parent / "htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"{PUBLISHER}:{hashed}\n")  # Apache's format, read by pypiserver
    with _pypiserver(packages, htpasswd) as url:
        env = {**os.environ, "TWINE_USERNAME": PUBLISHER, "TWINE_PASSWORD": password}
        published = subprocess.run(
            [str(ROOT / "dev"), "publish", "--index", url, "--dist", str(built_dists)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert published.returncode == 0, published.stdout + published.stderr
        assert password not in published.stdout + published.stderr
        yield Index(url, packages, password)


def _fresh_venv(path: Path) -> Path:
    venv.create(path, with_pip=True)
    return path / "bin" / "python"


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", *args],
        env=_pip_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_member_is_on_the_index_and_aegis_db_auth_install_from_it_alone(
    private_index: Index, built_dists: Path, tmp_path: Path
) -> None:
    uploaded = {p.name for p in private_index.packages.glob("aegis_*")}
    assert uploaded == {p.name for p in built_dists.iterdir()}

    python = _fresh_venv(tmp_path / "venv")
    db = _pip(python, "install", "--index-url", private_index.simple, "aegis-db[sqlite]")
    assert db.returncode == 0, db.stdout + db.stderr
    assert f"Looking in indexes: {private_index.simple}\n" in db.stdout
    listed = _pip(python, "list", "--format", "json")
    installed = {d["name"].lower(): d["version"] for d in json.loads(listed.stdout)}
    assert {"aegis-core", "aegis-db", "sqlalchemy", "aiosqlite"} <= set(installed)
    members = load_members(ROOT)
    assert installed["aegis-core"] == members["aegis-core"].version
    assert installed["aegis-db"] == members["aegis-db"].version
    for library in ["confluent-kafka", "aiokafka", "redis", "hiredis", "pyjwt", "python-jose"]:
        assert library not in installed, f"pip install aegis-db brought {library}"

    auth = _pip(python, "install", "--index-url", private_index.simple, "aegis-auth")
    assert auth.returncode == 0, auth.stdout + auth.stderr
    (tmp_path / "service.py").write_text(SERVICE)
    run = subprocess.run(
        [str(python), "service.py"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    health, missing, auth_module = json.loads(run.stdout)
    assert health == [200, "application/json", {"database": True}]
    assert missing[:2] == [404, "application/problem+json"]
    assert missing[2]["code"] == "NOT_FOUND"
    assert auth_module == "aegis.auth"


def test_uploads_need_the_password(private_index: Index, built_dists: Path) -> None:
    (wheel,) = built_dists.glob("aegis_core-*.whl")
    env = {**os.environ, "TWINE_USERNAME": PUBLISHER, "TWINE_PASSWORD": "wrong"}
    command = [sys.executable, "-m", "twine", "upload", "--non-interactive"]
    result = subprocess.run(
        [*command, "--repository-url", private_index.url, str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "403" in result.stdout + result.stderr or "401" in result.stdout + result.stderr


def test_publish_takes_credentials_only_from_the_environment(root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINE_")}
    dev = [str(root / "dev"), "publish", "--index"]
    missing = subprocess.run(
        [*dev, "http://127.0.0.1:1/"], env=env, capture_output=True, text=True, check=False
    )
    assert missing.returncode == 1
    assert "set TWINE_USERNAME and TWINE_PASSWORD" in missing.stderr
    in_url = subprocess.run(
        [*dev, "https://ci:hunter2@pypi.example.com/"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert in_url.returncode == 1
    assert "without credentials" in in_url.stderr
    assert "hunter2" not in in_url.stderr
    plain = subprocess.run(
        [*dev, "http://pypi.example.com/"], env=env, capture_output=True, text=True, check=False
    )
    assert "--index must be https://" in plain.stderr


def test_an_index_without_aegis_core_makes_pip_fail_rather_than_look_elsewhere(
    mirror: Path, built_dists: Path, tmp_path: Path
) -> None:
    packages = tmp_path / "packages"
    shutil.copytree(mirror, packages)
    for wheel in built_dists.glob("aegis_db-*.whl"):
        shutil.copy2(wheel, packages)
    with _pypiserver(packages, htpasswd=None) as url:
        result = _pip(
            Path(sys.executable),
            "install",
            "--dry-run",
            "--ignore-installed",
            "--index-url",
            url + "simple/",
            "aegis-db",
        )
    assert result.returncode == 1
    assert "No matching distribution found for aegis-core" in result.stderr


def _impostor(tmp_path: Path, version: str) -> Path:
    """A wheel named aegis-core, as anyone may upload one to a public index."""
    project = tmp_path / "impostor"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        f'[project]\nname = "aegis-core"\nversion = "{version}"\n'
        "[tool.hatch.build.targets.wheel]\nbypass-selection = true\n"
    )
    out = tmp_path / "public"
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=project,
        check=True,
        capture_output=True,
    )
    return out


def _resolved_core(index_args: list[str], tmp_path: Path) -> tuple[str, str]:
    report = tmp_path / f"report-{len(index_args)}.json"
    command = ["install", "--dry-run", "--ignore-installed", "--report", str(report)]
    result = _pip(Path(sys.executable), *command, *index_args, "aegis-db")
    assert result.returncode == 0, result.stdout + result.stderr
    (core,) = [
        item
        for item in json.loads(report.read_text())["install"]
        if item["metadata"]["name"] == "aegis-core"
    ]
    return core["metadata"]["version"], core["download_info"]["url"]


def test_extra_index_url_lets_a_public_impostor_win_and_index_url_does_not(
    private_index: Index, tmp_path: Path
) -> None:
    public = _impostor(tmp_path, "0.1.99")  # inside aegis-db's aegis-core>=0.1,<0.2
    with _pypiserver(public, htpasswd=None) as public_url:
        extra = ["--index-url", private_index.simple, "--extra-index-url", public_url + "simple/"]
        version, url = _resolved_core(extra, tmp_path)
        assert (version, url.startswith(public_url)) == ("0.1.99", True)

        version, url = _resolved_core(["--index-url", private_index.simple], tmp_path)
        assert version != "0.1.99"
        assert url.startswith(private_index.url)
