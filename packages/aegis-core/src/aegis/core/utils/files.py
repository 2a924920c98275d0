"""Uploads and downloads: size-limited streaming, content-based MIME checks, safe file names.

Needs the ``files`` extra (puremagic): ``pip install aegis-core[files]``. Nothing here imports
Starlette; :func:`iter_upload` reads anything with an async ``read(size)``, such as its
``UploadFile``.

Example:
    >>> upload = check_upload("../../Report.PDF", b"%PDF-1.7 ...", allowed_mime={"application/pdf"})
    >>> upload.filename, upload.mime_type
    ('Report.PDF', 'application/pdf')
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import mimetypes
import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aegis.core.errors import InvalidInputError
from aegis.core.utils.lazy import extra_required

# Without the extra, say which one to install instead of a bare "No module named".
with extra_required(__name__, {"puremagic": "aegis-core[files]"}):
    import puremagic

DEFAULT_CHUNK_SIZE = 64 * 1024
"""Bytes per chunk that :func:`iter_file` and :func:`iter_upload` yield."""

SNIFF_BYTES = 8 * 1024
"""How many leading bytes to give :func:`detect_mime` and :func:`check_upload`."""

UNKNOWN_MIME = "application/octet-stream"
"""The MIME type :func:`check_upload` reports for content it cannot identify."""

# Windows refuses these as a file stem whatever the extension ("con.txt"); NFKC has already
# turned the superscript digits of "COM¹" into "COM1".
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{name}{digit}" for name in ("COM", "LPT") for digit in "0123456789"}
)
_FORBIDDEN_CHARS = re.compile(r'[<>:"/\\|?*]')  # separators and what Windows refuses in names
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})  # controls, bidi marks
_MAX_PASSES = 8


async def read_limited(
    chunks: AsyncIterable[bytes], max_bytes: int, *, field: str = "file"
) -> bytes:
    """Read ``chunks`` into memory, refusing more than ``max_bytes`` in total.

    Stops at the first chunk over the limit, so a hostile client cannot make the service
    buffer more than ``max_bytes`` plus one chunk.

    Raises:
        InvalidInputError: code ``PAYLOAD_TOO_LARGE`` (HTTP 413), rule ``max_bytes``, naming
            ``field`` and the limit.

    Example:
        >>> body = await read_limited(request.stream(), 1_000_000, field="body")
    """
    buffer = bytearray()
    async with _closing(chunks):
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) > max_bytes:
                raise _too_large(field, max_bytes)
    return bytes(buffer)


async def save_stream(
    chunks: AsyncIterable[bytes],
    path: str | os.PathLike[str],
    *,
    max_bytes: int,
    field: str = "file",
) -> int:
    """Write ``chunks`` to ``path`` atomically and return the number of bytes written.

    The data goes to a temporary file in the target directory, is flushed to disk, and is
    renamed over ``path`` only when complete, so readers never see half a file. An existing
    file at ``path`` is replaced. On any failure (limit exceeded, client gone, cancellation)
    the partial file is deleted. The file is created with mode 0600, like every temporary file.

    Raises:
        InvalidInputError: code ``PAYLOAD_TOO_LARGE``, rule ``max_bytes``, when the stream
            exceeds ``max_bytes``.

    Example:
        >>> await save_stream(iter_upload(upload), media_dir / name, max_bytes=10 * 2**20)
    """
    target = Path(path)
    # A short prefix: the temporary name must fit the 255-byte limit when the target name does.
    fd, temp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name[:32]}.", suffix=".part"
    )
    temp_path = Path(temp_name)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async with _closing(chunks):
                async for chunk in chunks:
                    written += len(chunk)
                    if written > max_bytes:
                        raise _too_large(field, max_bytes)
                    await asyncio.to_thread(out.write, chunk)
            await asyncio.to_thread(_flush_to_disk, out.fileno())
        await asyncio.to_thread(temp_path.replace, target)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    return written


def _flush_to_disk(fd: int) -> None:
    os.fsync(fd)


async def iter_file(
    path: str | os.PathLike[str], chunk_size: int = DEFAULT_CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """Yield the bytes of the file at ``path`` in chunks, reading off the event loop.

    Example:
        >>> return StreamingResponse(iter_file(path), media_type="application/pdf")
    """
    with Path(path).open("rb") as source:
        while chunk := await asyncio.to_thread(source.read, chunk_size):
            yield chunk


class SupportsAsyncRead(Protocol):
    """Anything with ``async read(size) -> bytes``, such as Starlette's ``UploadFile``."""

    async def read(self, size: int = -1, /) -> bytes:
        """Return up to ``size`` bytes; empty bytes at the end."""


