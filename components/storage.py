"""Reading and writing the places data lives: local paths, gs:// objects and http(s) URLs.

Remote inputs are materialised as local files once (zips are extracted, with every entry
checked so nothing lands outside the extraction folder) so that every step after this one
works on plain local paths. A `#member` suffix picks a file inside a zip, as in
`https://dl.fbaipublicfiles.com/glue/data/SST-2.zip#SST-2/train.tsv`.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from typing import List, Tuple

from components.errors import DataSourceError, UnsafeArchiveError

CACHE_ENV = "TEXTCLF_CACHE"


def cache_root() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "textclf")


def is_gcs(uri: str) -> bool:
    return uri.startswith("gs://")


def is_url(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def split_member(uri: str) -> Tuple[str, str]:
    """'archive.zip#dir/file.tsv' -> ('archive.zip', 'dir/file.tsv'); no '#' -> (uri, '')."""
    if "#" in uri:
        base, member = uri.split("#", 1)
        return base, member
    return uri, ""


def parse_gcs(uri: str) -> Tuple[str, str]:
    without = uri[len("gs://"):]
    bucket, _, name = without.partition("/")
    if not bucket:
        raise DataSourceError(f"{uri}: not a gs://BUCKET/OBJECT address")
    return bucket, name


def gcs_client():
    """A storage client; against `STORAGE_EMULATOR_HOST` it needs no credentials."""
    from google.cloud import storage  # imported lazily: only gs:// users pay for it

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials
        project = os.environ.get("GOOGLE_CLOUD_PROJECT", "textclf-emulator")
        return storage.Client(project=project, credentials=AnonymousCredentials())
    return storage.Client()


def _hashed_name(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _download_gcs(uri: str, destination: str) -> None:
    bucket_name, name = parse_gcs(uri)
    try:
        blob = gcs_client().bucket(bucket_name).blob(name)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        blob.download_to_filename(destination)
    except Exception as error:  # the client raises many types; all mean "could not read it"
        if os.path.exists(destination):
            os.remove(destination)
        raise DataSourceError(f"{uri}: could not download from Google Cloud Storage: {error}") from error


def _download_url(uri: str, destination: str) -> None:
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    partial = destination + ".partial"
    try:
        with urllib.request.urlopen(uri, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, ValueError) as error:
        if os.path.exists(partial):
            os.remove(partial)
        raise DataSourceError(
            f"{uri}: could not download ({error}). Without internet access, download it elsewhere "
            "and pass the local path (or a gs:// copy) instead.") from error
    os.replace(partial, destination)


def fetch(uri: str) -> str:
    """A local path holding the bytes of `uri` (no '#member' part); URLs are cached."""
    if is_gcs(uri):
        destination = os.path.join(cache_root(), "gcs", _hashed_name(uri), posixpath.basename(uri))
        _download_gcs(uri, destination)
        return destination
    if is_url(uri):
        destination = os.path.join(cache_root(), "url", _hashed_name(uri),
                                   posixpath.basename(uri.split("?")[0]) or "download")
        if not os.path.exists(destination):
            _download_url(uri, destination)
        return destination
    path = os.path.expanduser(uri)
    if not os.path.exists(path):
        raise DataSourceError(f"{uri}: file not found")
    if os.path.isdir(path):
        raise DataSourceError(f"{uri}: is a folder; pass a delimited file (or a zip with '#member')")
    return path


def _check_member_name(archive: str, name: str) -> None:
    normalized = name.replace("\\", "/")
    parts = normalized.split("/")
    if normalized.startswith("/") or ".." in parts or (len(parts[0]) == 2 and parts[0][1] == ":"):
        raise UnsafeArchiveError(
            f"{archive}: refusing to extract entry {name!r}: it would be written outside the "
            "extraction folder (absolute path or '..')")


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_zip(archive: str, display: str | None = None) -> str:
    """Extracts a zip once per content hash into the cache; returns the folder."""
    display = display or archive
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_member_name(display, info.filename)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise UnsafeArchiveError(f"{display}: refusing to extract symbolic link {info.filename!r}")
            target = os.path.join(cache_root(), "zip", _file_sha256(archive)[:16])
            if os.path.exists(os.path.join(target, ".complete")):
                return target
            os.makedirs(os.path.dirname(target), exist_ok=True)
            staging = tempfile.mkdtemp(prefix="extract-", dir=os.path.dirname(target))
            for info in infos:
                zf.extract(info, staging)
    except zipfile.BadZipFile as error:
        raise DataSourceError(f"{display}: not a valid zip archive ({error})") from error
    open(os.path.join(staging, ".complete"), "w").close()
    if os.path.exists(target):
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def _data_files(folder: str) -> List[str]:
    found = []
    for root, _, files in os.walk(folder):
        for name in files:
            if name.startswith(".") or name.startswith("__MACOSX"):
                continue
            found.append(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
    return sorted(f for f in found if not f.startswith("__MACOSX/"))


def resolve_input(uri: str) -> str:
    """Local path of a delimited file named by a path, gs:// or URL, optionally '#member' of a zip."""
    base, member = split_member(uri)
    local = fetch(base)
    if not zipfile.is_zipfile(local):
        if member:
            raise DataSourceError(f"{uri}: '#{member}' given but {base} is not a zip archive")
        return local
    folder = extract_zip(local, display=base)
    files = _data_files(folder)
    if not member:
        if len(files) == 1:
            return os.path.join(folder, files[0])
        raise DataSourceError(
            f"{base}: the archive holds {len(files)} files; name one as '{base}#MEMBER' "
            f"(members: {', '.join(files[:20])})")
    _check_member_name(base, member)
    if member not in files:
        raise DataSourceError(f"{uri}: no member {member!r} in the archive (members: {', '.join(files[:20])})")
    return os.path.join(folder, member)


