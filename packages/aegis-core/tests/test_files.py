"""Tests for aegis.core.utils.files: limited streaming, MIME checks, safe file names."""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from aegis.core.errors import InvalidInputError
from aegis.core.utils.files import (
    UNKNOWN_MIME,
    check_upload,
    detect_mime,
    iter_file,
    iter_upload,
    read_limited,
    sanitize_filename,
    save_stream,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
EXE = b"MZ\x90\x00" + b"\x00" * 60
IMAGES = {"image/png", "image/jpeg"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Chunks:
    """An async iterable of byte chunks that records whether it was closed."""

    def __init__(self, chunks: Iterable[bytes], *, fail_after: int | None = None) -> None:
        self.chunks = list(chunks)
        self.fail_after = fail_after
        self.closed = False

    async def _generate(self) -> AsyncGenerator[bytes, None]:
        try:
            for index, chunk in enumerate(self.chunks):
                if index == self.fail_after:
                    raise ConnectionResetError("client went away")
                yield chunk
        finally:
            self.closed = True

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._iterator = self._generate()
        return self._iterator

    async def aclose(self) -> None:
        await self._iterator.aclose()


# --- streaming ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_read_limited_returns_everything_up_to_the_limit() -> None:
    assert await read_limited(Chunks([b"ab", b"cd"]), 4) == b"abcd"
    assert await read_limited(Chunks([]), 0) == b""


@pytest.mark.anyio
async def test_read_limited_accepts_any_async_iterable() -> None:
    class Plain:
        def __aiter__(self) -> AsyncIterator[bytes]:
            return self._chunks()

        async def _chunks(self) -> AsyncIterator[bytes]:
            yield b"plain"

    assert await read_limited(Plain(), 10) == b"plain"


@pytest.mark.anyio
async def test_read_limited_refuses_more_than_the_limit_with_413_and_closes_the_stream() -> None:
    chunks = Chunks([b"abc", b"def", b"never read"])
    with pytest.raises(InvalidInputError) as caught:
        await read_limited(chunks, 5, field="body")
    error = caught.value
    assert (error.code, error.status, error.field) == ("PAYLOAD_TOO_LARGE", 413, "body")
    assert error.errors[0].type == "max_bytes"
    assert error.details == {"max_bytes": 5}
    assert "5 bytes" in error.message
    assert chunks.closed


@pytest.mark.anyio
async def test_save_stream_writes_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    written = await save_stream(Chunks([b"hello ", b"world"]), target, max_bytes=100)
    assert written == 11
    assert target.read_bytes() == b"hello world"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.anyio
async def test_save_stream_over_the_limit_deletes_the_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(InvalidInputError) as caught:
        await save_stream(Chunks([b"x" * 10, b"y" * 10]), target, max_bytes=15)
    assert caught.value.code == "PAYLOAD_TOO_LARGE"
    assert caught.value.field == "file"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_save_stream_keeps_the_old_file_when_the_new_upload_fails(tmp_path: Path) -> None:
    target = tmp_path / "avatar.png"
    target.write_bytes(b"old")
    with pytest.raises(ConnectionResetError):
        await save_stream(Chunks([b"new", b"more"], fail_after=1), target, max_bytes=100)
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.anyio
async def test_save_stream_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "doc.txt"
    target.write_bytes(b"old")
    await save_stream(Chunks([b"new"]), str(target), max_bytes=10)
    assert target.read_bytes() == b"new"


@pytest.mark.anyio
async def test_save_stream_cancelled_mid_upload_leaves_no_file(tmp_path: Path) -> None:
    async def slow() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.sleep(10)
        yield b"never"

    task = asyncio.create_task(save_stream(slow(), tmp_path / "f", max_bytes=100))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_iter_file_yields_the_file_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 10)
    chunks = [chunk async for chunk in iter_file(path, chunk_size=1000)]
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 560]
    assert b"".join(chunks) == path.read_bytes()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert [chunk async for chunk in iter_file(empty)] == []


@pytest.mark.anyio
async def test_iter_upload_reads_anything_with_async_read(tmp_path: Path) -> None:
    class Upload:
        def __init__(self, data: bytes) -> None:
            self.data = data

        async def read(self, size: int = -1, /) -> bytes:
            chunk, self.data = self.data[:size], self.data[size:]
            return chunk

    target = tmp_path / "up.bin"
    assert await save_stream(iter_upload(Upload(b"z" * 10), chunk_size=3), target, max_bytes=10)
    assert target.read_bytes() == b"z" * 10


# --- content type ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "mime"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (PDF, "application/pdf"), (b"GIF89a", "image/gif")],
)
def test_detect_mime_reads_the_content(head: bytes, mime: str) -> None:
    assert detect_mime(head) == mime


@pytest.mark.parametrize("head", [b"", b"just some plain text", b"\x00\x01"])
def test_detect_mime_answers_none_for_unknown_content(head: bytes) -> None:
    assert detect_mime(head) is None


def test_check_upload_accepts_allowed_content_and_sanitizes_the_name() -> None:
    upload = check_upload("../../photos/Cat.PNG", PNG, allowed_mime=IMAGES)
    assert (upload.filename, upload.mime_type) == ("Cat.PNG", "image/png")