async def iter_upload(
    upload: SupportsAsyncRead, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """Yield the content of an uploaded file in chunks, for :func:`save_stream`."""
    while chunk := await upload.read(chunk_size):
        yield chunk


@contextlib.asynccontextmanager
async def _closing(chunks: AsyncIterable[bytes]) -> AsyncIterator[None]:
    # Leaving an async generator early must close it now, not whenever the loop shuts down.
    try:
        yield
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _too_large(field: str, max_bytes: int) -> InvalidInputError:
    return InvalidInputError(
        f"{field} is larger than the limit of {max_bytes} bytes",
        field=field,
        rule="max_bytes",
        code="PAYLOAD_TOO_LARGE",
        details={"max_bytes": max_bytes},
    )


# --- content type -----------------------------------------------------------------------------


def detect_mime(head: bytes) -> str | None:
    """Return the MIME type the leading bytes of a file show, or None when unknown.

    Only the content counts, never a file name. Give at least :data:`SNIFF_BYTES` bytes.
    """
    matches = _content_matches(head)
    return matches[0][0] if matches else None


def _content_matches(head: bytes) -> list[tuple[str, str]]:
    """(MIME type, extension) of each puremagic match that has a MIME type, best first."""
    if not head:
        return []
    try:
        found = puremagic.magic_string(head)
    except puremagic.PureError:
        return []
    ranked = sorted(found, key=lambda match: match.confidence, reverse=True)
    return [(m.mime_type, m.extension.lower()) for m in ranked if m.mime_type]


@dataclass(frozen=True)
class CheckedUpload:
    """An accepted upload: its sanitized file name and the MIME type its content shows."""

    filename: str
    mime_type: str


def check_upload(
    filename: str,
    head: bytes,
    *,
    allowed_mime: Collection[str],
    allowed_extensions: Collection[str] | None = None,
    allow_unknown: bool = False,
    field: str = "file",
) -> CheckedUpload:
    """Accept an upload only if its content, and its name, are on the allow-lists.

    The MIME type comes from the content (:func:`detect_mime`), never from the client's
    ``Content-Type``. The extension, when there is one, must also fit the content, so
    ``photo.png`` holding a JPEG is refused: browsers and servers trust extensions.

    Args:
        filename: the client's file name; it is sanitized (:func:`sanitize_filename`).
        head: the first :data:`SNIFF_BYTES` bytes of the content (or all of it).
        allowed_mime: MIME types the content may have (``{"image/png", "image/jpeg"}``).
        allowed_extensions: extensions the name may have (``{".png", ".jpg"}``); None allows
            any extension that fits the content, and a name without one.
        allow_unknown: accept content no signature identifies (plain text, CSV) as
            :data:`UNKNOWN_MIME`; only the extension rules then apply.
        field: the field name errors report.

    Raises:
        InvalidInputError: code ``UNSUPPORTED_MEDIA_TYPE`` (HTTP 415) with rule ``extension``
            (name not allowed), ``content_type`` (content not allowed or not identified) or
            ``extension_mismatch`` (name and content disagree); code ``VALIDATION_ERROR`` when
            nothing of the file name is left after sanitizing.
    """
    safe_name = sanitize_filename(filename, field=field)
    extension = Path(safe_name).suffix.lower()
    allowed_ext = {_dotted(ext) for ext in allowed_extensions or ()}
    if allowed_extensions is not None and extension not in allowed_ext:
        raise _unsupported(
            field,
            "extension",
            f"{field} extension {extension or '(none)'!r} is not one of {sorted(allowed_ext)}",
        )
    matches = _content_matches(head)
    accepted = [(mime, ext) for mime, ext in matches if mime in allowed_mime]
    if not matches and allow_unknown:
        return CheckedUpload(safe_name, UNKNOWN_MIME)
    if not accepted:
        shown = matches[0][0] if matches else "unidentified content"
        raise _unsupported(
            field,
            "content_type",
            f"{field} content is {shown}, which is not one of {sorted(allowed_mime)}",
        )
    if not extension:
        return CheckedUpload(safe_name, accepted[0][0])
    # puremagic lists some extensions per signature and the stdlib table maps others (".jpg" but
    # not ".jfif"); either agreeing with the content is enough.
    guessed = _mime_for_extension(extension)
    agreeing = [mime for mime, ext in accepted if ext == extension or mime == guessed]
    if not agreeing:
        raise _unsupported(
            field,
            "extension_mismatch",
            f"{field} extension {extension!r} does not match its content ({accepted[0][0]})",
        )
    return CheckedUpload(safe_name, agreeing[0])


def _mime_for_extension(extension: str) -> str | None:
    return _mime_table().guess_type(f"x{extension}")[0]


@functools.cache
def _mime_table() -> mimetypes.MimeTypes:
    # The stdlib's built-in table (filenames=()), so the answer does not depend on the host's
    # /etc/mime.types; built on first use, not at import.
    return mimetypes.MimeTypes(filenames=())


def _dotted(extension: str) -> str:
    extension = extension.lower()
    return extension if extension.startswith(".") else f".{extension}"


def _unsupported(field: str, rule: str, message: str) -> InvalidInputError:
    return InvalidInputError(message, field=field, rule=rule, code="UNSUPPORTED_MEDIA_TYPE")


# --- file names -------------------------------------------------------------------------------


def sanitize_filename(name: str, *, max_bytes: int = 255, field: str = "filename") -> str:
    r"""Turn a client's file name into a safe single path component.

    Keeps only the last component of a path (``../../etc/passwd`` -> ``passwd``,
    ``C:\Users\a\cv.pdf`` -> ``cv.pdf``), applies Unicode NFKC (so fullwidth slashes and
    dots become ``/`` and ``.``), drops control and bidi-override characters and NUL, replaces the
    characters Windows refuses with ``_``, collapses runs of dots, strips leading dots and
    trailing dots and spaces, prefixes Windows device names (``CON``, ``nul.txt``) with ``_``,
    and shortens the stem to fit ``max_bytes`` of UTF-8 while keeping the extension. The result
    is idempotent: sanitizing it again changes nothing.

    Raises:
        InvalidInputError: nothing usable is left (rule ``filename``).

    Example:
        >>> sanitize_filename("../../etc/passwd"), sanitize_filename("con.txt")
        ('passwd', '_con.txt')
    """
    current = name
    for _ in range(_MAX_PASSES):
        cleaned = _sanitize_once(current, max_bytes)
        if cleaned == current:
            break
        current = cleaned
    else:  # pragma: no cover - two or three passes reach a fixed point; a guard, not a path
        current = ""
    if not current:
        raise InvalidInputError(
            f"{field} {name[:100]!r} has no usable characters once unsafe ones are removed",
            field=field,
            rule="filename",
        )
    return current


def _sanitize_once(name: str, max_bytes: int) -> str:
    text = unicodedata.normalize("NFKC", name)
    text = "".join(
        " " if unicodedata.category(char) == "Zs" else char
        for char in text
        if unicodedata.category(char) not in _DROPPED_CATEGORIES
    )
    text = re.split(r"[/\\]", text)[-1]
    text = _FORBIDDEN_CHARS.sub("_", text)
    text = re.sub(r"\.{2,}", ".", re.sub(r" {2,}", " ", text))
    text = text.lstrip(". ").rstrip(". ")
    stem = text.split(".", 1)[0]
    if stem.upper().rstrip(" ") in _WINDOWS_RESERVED:
        text = f"_{text}"
    return _truncate(text, max_bytes)


def _truncate(name: str, max_bytes: int) -> str:
    if len(name.encode()) <= max_bytes:
        return name
    path = Path(name)
    suffix = path.suffix if len(path.suffix.encode()) < max_bytes // 2 else ""
    stem = name[: len(name) - len(suffix)]
    budget = max_bytes - len(suffix.encode())
    stem = stem.encode()[:budget].decode(errors="ignore").rstrip(". ")
    return f"{stem}{suffix}"


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "SNIFF_BYTES",
    "UNKNOWN_MIME",
    "CheckedUpload",
    "SupportsAsyncRead",
    "check_upload",
    "detect_mime",
    "iter_file",
    "iter_upload",
    "read_limited",
    "sanitize_filename",
    "save_stream",
]
