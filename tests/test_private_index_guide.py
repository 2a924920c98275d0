"""docs/private-index.md, followed to the letter: its own commands stand the index up.

The blocks are read from the guide by their titles and run as written, with the guide's
variables pointing at a temporary directory, a free port and the workspace's .venv (which holds
the locked pypiserver), and the guide's example host replaced by the running index's URL. The
members are the session's built wheels and sdists (tests/conftest.py); then pip, configured by
the guide's pip.conf, and uv, by the guide's pyproject.toml, install ``aegis-db[postgres]`` and
``aegis-auth`` into fresh environments that know no other index.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "private-index.md"
EXAMPLE_HOST = "https://pypi.internal.example"
NOT_RUN = "(not run by the test"
_BLOCK = re.compile(r'^```(?P<lang>\w+) title="(?P<title>[^"]+)"\n(?P<body>.*?)^```$', re.M | re.S)


def guide_blocks() -> dict[str, tuple[str, str]]:
    """The guide's titled code blocks: title -> (language, text)."""
    return {m["title"]: (m["lang"], m["body"]) for m in _BLOCK.finditer(GUIDE.read_text())}


def block(title: str, url: str | None = None) -> str:
    """The block called ``title``, with the example host replaced by ``url``."""
    blocks = guide_blocks()
    assert title in blocks, f"docs/private-index.md has no block titled {title!r}: {list(blocks)}"
    text = blocks[title][1]
    return text.replace(EXAMPLE_HOST, url.rstrip("/")) if url else text


@dataclass(frozen=True)
class GuideIndex:
    """The index the guide stood up: its URL and the guide's variables."""

    url: str
    env: dict[str, str]

    @property
    def simple(self) -> str:
        """The index's PEP 503 URL."""
        return self.url + "simple/"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _bash(script: str, env: dict[str, str], cwd: Path, stdin: str = "") -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _wait_until_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, f"pypiserver exited:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(url + "health", timeout=1) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        except OSError:
            assert time.monotonic() < deadline, f"pypiserver did not answer:\n{log.read_text()}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def guide_index(
    built_dists: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuideIndex]:
    """The guide's steps 3 to 6: users, mirror, server, upload."""
    home = tmp_path_factory.mktemp("aegis-index")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "TWINE_"))}
    port = _free_port()
    env.update(
        INDEX_HOME=str(home),
        INDEX_VENV=str(Path(sys.executable).parent.parent),
        INDEX_PORT=str(port),
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",  # uv, as on a developer's machine
    )
    titles = [t for t in guide_blocks() if NOT_RUN not in t]
    assert titles[:3] == ["Create the users", "Mirror the third-party wheels", "Start the index"]
    password = secrets.token_urlsafe(16)
    _bash(block("Create the users"), env, home, stdin=password + "\n")
    assert (home / "htpasswd").read_text().startswith("publisher:$2")
    mirror = block("Mirror the third-party wheels")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"--python {python}" in mirror, f"the guide's mirror does not serve this Python {python}"
    _bash(mirror, env, ROOT)
    assert not list((home / "mirror").glob("aegis*")), "the mirror holds an aegis distribution"

    log = home / "pypiserver.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            ["bash", "-c", block("Start the index")],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the server is bash's child: stop the whole group
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_healthy(url, server, log)
        uploads = home / "upload"
        shutil.copytree(built_dists, uploads / "dist")
        _bash(block("Upload with uv publish", url), env, uploads, stdin=password + "\n")
        yield GuideIndex(url, env)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def test_the_guides_steps_publish_every_member_and_keep_the_mirror_apart(
    guide_index: GuideIndex, built_dists: Path
) -> None:
    home = Path(guide_index.env["INDEX_HOME"])
    assert {p.name for p in (home / "packages").iterdir()} == {
        p.name for p in built_dists.iterdir()
    }
    mirrored = {p.name.split("-")[0].lower() for p in (home / "mirror").iterdir()}
    assert {"sqlalchemy", "asyncpg", "pydantic", "pyjwt", "greenlet"} <= mirrored


def test_the_index_answers_a_name_it_lacks_with_404_not_a_redirect_to_pypi(
    guide_index: GuideIndex,
) -> None:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    # `aegis` on public PyPI is an unrelated project; --disable-fallback keeps it out
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(guide_index.simple + "aegis/", timeout=10)
    answer.value.close()
    assert answer.value.code == 404


