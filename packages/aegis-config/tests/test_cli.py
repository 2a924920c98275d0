"""The aegis-config command line: show, encrypt, decrypt and generate-key."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from aegis.config._cli import main

SETTINGS_MODULE = """
from pydantic import BaseModel, SecretStr
from pydantic_settings import SettingsConfigDict

from aegis.config import AegisSettings


class Database(BaseModel):
    url: str = "postgresql://app:db-password@localhost/users"
    password: SecretStr | None = None


class Settings(AegisSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_", toml_file="settings.toml")

    debug: bool = False
    workers: int = 1
    jwt_secret: SecretStr
    database: Database = Database()


class NotSettings:
    pass
"""


@pytest.fixture
def settings_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A service's settings module in the current directory; its importable name."""
    name = f"svc_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(SETTINGS_MODULE)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    return name


def test_show_prints_values_masked_with_their_sources(
    settings_module: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("USERS_JWT_SECRET", "jwt-secret-value")
    (tmp_path / ".env.production").write_text("USERS_DATABASE__PASSWORD=db-secret-value\n")
    (tmp_path / "settings.toml").write_text("workers = 4\n")
    assert main(["show", f"{settings_module}:Settings", "--env", "production"]) == 0
    out = capsys.readouterr().out
    assert out == textwrap.dedent(
        """\
        Settings (environment: production)
        setting            value                                 source
        debug              false                                 default
        workers            4                                     file settings.toml
        jwt_secret         **********                            env var USERS_JWT_SECRET
        database.url       postgresql://app:***@localhost/users  default
        database.password  **********                            file .env.production
        """
    )
    assert "secret-value" not in out
    assert "db-password" not in out


def test_show_uses_the_detected_environment(
    settings_module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APP_ENV", "staging")
    assert main(["show", f"{settings_module}:Settings"]) == 1
    assert capsys.readouterr().err == (
        "error: Settings (environment: staging) cannot be loaded.\n"
        "Missing required settings; set these environment variables:\n"
        "  - USERS_JWT_SECRET\n"
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no-colon", "'no-colon' is not module:Class (e.g. user_service.settings:Settings)"),
        ("svc_missing_module:Settings", "cannot import 'svc_missing_module': No module named"),
        ("{module}:NotSettings", "{module}:NotSettings is not an AegisSettings subclass"),
        ("{module}:Absent", "{module}:Absent is not an AegisSettings subclass"),
    ],
)
def test_show_explains_a_wrong_settings_target(
    settings_module: str, target: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", target.format(module=settings_module)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {message.format(module=settings_module)}")


def test_show_refuses_an_unknown_environment(
    settings_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", f"{settings_module}:Settings", "--env", "qa"]) == 1
    assert capsys.readouterr().err.startswith("error: --env='qa' is not a known environment")


def test_encrypt_then_decrypt_round_trips(
    master_key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin\n"))
    assert main(["encrypt"]) == 0
    encrypted = capsys.readouterr().out.strip()
    assert encrypted.startswith("enc:v1:v1.k1.")
    assert main(["decrypt", encrypted]) == 0
    assert capsys.readouterr().out == "from-stdin\n"
    assert main(["encrypt", "from-argument"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(capsys.readouterr().out))
    assert main(["decrypt", "-"]) == 0
    assert capsys.readouterr().out == "from-argument\n"


def test_decrypt_reports_a_value_it_cannot_read(
    master_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["decrypt", "enc:v1:v1.gone.AAAA"]) == 1
    assert capsys.readouterr().err == (
        "error: encrypted value (key id 'gone') cannot be decrypted: token was encrypted with"
        " a key this service does not have (was a key removed from the key ring too early?);"
        " add its key to AEGIS_MASTER_KEY\n"
    )


def test_encrypt_without_a_master_key_says_how_to_make_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["encrypt", "x"]) == 1
    assert "AEGIS_MASTER_KEY is not set" in capsys.readouterr().err


def test_generate_key_prints_an_entry_named_by_date_or_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["generate-key"]) == 0
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}:[A-Za-z0-9_-]{43}=\n", capsys.readouterr().out)
    assert main(["generate-key", "--key-id", "blue"]) == 0
    assert capsys.readouterr().out.startswith("blue:")


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "aegis-config"
    result = subprocess.run(
        [str(script), "generate-key", "--key-id", "ci"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("ci:")
