"""Fetching encoders: archives from URLs and TF Hub, folders from gs://, each once into the cache.

Everything lands under `storage.cache_root()/encoders` ($TEXTCLF_CACHE), unpacked with every tar
member checked (no absolute paths, no `..`, no links out), and published atomically, so a rerun
or a concurrent step never sees half a download.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from components import storage
from components.errors import DataSourceError, EncoderError

HUB_HOSTS = ("tfhub.dev", "www.kaggle.com", "kaggle.com")
HUB_COMPRESSED_QUERY = "tf-hub-format=compressed"


def is_hub_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url).netloc.lower()
    return host in HUB_HOSTS


def hub_compressed_url(url: str) -> str:
    """A TF Hub URL asking for the module as one .tar.gz (what tensorflow_hub downloads)."""
    return url + ("&" if "?" in url else "?") + HUB_COMPRESSED_QUERY


def fetch_hub_module(url: str) -> str:
    """Downloads a tfhub.dev / kaggle.com module once, in its compressed form; returns its folder."""
    parts = urllib.parse.urlsplit(url)
    readable = "".join(c if c.isalnum() or c in "-_." else "_"
                       for c in parts.path.strip("/"))[-80:] or "module"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return fetch_archive(hub_compressed_url(url), f"hub-{readable}-{digest}")


def cache_root() -> str:
    return os.path.join(storage.cache_root(), "encoders")


def mirror_gcs_folder(uri: str) -> str:
    """Copies a gs:// encoder folder into the cache once; loaders then read local files."""
    digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
    target = os.path.join(cache_root(), "gcs", f"{os.path.basename(uri.rstrip('/'))}-{digest}")
    if os.path.isdir(target):
        return target
    prefix = uri.rstrip("/") + "/"
    try:
        files = storage.list_uris(uri)
    except Exception as e:  # the GCS client raises many types
        raise EncoderError(f"{uri}: could not list the encoder folder: {e}") from e
    if not files:
        raise EncoderError(f"{uri}: no files under this gs:// folder")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    work = tempfile.mkdtemp(prefix=".gcs-", dir=os.path.dirname(target))
    try:
        for file_uri in files:
            relative = file_uri[len(prefix):]
            local = os.path.join(work, *relative.split("/"))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            try:
                data = storage.read_bytes(file_uri)
            except DataSourceError as e:
                raise EncoderError(str(e)) from e
            with open(local, "wb") as f:
                f.write(data)
        _publish(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _publish(folder: str, target: str) -> None:
    try:
        os.replace(folder, target)
    except OSError:
        if not os.path.isdir(target):  # a concurrent run may have published it first
            raise


def _download(url: str, dest: str, timeout: float = 60.0) -> None:
    """Fetches `url` into the file `dest` (tests replace this to stay offline)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise EncoderError(f"download of {url} failed ({e})") from e


def fetch_archive(url: str, name: str) -> str:
    """Downloads and unpacks a (tar.gz) encoder once; returns the folder holding the model.

    The unpacked folder is only published (renamed into place) when complete, so an
    interrupted download never leaves a half-written encoder that a later run would trust.
    """
    target = os.path.join(cache_root(), name)
    if os.path.isdir(target):
        return _model_root(target)
    os.makedirs(cache_root(), exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{name}-", dir=cache_root())
    try:
        archive = os.path.join(work, "archive")
        _download(url, archive)
        unpacked = os.path.join(work, "unpacked")
        os.makedirs(unpacked)
        try:
            with tarfile.open(archive) as tar:
                _safe_extract(tar, unpacked)
        except (tarfile.TarError, OSError) as e:
            raise EncoderError(f"{url} is not a readable tar archive ({e})") from e
        _publish(unpacked, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _model_root(target)


def _safe_extract(tar: tarfile.TarFile, folder: str) -> None:
    """Extracts refusing members that would land outside `folder` (absolute paths, `..`, links)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(folder, filter="data")
        return
    root = os.path.realpath(folder)
    for member in tar.getmembers():
        target = os.path.realpath(os.path.join(root, member.name))
        if os.path.commonpath([root, target]) != root or member.issym() or member.islnk():
            raise tarfile.TarError(f"unsafe archive member {member.name!r}")
    tar.extractall(folder)


def _model_root(folder: str) -> str:
    """The shallowest folder under `folder` holding a SavedModel or an HF config."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if "saved_model.pb" in files or "config.json" in files:
            return root
    raise EncoderError(f"{folder}: the downloaded archive holds no saved_model.pb or config.json")