def test_pip_with_the_guides_pip_conf_installs_db_and_auth_from_the_index_alone(
    guide_index: GuideIndex, tmp_path: Path
) -> None:
    config = tmp_path / "pip.conf"
    config.write_text(block("pip.conf", guide_index.url))
    # A fresh environment without pip of its own (ensurepip takes seconds): this pip installs
    # into it, with the guide's file as its only settings (PIP_* variables would join in).
    venv.create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=str(config), PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    install = [*pip, "install", "aegis-db[postgres]", "aegis-auth"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Looking in indexes: {guide_index.simple}\n" in result.stdout
    used = subprocess.run(
        [str(python), "-c", "import asyncpg, aegis.auth, aegis.db; print(aegis.db.__name__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert used.stdout.strip() == "aegis.db", used.stderr

    # `aegis` is a public project this index does not hold: pip must not find it anywhere
    absent = [*pip, "download", "--no-deps", "--dest", str(tmp_path / "absent"), "aegis"]
    result = subprocess.run(absent, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "No matching distribution found for aegis" in result.stderr


def test_uv_with_the_guides_pyproject_locks_and_syncs_from_the_index_alone(
    guide_index: GuideIndex, tmp_path: Path
) -> None:
    project = tmp_path / "orders-service"
    project.mkdir()
    (project / "pyproject.toml").write_text(block("pyproject.toml", guide_index.url))
    env = {**guide_index.env, "XDG_CONFIG_HOME": str(tmp_path / "config")}  # no user uv.toml
    result = subprocess.run(
        ["uv", "sync", "--python", sys.executable],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lock = tomllib.loads((project / "uv.lock").read_text())
    sources = {p["name"]: p["source"] for p in lock["package"] if p["name"] != "orders-service"}
    assert {"aegis-core", "aegis-db", "aegis-auth", "asyncpg"} <= set(sources)
    assert {json.dumps(s) for s in sources.values()} == {
        json.dumps({"registry": guide_index.simple})
    }

    # `aegis` is a public project this index does not hold: uv must not find it anywhere
    pyproject = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(pyproject.replace('"aegis-auth>=0.1,<0.2"', '"aegis"'))
    result = subprocess.run(
        ["uv", "lock", "--python", sys.executable],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "aegis was not found in the package registry" in result.stderr


def _installing_explicit_index_block() -> str:
    installing = (ROOT / "docs" / "installing.md").read_text()
    blocks = re.findall(r"^```toml\n(.*?)^```$", installing, re.M | re.S)
    (block,) = [str(b) for b in blocks if "explicit = true" in b]
    return block


def _impostor_core(out: Path) -> None:
    """An ``aegis-core 0.1.99`` wheel, as anyone may upload one to public PyPI."""
    project = out.parent / "impostor"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "aegis-core"\nversion = "0.1.99"\n'
        "[tool.hatch.build.targets.wheel]\nbypass-selection = true\n"
    )
    build = [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)]
    subprocess.run(build, cwd=project, check=True, capture_output=True)


def test_uv_explicit_index_keeps_aegis_core_private_only_as_a_direct_dependency(
    guide_index: GuideIndex, tmp_path: Path
) -> None:
    """installing.md's explicit-index example, with a public index that holds an impostor."""
    public = tmp_path / "public"
    shutil.copytree(Path(guide_index.env["INDEX_HOME"]) / "mirror", public)
    _impostor_core(public)
    port = _free_port()
    command = [str(Path(sys.executable).parent / "pypi-server"), "run", "-i", "127.0.0.1"]
    command += ["-p", str(port), "--disable-fallback", "-P", ".", "-a", ".", str(public)]
    log = tmp_path / "public.log"
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    public_url = f"http://127.0.0.1:{port}/"
    example = _installing_explicit_index_block().replace(
        "https://pypi.example.internal/", guide_index.url
    )
    # public PyPI, played by the index above: uv's default index for every other name
    example += (
        f'\n[[tool.uv.index]]\nname = "public"\nurl = "{public_url}simple/"\ndefault = true\n'
    )
    env = {**guide_index.env, "XDG_CONFIG_HOME": str(tmp_path / "config")}

    def locked_core(pyproject: str) -> tuple[str, str]:
        project = tmp_path / f"service-{len(pyproject)}"
        project.mkdir()
        (project / "pyproject.toml").write_text(pyproject)
        lock = ["uv", "lock", "--python", sys.executable]
        result = subprocess.run(
            lock, cwd=project, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        packages = tomllib.loads((project / "uv.lock").read_text())["package"]
        (core,) = [p for p in packages if p["name"] == "aegis-core"]
        return core["version"], core["source"]["registry"]

    try:
        _wait_until_healthy(public_url, server, log)
        version, registry = locked_core(example)
        assert (version, registry) != ("0.1.99", public_url + "simple/")
        assert registry == guide_index.simple
        # the trap the page warns about: aegis-core only pulled in by aegis-db
        transitive = re.sub(r'\n  "aegis-core>=0.1,<0.2",[^\n]*', "", example)
        assert transitive != example
        assert locked_core(transitive) == ("0.1.99", public_url + "simple/")
    finally:
        server.terminate()
        server.wait(timeout=10)