# --- writing -----------------------------------------------------------------------------------

def join(base: str, *parts: str) -> str:
    if is_gcs(base):
        return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])
    return os.path.join(base, *parts)


def upload_file(local_path: str, uri: str) -> None:
    if is_gcs(uri):
        bucket_name, name = parse_gcs(uri)
        try:
            gcs_client().bucket(bucket_name).blob(name).upload_from_filename(local_path)
        except Exception as error:
            raise DataSourceError(f"{uri}: could not upload to Google Cloud Storage: {error}") from error
        return
    if is_url(uri):
        raise DataSourceError(f"{uri}: cannot write to an http(s) URL; use a local path or gs://")
    os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
    shutil.copyfile(local_path, uri)


def upload_tree(local_dir: str, uri: str) -> List[str]:
    """Copies every file below `local_dir` under `uri`; returns the destination URIs."""
    written = []
    for root, _, files in os.walk(local_dir):
        for name in sorted(files):
            source = os.path.join(root, name)
            relative = os.path.relpath(source, local_dir).replace(os.sep, "/")
            destination = join(uri, relative)
            upload_file(source, destination)
            written.append(destination)
    return written


def list_uris(uri: str) -> List[str]:
    """Every file below a folder (local) or prefix (gs://), as full addresses."""
    if is_gcs(uri):
        bucket_name, prefix = parse_gcs(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        blobs = gcs_client().list_blobs(bucket_name, prefix=prefix)
        return sorted(f"gs://{bucket_name}/{b.name}" for b in blobs)
    result = []
    for root, _, files in os.walk(uri):
        result.extend(os.path.join(root, name) for name in files)
    return sorted(result)


def read_bytes(uri: str) -> bytes:
    """A whole file: local path, gs:// object, URL, or any path Beam's file systems know."""
    if "://" in uri and not is_gcs(uri) and not is_url(uri):
        file_systems, uncompressed = _beam_fs()
        with file_systems.open(uri, compression_type=uncompressed) as f:
            return f.read()
    if is_gcs(uri):
        bucket_name, name = parse_gcs(uri)
        try:
            return gcs_client().bucket(bucket_name).blob(name).download_as_bytes()
        except Exception as error:
            raise DataSourceError(f"{uri}: could not read from Google Cloud Storage: {error}") from error
    with open(fetch(uri), "rb") as f:
        return f.read()


# --- plain reads and writes of any path the steps use (local, gs://, other Beam file systems) ---

def _beam_fs():
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    return FileSystems, CompressionTypes.UNCOMPRESSED


def _other_scheme(uri: str) -> bool:
    return "://" in uri and not is_gcs(uri) and not is_url(uri)


def exists(uri: str) -> bool:
    """Whether a file exists (gs:// objects through the GCS client, other schemes through Beam)."""
    if is_gcs(uri):
        bucket_name, name = parse_gcs(uri)
        try:
            return gcs_client().bucket(bucket_name).blob(name).exists()
        except Exception as error:  # the client raises many types; all mean "could not ask"
            raise DataSourceError(f"{uri}: could not reach Google Cloud Storage: {error}") from error
    if _other_scheme(uri):
        file_systems, _ = _beam_fs()
        return file_systems.exists(uri)
    return os.path.isfile(uri)


def write_bytes(uri: str, data: bytes) -> None:
    """Writes a whole file, creating local parent folders."""
    if is_gcs(uri):
        bucket_name, name = parse_gcs(uri)
        try:
            gcs_client().bucket(bucket_name).blob(name).upload_from_string(bytes(data))
        except Exception as error:
            raise DataSourceError(f"{uri}: could not write to Google Cloud Storage: {error}") from error
        return
    if is_url(uri):
        raise DataSourceError(f"{uri}: cannot write to an http(s) URL; use a local path or gs://")
    if _other_scheme(uri):
        file_systems, uncompressed = _beam_fs()
        with file_systems.create(uri, compression_type=uncompressed) as f:
            f.write(data)
        return
    parent = os.path.dirname(uri)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(uri, "wb") as f:
        f.write(data)
