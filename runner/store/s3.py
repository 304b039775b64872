"""Results in S3 (SPEC §7): `s3://bucket/prefix`; the only module that imports boto3.

Credentials come from boto3's default chain, and `AWS_ENDPOINT_URL` (read by
boto3 itself) points it at MinIO, moto or any other S3.  Reads go straight to
the bucket.  Writes go through a local `Spool` first, so a slow or failing
bucket never slows a run down or loses a result; `S3Remote` is what the
spool's uploader calls.

A growing log is kept visible while its stage runs: small ones are PUT whole
again, larger ones are appended to in place with a multipart upload whose
first part is a server-side copy of what the object already holds (checked
by size and ETag first), so no push ever reads more than one part into memory.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from runner.errors import StoreUnavailable, UsageError
from runner.store.base import ResultStore, run_key, valid_part
from runner.store.spool import Pushed, Spool, store_folder

__all__ = ["CHUNK", "PART", "BodyChunks", "S3Remote", "S3Store", "parse_url"]

PART = 8 << 20
"""Bytes per uploaded part: what one push holds in memory at most."""
MIN_PART = 5 << 20
"""S3's smallest part but the last: a copied head must be at least this big."""
COPY_PART = 4 << 30
"""Largest server-side copied part (S3 allows 5 GiB)."""
MAX_PARTS = 10_000
CHUNK = 1 << 20
"""Bytes read at a time from a GetObject body."""

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TYPES = {
    ".json": "application/json",
    ".log": "text/plain; charset=utf-8",
    ".zip": "application/zip",
}
_CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=60,
    retries={"max_attempts": 2, "mode": "standard"},  # the spool retries with its own backoff
)


def parse_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix"); UsageError when malformed."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise UsageError(
            f"--results {url}: '{bucket}' is not an S3 bucket name "
            "(3 to 63 lower-case letters, digits, '.' and '-'): use s3://bucket/prefix"
        )
    prefix = prefix.strip("/")
    if any(not valid_part(part) for part in prefix.split("/") if prefix):
        raise UsageError(f"--results {url}: the prefix must not have empty or '.' parts")
    return bucket, prefix


