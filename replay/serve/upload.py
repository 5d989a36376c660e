"""The upload of a trace: a multipart body streamed to disk, within a size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from ingest.errors import ReplayError
from replay.serve.ids import safe_filename

#: The multipart field holding the trace.
FIELD = b"trace"


class UploadError(ReplayError):
    """An upload refused: not multipart, no trace field, too large. `status` is the HTTP
    status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """A trace received: where it was written and the name the client gave it."""

    path: Path
    filename: str
    size: int


class _Receiver:
    """python-multipart callbacks writing the `trace` part's bytes into `directory`."""

    def __init__(self, directory: Path, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self.header_field = b""
        self.header_value = b""
        self.disposition: dict[bytes, bytes] = {}
        self.file: BinaryIO | None = None
        self.upload: Upload | None = None
        self.size = 0
        self.error: UploadError | None = None

    def callbacks(self) -> dict:
        return {"on_part_begin": self.part_begin, "on_header_field": self.field,
                "on_header_value": self.value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_done, "on_part_data": self.data,
                "on_part_end": self.part_end}

    def part_begin(self) -> None:
        self.disposition = {}

    def field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        if self.header_field.lower() == b"content-disposition":
            self.disposition = parse_options_header(self.header_value)[1]
        self.header_field = self.header_value = b""

    def headers_done(self) -> None:
        if self.disposition.get(b"name") != FIELD or self.upload or self.file:
            return
        name = safe_filename(self.disposition.get(b"filename", b"trace").decode(
            "utf-8", "replace"))
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        self.file = open(path, "wb")
        self.upload = Upload(path, name, 0)

    def data(self, data: bytes, start: int, end: int) -> None:
        if self.file is None or self.error:
            return
        self.size += end - start
        if self.size > self.limit:
            self.error = UploadError(f"upload larger than the limit of {self.limit} bytes",
                                     413)
            return
        self.file.write(data[start:end])

    def part_end(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


async def receive_trace(content_type: str, body: AsyncIterator[bytes], directory: Path,
                        limit: int) -> Upload:
    """Write the `trace` field of a multipart/form-data `body` into `directory`."""
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError("send the trace as multipart/form-data in the field 'trace'", 415)
    receiver = _Receiver(directory, limit)
    parser = MultipartParser(params[b"boundary"], receiver.callbacks())
    try:
        async for chunk in body:
            parser.write(chunk)
            if receiver.error:
                raise receiver.error
        parser.finalize()
    except ValueError as e:  # python-multipart's parse errors
        raise UploadError(f"malformed multipart body: {e}") from None
    finally:
        if receiver.file is not None:
            receiver.file.close()
    if receiver.upload is None:
        raise UploadError("no 'trace' field in the upload")
    return Upload(receiver.upload.path, receiver.upload.filename, receiver.size)
