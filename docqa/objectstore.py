"""Object stores: files at a URI (``s3://bucket/prefix``, ``gs://bucket/prefix``) read through
pyarrow's file systems.

pyarrow (``pip install 'docqa[cloud]'``; ``docqa[ray]`` has it too) is imported only when a URI
is given. Settings come from pyarrow's usual places: credentials from the environment
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance role;
``GOOGLE_APPLICATION_CREDENTIALS``), options from the URI's query (``?region=…``,
``?endpoint_override=…``). pyarrow ignores ``AWS_ENDPOINT_URL`` (apache/arrow#49643), so docqa
passes it on: an S3-compatible store (MinIO, Ceph) is configured as for the AWS CLI.

The opened file system is pickled with each Ray task (its options, never credentials it found
in the environment): workers use the driver's endpoint and region, and their own credentials.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from docqa.errors import DocQAError, first_line

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ObjectStoreError(DocQAError):
    """A URI that cannot be opened or listed (no pyarrow, a bad URI, no access)."""


def is_uri(path: str | os.PathLike[str]) -> bool:
    return bool(_SCHEME.match(os.fspath(path)))


def local_path(uri: str) -> str | None:
    """The local path a ``file://`` URI names (indexed like any local path); None for others."""
    parts = urlsplit(uri)
    return unquote(parts.path) if is_uri(uri) and parts.scheme == "file" else None


@dataclass(frozen=True)
class Remote:
    """An opened URI: its pyarrow file system, the path in it, and what is there (stat'ed once
    when opened: a run opens each URI once, and the walk and the removal of gone objects use it)."""

    uri: str  # as stored in the index: no query, no trailing slash
    fs: Any
    path: str
    info: Any = field(compare=False)  # pyarrow's FileInfo of path

    @property
    def kind(self) -> str | None:
        """"file", "folder", or None when nothing is there."""
        import pyarrow.fs

        return {pyarrow.fs.FileType.File: "file", pyarrow.fs.FileType.Directory: "folder"}.get(self.info.type)


@dataclass(frozen=True)
class RemoteFile:
    uri: str
    path: str  # in the file system
    rel: str  # relative to the URI listed
    size: int
    mtime: float


def open_uri(uri: str) -> Remote:
    """Open ``uri`` and stat what it names; a bad URI or no access fails here, before any work."""
    try:
        import pyarrow
        import pyarrow.fs
    except ImportError as err:
        raise ObjectStoreError(f"{uri}: reading object-store URIs needs pyarrow: pip install 'docqa[cloud]'") from err
    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(_with_endpoint(uri))
    except (ValueError, OSError, pyarrow.ArrowException) as err:
        raise ObjectStoreError(f"{uri}: pyarrow cannot open this URI ({first_line(err)}); check it "
                               "(docqa reads s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, file:///PATH)") from err
    parts = urlsplit(uri)
    stored, path = urlunsplit(parts._replace(query="", fragment="")).rstrip("/"), path.rstrip("/")
    try:
        info = fs.get_file_info(path)
    except OSError as err:
        raise unreachable(stored, err) from err
    return Remote(stored, fs, path, info)


def _with_endpoint(uri: str) -> str:
    parts = urlsplit(uri)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if parts.scheme != "s3" or not endpoint or "endpoint_override" in parse_qs(parts.query):
        return uri
    query = "&".join(q for q in (parts.query, f"endpoint_override={quote(endpoint, safe='')}") if q)
    return urlunsplit(parts._replace(query=query))


def files(remote: Remote) -> Iterator[RemoteFile]:
    """The file a URI names, or the files under it, sorted, hidden ones (a name part starting
    with ".") left out. pyarrow lists a prefix in one call: the listing is held in memory."""
    import pyarrow.fs

    if remote.kind == "file":
        name = remote.uri.rsplit("/", 1)[-1]
        yield RemoteFile(remote.uri, remote.path, name, remote.info.size, remote.info.mtime_ns / 1e9)
        return
    try:
        infos = remote.fs.get_file_info(pyarrow.fs.FileSelector(remote.path, recursive=True))
    except OSError as err:
        raise unreachable(remote.uri, err) from err
    base = len(remote.path) + 1 if remote.path else 0
    found = []
    for info in infos:
        rel = info.path[base:]
        if info.type == pyarrow.fs.FileType.File and not any(part.startswith(".") for part in rel.split("/")):
            found.append(RemoteFile(f"{remote.uri}/{rel}", info.path, rel, info.size, info.mtime_ns / 1e9))
    yield from sorted(found, key=lambda f: f.rel)


def exists(fs: Any, path: str) -> bool:
    import pyarrow.fs

    try:
        return bool(fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound)
    except OSError:  # cannot tell: the caller goes on as if it were there
        return True


def unreachable(uri: str, err: BaseException) -> ObjectStoreError:
    scheme = urlsplit(uri).scheme
    hint = {
        "s3": "the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance "
              "role) and, for an S3-compatible store, AWS_ENDPOINT_URL",
        "gs": "the credentials (GOOGLE_APPLICATION_CREDENTIALS, or gcloud auth application-default login)",
    }.get(scheme, "the credentials")
    return ObjectStoreError(f"cannot read {uri} ({first_line(err)}); check the bucket name, {hint}")