def _missing(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _content_type(key: str) -> str:
    return _TYPES.get(os.path.splitext(key)[1], "application/octet-stream")


def _pread(file: BinaryIO, offset: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.pread(file.fileno(), size, offset)
        if not chunk:
            raise OSError(f"{file.name} is shorter than expected")
        chunks.append(chunk)
        offset, size = offset + len(chunk), size - len(chunk)
    return b"".join(chunks)


class S3Remote:
    """Puts and appends of spool files, under `prefix` in `bucket` (the spool's `Remote`)."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def push(self, key: str, file: BinaryIO, size: int, previous: Pushed | None) -> Pushed:
        full = self.key(key)
        appendable = previous is not None and MIN_PART <= previous.size <= size
        if previous is not None and appendable and self._holds(full, previous):
            if previous.size == size:
                return previous
            return self._multipart(full, file, previous.size, size)
        if size <= PART:
            answer = self.client.put_object(
                Bucket=self.bucket,
                Key=full,
                Body=_pread(file, 0, size),
                ContentType=_content_type(key),
            )
            return Pushed(size, str(answer["ETag"]))
        return self._multipart(full, file, 0, size)

    def _holds(self, key: str, pushed: Pushed) -> bool:
        """Whether `key` still is what we pushed (a restored or emptied bucket may differ)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _missing(e):
                return False
            raise
        return bool(head["ContentLength"] == pushed.size and head["ETag"] == pushed.etag)

    def _multipart(self, key: str, file: BinaryIO, copied: int, size: int) -> Pushed:
        """`key` := its own first `copied` bytes (copied server-side) + `file[copied:size]`."""
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=_content_type(key)
        )["UploadId"]
        common = {"Bucket": self.bucket, "Key": key, "UploadId": upload}
        parts: list[dict[str, Any]] = []
        try:
            pieces = -(-copied // COPY_PART)  # equal pieces, so none is under MIN_PART
            for i in range(pieces):
                start, end = copied * i // pieces, copied * (i + 1) // pieces
                answer = self.client.upload_part_copy(
                    **common,
                    PartNumber=len(parts) + 1,
                    CopySource={"Bucket": self.bucket, "Key": key},
                    CopySourceRange=f"bytes={start}-{end - 1}",
                )
                etag = answer["CopyPartResult"]["ETag"]
                parts.append({"PartNumber": len(parts) + 1, "ETag": etag})
            step = max(PART, -(-(size - copied) // (MAX_PARTS - pieces)))
            for offset in range(copied, size, step):
                body = _pread(file, offset, min(step, size - offset))
                answer = self.client.upload_part(**common, PartNumber=len(parts) + 1, Body=body)
                parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})
                del body
            done = self.client.complete_multipart_upload(**common, MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: the bucket may be what failed
                self.client.abort_multipart_upload(**common)
            raise
        return Pushed(size, str(done["ETag"]))


class BodyChunks:
    """A GetObject body in chunks of `CHUNK`, closed at its end or by `close()`."""

    def __init__(self, body: Any | None, url: str = "") -> None:
        self._body = body
        self._url = url

    def __iter__(self) -> Iterator[bytes]:
        if self._body is None:
            return
        try:
            yield from self._body.iter_chunks(CHUNK)
        except (BotoCoreError, ClientError) as e:
            reason = " ".join(str(e).split())
            raise StoreUnavailable(f"results store {self._url} cannot be read ({reason})") from None
        finally:
            self.close()

    def close(self) -> None:
        if self._body is not None:
            body, self._body = self._body, None
            body.close()


class S3Store(ResultStore):
    """`s3://bucket/prefix`: SPEC §7's layout under the prefix, written through a local spool.

    Opening checks the bucket once (HeadBucket): a missing bucket or refused
    credentials raise StoreUnavailable (exit 3) before anything runs; an
    endpoint that does not answer only means results wait in the spool.  Then
    the files an earlier process left in this URL's spool are uploaded, first.
    """

    def __init__(
        self,
        url: str,
        spool_root: Path,
        wait: float = 60.0,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.bucket, self.prefix = parse_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._client = boto3.session.Session().client("s3", config=_CLIENT_CONFIG)
        self._remote = S3Remote(self._client, self.bucket, self.prefix)
        try:
            reachable = self._check_bucket()
            folder = store_folder(spool_root, self.url)
            self._spool = Spool(folder, self._remote, self.url, wait=wait, warn=warn)
        except BaseException:
            self._client.close()
            raise
        if self._spool.recover() and reachable:
            self._spool.upload_recovered()

    def _check_bucket(self) -> bool:
        """False when the endpoint cannot be reached; StoreUnavailable when it says no."""
        where = f"results store {self.url}"
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            status = _status(e)
            if status >= 500:
                return False
            if status == 404:
                raise StoreUnavailable(
                    f"{where}: bucket '{self.bucket}' does not exist (create it, or fix --results)"
                ) from None
            if status == 403:
                raise StoreUnavailable(
                    f"{where}: access to bucket '{self.bucket}' denied (check the AWS credentials)"
                ) from None
            raise StoreUnavailable(f"{where}: {e}") from None
        except (BotoConnectionError, HTTPClientError):
            return False
        except BotoCoreError as e:  # no credentials, a bad profile...
            raise StoreUnavailable(f"{where}: {e}") from None
        return True

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except (BotoCoreError, ClientError) as e:
            reason = " ".join(str(e).split())
            raise StoreUnavailable(f"results store {self.url} cannot be read ({reason})") from None

    # --- writing: through the spool ---------------------------------------------------------

    def _relative(self, run_id: str, name: str) -> str:
        if not valid_part(run_id) or not valid_part(name):
            raise FileNotFoundError(f"no such result: {run_id}/{name}")
        return run_key(run_id, name)

    def write_bytes(self, run_id: str, name: str, data: bytes) -> None:
        self._spool.write(self._relative(run_id, name), data)

    def open_log(self, run_id: str, stage: str) -> BinaryIO:
        return self._spool.open_log(self._relative(run_id, f"{stage}.log"))

    def put_file(self, run_id: str, name: str, path: Path) -> None:
        self._spool.put_file(self._relative(run_id, name), path)

    def close(self) -> None:
        self._spool.close()
        self._client.close()

    # --- reading: from the bucket ----------------------------------------------------------

    def _get(self, run_id: str, name: str) -> Any | None:
        """The GetObject answer (its Body still to read), or None when there is no such file."""
        if not valid_part(run_id) or not valid_part(name):
            return None
        try:
            return self._client.get_object(
                Bucket=self.bucket, Key=self._remote.key(run_key(run_id, name))
            )
        except ClientError as e:
            if _missing(e):
                return None
            raise

    def read_bytes(self, run_id: str, name: str) -> bytes | None:
        with self._reading():
            found = self._get(run_id, name)
            if found is None:
                return None
            with contextlib.closing(found["Body"]) as body:
                return cast(bytes, body.read())

    def stream(self, run_id: str, name: str, start: int = 0) -> tuple[int, BodyChunks] | None:
        """A ranged GET: only the bytes from `start` (or the last `-start`) leave the bucket."""
        if not valid_part(run_id) or not valid_part(name):
            return None
        key = self._remote.key(run_key(run_id, name))
        wanted = (
            {} if start == 0 else {"Range": f"bytes={start}-" if start > 0 else f"bytes={start}"}
        )
        with self._reading():
            try:
                found = self._client.get_object(Bucket=self.bucket, Key=key, **wanted)
            except ClientError as e:
                if _missing(e):
                    return None
                if _status(e) != 416:  # nothing in that range: an empty file, or start past it
                    raise
                head = self._client.head_object(Bucket=self.bucket, Key=key)
                return int(head["ContentLength"]), BodyChunks(None)
        size = int(found["ContentLength"])
        whole = re.fullmatch(r"bytes \d+-\d+/(\d+)", str(found.get("ContentRange", "")))
        if whole is not None:
            size = int(whole.group(1))
        return size, BodyChunks(found["Body"], self.url)

    def iter_log(self, run_id: str, stage: str) -> Iterator[bytes]:
        """The log in chunks of 1 MiB, however big it is; one empty chunk for an empty log."""
        with self._reading():
            found = self._get(run_id, f"{stage}.log")
            if found is None:
                return
            with contextlib.closing(found["Body"]) as body:
                empty = True
                for chunk in body.iter_chunks(1 << 20):
                    empty = False
                    yield chunk
                if empty:
                    yield b""

    def _list(self, prefix: str, **extra: str) -> Iterator[dict[str, Any]]:
        pages = self._client.get_paginator("list_objects_v2")
        yield from pages.paginate(Bucket=self.bucket, Prefix=self._remote.key(prefix), **extra)

    def run_ids(self) -> list[str]:
        start = len(self._remote.key("run/"))
        with self._reading():
            found = [
                entry["Prefix"][start:].rstrip("/")
                for page in self._list("run/", Delimiter="/")
                for entry in page.get("CommonPrefixes", [])
            ]
        return sorted((r for r in found if valid_part(r)), reverse=True)

    def names(self, run_id: str) -> list[str]:
        if not valid_part(run_id):
            return []
        start = len(self._remote.key(run_key(run_id)))
        with self._reading():
            found = [
                entry["Key"][start:]
                for page in self._list(run_key(run_id))
                for entry in page.get("Contents", [])
            ]
        return sorted(n for n in found if valid_part(n))
