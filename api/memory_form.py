"""Multipart forms parsed entirely in memory, for uploads that must never touch the disk (selfies).

Starlette's own parser (behind FastAPI's File/Form parameters) spools every uploaded file larger
than 1 MiB to a temporary file on disk. A selfie is biometric data that photomatch promises never
to write anywhere, so routes that take one read the body themselves, within a size cap, and parse
it here with python-multipart's streaming parser into bytearrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from photomatch.errors import UserError


class FormError(UserError, ValueError):
    """The body is not a usable multipart form; str(e) says why."""

    reason = "invalid_form"


class FormTooLarge(FormError):
    """The body exceeds the route's size cap."""

    reason = "too_large"
    status = 413


@dataclass
class MemoryFile:
    """An uploaded file held in memory."""

    filename: str
    content_type: str
    data: bytearray = field(repr=False)


@dataclass
class MemoryForm:
    """Text fields and files of a multipart form, each name mapping to its values in order."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[MemoryFile]] = field(default_factory=dict)

    def first(self, name: str) -> str | None:
        """The first value of a text field, if sent."""
        values = self.fields.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        """Every value of a repeated text field, in order."""
        return list(self.fields.get(name, []))

    def file(self, name: str) -> MemoryFile | None:
        """The first file sent under `name`, if any."""
        values = self.files.get(name)
        return values[0] if values else None


class _Collector:
    """python-multipart callbacks that build a MemoryForm."""

    def __init__(self, max_parts: int, max_field_bytes: int) -> None:
        self.form = MemoryForm()
        self.max_parts = max_parts
        self.max_field_bytes = max_field_bytes
        self.parts = 0
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._options: dict[bytes, bytes] = {}
        self._data = bytearray()

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise FormError(f"too many form fields (at most {self.max_parts})")
        self._headers, self._data = {}, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, self._options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"name" not in self._options:
            raise FormError('every form part needs a Content-Disposition header with a "name"')

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]
        if b"filename" not in self._options and len(self._data) > self.max_field_bytes:
            raise FormError("a form field is too long")

    def on_part_end(self) -> None:
        options = self._options
        key = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            content_type = self._headers.get(b"content-type", b"application/octet-stream").decode("latin-1")
            upload = MemoryFile(options[b"filename"].decode("utf-8", "replace"), content_type, self._data)
            self.form.files.setdefault(key, []).append(upload)
        else:
            self.form.fields.setdefault(key, []).append(self._data.decode("utf-8", "replace"))
        self._data = bytearray()


async def read_form_in_memory(
    request: Request, *, max_bytes: int, max_parts: int = 20, max_field_bytes: int = 4096
) -> MemoryForm:
    """Parse the request's multipart/form-data body in memory; FormTooLarge past `max_bytes` of body."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise FormError("send the form as multipart/form-data")
    declared = request.headers.get("content-length")
    # Refuse before reading a byte when the client says up front that the body is too large.
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise FormTooLarge(f"the upload is larger than {max_bytes // 2**20} MiB")
    collector = _Collector(max_parts, max_field_bytes)
    callbacks = {
        name: getattr(collector, name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
        )
    }
    parser = MultipartParser(params[b"boundary"], callbacks)  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            # Chunked bodies carry no Content-Length: the cap is enforced on the bytes themselves.
            if received > max_bytes:
                raise FormTooLarge(f"the upload is larger than {max_bytes // 2**20} MiB")
            parser.write(chunk)
        parser.finalize()
    except FormError:
        raise
    except Exception as exc:  # python-multipart's own parse errors
        raise FormError("the multipart form is malformed") from exc
    return collector.form
