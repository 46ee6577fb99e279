"""Object store on any S3 endpoint (MinIO in production) through the minio client."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error, ServerError
from minio.helpers import check_bucket_name

from app.storage.base import CHUNK, HashingReader, StorageUnavailable, StoredObject

# Objects above this size go up as a multipart upload, one part in memory at a time.
PART_SIZE = 16 * 1024 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "NotFound"}
_PAYLOAD_SHA256 = "x-amz-content-sha256"


class _Client(Minio):
    """minio's client, except that a request whose body's SHA-256 the caller gives is signed with it.

    Over http minio hashes every body for its SigV4 signature (over https it computes a
    Content-MD5 instead); for an ingested file that is the digest its worker process computed
    moments before, and hashing a 530 KB slice again here was ≈ 0.35 of the ≈ 1.45 ms of CPU a
    put costs the server process. The given digest is signed as the payload hash over http and https alike, so the
    server checks the body against the digest the index records (S3 answers
    XAmzContentSHA256Mismatch otherwise). Only for one-request puts: a multipart upload's
    requests each carry a part, not the object.
    """

    def _build_headers(self, host, headers=None, body=None, creds=None):
        digest = headers.get(_PAYLOAD_SHA256) if headers else None
        if digest is None or creds is None or not body:
            return super()._build_headers(host, headers, body, creds)
        headers, date = super()._build_headers(host, headers, None, creds)  # no body: nothing hashed
        headers["Content-Length"] = str(len(body))
        headers[_PAYLOAD_SHA256] = digest
        return headers, date


class S3Store:
    """Objects in one bucket, created on first use if missing. Fails fast when unreachable."""

    def __init__(self, *, endpoint: str, access_key: str | None, secret_key: str | None, bucket: str,
                 region: str | None = None, connect_timeout: float = 3.0, read_timeout: float = 60.0):
        url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if not url.hostname:
            raise RuntimeError(f"S3_ENDPOINT {endpoint!r} has no host")
        try:
            # strict, as make_bucket checks: a name it refuses (upper case, "_") failed every upload with a 500
            check_bucket_name(bucket, strict=True)
        except ValueError as exc:
            raise RuntimeError(f"S3_BUCKET {bucket!r} is not a valid bucket name: "
                               "3-63 lower-case letters, digits, dots and hyphens") from exc
        self.bucket = bucket
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            # One quick retry for a dropped keep-alive connection; then report the outage.
            retries=urllib3.Retry(total=1, connect=1, read=0, backoff_factor=0.1,
                                  status_forcelist=(502, 503, 504)),
            maxsize=16,
        )
        self.client = _Client(url.netloc, access_key=access_key, secret_key=secret_key,
                              secure=url.scheme == "https", region=region or None, http_client=http)
        self._bucket_ready = False
        self._lock = threading.Lock()

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise FileNotFoundError(kwargs.get("object_name") or (args[1] if len(args) > 1 else "")) from exc
            raise StorageUnavailable(detail=f"object store refused the request: {exc.code}") from exc
        except (ServerError, MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(detail=f"object store unreachable: {type(exc).__name__}") from exc

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._lock:
            if not self._bucket_ready:
                if not self._call(self.client.bucket_exists, self.bucket):
                    try:
                        self._call(self.client.make_bucket, self.bucket)
                    except StorageUnavailable:
                        # Another process may have created it between the two calls.
                        if not self._call(self.client.bucket_exists, self.bucket):
                            raise
                self._bucket_ready = True

    def put(self, key: str, stream: BinaryIO, size: int, content_type: str, *,
            sha256: str | None = None) -> StoredObject:
        self._ensure_bucket()
        reader = HashingReader(stream, sha256)
        signed = {_PAYLOAD_SHA256: sha256} if sha256 and size <= PART_SIZE else None
        self._call(self.client.put_object, self.bucket, key, reader, size,
                   content_type=content_type, part_size=PART_SIZE, metadata=signed)
        if reader.size != size:
            raise StorageUnavailable(detail="object store stopped reading the upload early")
        return StoredObject(key=key, size=reader.size, sha256=reader.sha256)

    def open(self, key: str) -> Iterator[bytes]:
        self._ensure_bucket()
        response = self._call(self.client.get_object, self.bucket, key)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(CHUNK)
            finally:
                response.close()
                response.release_conn()

        return chunks()

    def read(self, key: str) -> bytes:
        return b"".join(self.open(key))

    def delete(self, key: str) -> None:
        self._ensure_bucket()
        self._call(self.client.remove_object, self.bucket, key)

    def exists(self, key: str) -> bool:
        self._ensure_bucket()
        try:
            self._call(self.client.stat_object, self.bucket, key)
        except FileNotFoundError:
            return False
        return True

    def keys(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        self._ensure_bucket()
        # list_objects is lazy: errors surface while iterating, so the whole listing is one call.
        listing = self._call(lambda: [
            (o.object_name, o.last_modified.astimezone(UTC).replace(tzinfo=None))
            for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)])
        yield from listing

    def abort_unfinished(self, prefix: str, *, started_before: datetime) -> list[str]:
        self._ensure_bucket()
        # A process killed mid put_object leaves its multipart upload open: the parts stay in the
        # bucket, invisible to list_objects, until aborted. minio has no public call for these.
        aborted, key_marker, id_marker = [], None, None
        while True:
            page = self._call(self.client._list_multipart_uploads, self.bucket, prefix=prefix,
                              key_marker=key_marker, upload_id_marker=id_marker)
            for upload in page.uploads:
                started = upload.initiated_time
                if started is not None and started.astimezone(UTC).replace(tzinfo=None) > started_before:
                    continue
                self._call(self.client._abort_multipart_upload, self.bucket, upload.object_name,
                           upload.upload_id)
                aborted.append(upload.object_name)
            if not page.is_truncated:
                return aborted
            key_marker, id_marker = page.next_key_marker, page.next_upload_id_marker