def test_check_upload_reports_the_mime_type_name_and_content_agree_on() -> None:
    upload = check_upload("me.jpg", JPEG, allowed_mime=IMAGES, allowed_extensions=["jpg", ".jpeg"])
    assert upload.mime_type == "image/jpeg"
    assert check_upload("scan", PDF, allowed_mime={"application/pdf"}).mime_type == (
        "application/pdf"
    )


def test_check_upload_refuses_content_not_on_the_allow_list_whatever_the_name() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_upload("cat.png", EXE, allowed_mime=IMAGES, field="avatar")
    error = caught.value
    assert (error.code, error.status, error.field) == ("UNSUPPORTED_MEDIA_TYPE", 415, "avatar")
    assert error.errors[0].type == "content_type"
    assert "portable-executable" in error.message


def test_check_upload_refuses_an_extension_not_on_the_allow_list() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_upload("cat.svg", PNG, allowed_mime=IMAGES, allowed_extensions={".png"})
    assert caught.value.errors[0].type == "extension"
    assert caught.value.code == "UNSUPPORTED_MEDIA_TYPE"


def test_check_upload_refuses_a_name_that_lies_about_the_content() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_upload("cat.png", JPEG, allowed_mime=IMAGES)
    assert caught.value.errors[0].type == "extension_mismatch"
    assert "image/jpeg" in caught.value.message


def test_check_upload_refuses_unidentified_content_unless_allowed() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_upload("notes.txt", b"plain text", allowed_mime={"text/plain"})
    assert caught.value.errors[0].type == "content_type"
    assert "unidentified" in caught.value.message
    upload = check_upload(
        "notes.txt", b"plain text", allowed_mime=(), allowed_extensions={".txt"}, allow_unknown=True
    )
    assert upload.mime_type == UNKNOWN_MIME


def test_check_upload_still_refuses_identified_bad_content_when_unknown_is_allowed() -> None:
    with pytest.raises(InvalidInputError):
        check_upload("notes.txt", EXE, allowed_mime={"text/plain"}, allow_unknown=True)


def test_check_upload_refuses_a_name_with_nothing_left() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_upload("../..", PNG, allowed_mime=IMAGES)
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.errors[0].type == "filename"


# --- file names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("C:\\Windows\\System32\\cmd.exe", "cmd.exe"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("a\x00b.txt", "ab.txt"),
        ("tab\there.txt", "tabhere.txt"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),
        ("\uff46\uff49\uff4c\uff45\uff0e\uff54\uff58\uff54", "file.txt"),
        ("evil\uff0f..\uff0fpasswd", "passwd"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1.tar.gz", "_com1.tar.gz"),
        ("COM\u00b9.txt", "_COM1.txt"),
        (".bashrc", "bashrc"),
        ("...hidden", "hidden"),
        ("report..pdf", "report.pdf"),
        ('what?<>:"|*.txt', "what_______.txt"),
        ("trailing. . ", "trailing"),
        ("  spaced   out .txt", "spaced out .txt"),
        ("caf\u0065\u0301.txt", "caf\u00e9.txt"),
    ],
)
def test_sanitize_filename_makes_names_safe(name: str, safe: str) -> None:
    assert sanitize_filename(name) == safe


@pytest.mark.parametrize("name", ["", "..", ".", "/", "\\", "\x00", "   ", "../../", "\u202e"])
def test_sanitize_filename_refuses_names_with_nothing_usable(name: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        sanitize_filename(name, field="upload")
    assert caught.value.field == "upload"
    assert caught.value.errors[0].type == "filename"


def test_sanitize_filename_shortens_long_names_and_keeps_the_extension() -> None:
    safe = sanitize_filename("a" * 300 + ".pdf")
    assert safe == "a" * 251 + ".pdf"
    multibyte = sanitize_filename("\u00e9" * 200 + ".txt", max_bytes=100)
    assert multibyte.endswith(".txt")
    assert len(multibyte.encode()) <= 100
    assert sanitize_filename("x." + "e" * 200, max_bytes=50) == "x." + "e" * 48


_PIECES = st.sampled_from(
    ["..", ".", "/", "\\", "etc", "passwd", "CON", "nul", "\x00", "\uff0e", "\uff0f", " ", "\u202e"]
)


@given(name=st.one_of(st.text(max_size=300), st.lists(_PIECES, max_size=12).map("".join)))
@example(name="\u00e9" * 130 + ".txt")
@example(name="a" * 254 + ". b")
def test_sanitize_filename_never_yields_a_path_and_is_idempotent(name: str) -> None:
    try:
        safe = sanitize_filename(name)
    except InvalidInputError:
        return
    assert safe
    assert "/" not in safe
    assert "\\" not in safe
    assert ".." not in safe
    assert not safe.startswith(".")
    assert not safe.endswith((".", " "))
    assert len(safe.encode()) <= 255
    assert all(unicodedata.category(char)[0] != "C" for char in safe)
    assert safe.split(".")[0].upper() not in {"CON", "NUL", "PRN", "AUX"}
    assert sanitize_filename(safe) == safe
    assert Path("/srv/uploads", safe).parent == Path("/srv/uploads")
