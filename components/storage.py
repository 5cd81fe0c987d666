"""Reading and writing the places data lives: local paths, gs:// objects, http(s) URLs and the
data sets built into the package.

Remote inputs are materialised as local files once (zips are extracted, with every entry
checked so nothing lands outside the extraction folder) so that every step after this one
works on plain local paths. A `#member` suffix picks a file inside a zip, as in
`https://dl.fbaipublicfiles.com/glue/data/SST-2.zip#SST-2/train.tsv`.

`builtin:NAME` names a data file shipped inside the package (`components/data/`, gzipped), such
as `builtin:sst2/train.tsv`: it travels with the wheel and the component image, so the pipeline's
default run needs no download. Its checksum is verified on first use in a process.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import posixpath
import re
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


BUILTIN_PREFIX = "builtin:"
BUILTIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
# name -> (file under BUILTIN_DIR, md5 of its uncompressed content); see data/sst2/README.md.
BUILTIN_DATA = {
    "sst2/train.tsv": ("sst2/train.tsv.gz", "da409a0a939379ed32a470bc0f7fe99a"),
    "sst2/dev.tsv": ("sst2/dev.tsv.gz", "268856b487b2a31a28c0a93daaff7288"),
}
_verified_builtins: set = set()


def is_builtin(uri: str) -> bool:
    return uri.startswith(BUILTIN_PREFIX)


def builtin_names() -> List[str]:
    return [BUILTIN_PREFIX + name for name in BUILTIN_DATA]


def _gunzipped_md5(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with gzip.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def builtin_path(uri: str) -> str:
    """The packaged (gzipped) file a `builtin:` name stands for, its content checked once a process."""
    name = uri[len(BUILTIN_PREFIX):]
    if name not in BUILTIN_DATA:
        raise DataSourceError(f"{uri}: no built-in data file of that name; built in: {', '.join(builtin_names())}")
    relative, md5 = BUILTIN_DATA[name]
    path = os.path.join(BUILTIN_DIR, *relative.split("/"))
    if path in _verified_builtins:
        return path
    if not os.path.isfile(path):
        raise DataSourceError(f"{uri}: the packaged file {path} is missing; reinstall the package "
                              "(`pip install .` from a checkout)")
    try:
        found = _gunzipped_md5(path)
    except (OSError, EOFError) as error:
        raise DataSourceError(f"{uri}: the packaged file {path} is not a readable gzip file ({error}); "
                              "reinstall the package") from error
    if found != md5:
        raise DataSourceError(f"{uri}: the packaged file {path} fails its checksum (md5 of its content {found}, "
                              f"expected {md5}); it is damaged or was changed: reinstall the package")
    _verified_builtins.add(path)
    return path


def _is_zip_name(base: str) -> bool:
    return base.lower().endswith(".zip")


def split_member(uri: str) -> Tuple[str, str]:
    """'archive.zip#dir/file.tsv' -> ('archive.zip', 'dir/file.tsv'); no member -> (uri, '').

    A '#' only separates a zip member when what precedes it names a zip (by its `.zip` name, or
    for a local file by its content) or in a URL (where '#' never reaches the server). So a local
    file or gs:// object whose name holds '#' (`hash#name.tsv`) is read as itself.
    """
    if "#" not in uri:
        return uri, ""
    if is_url(uri):
        base, member = uri.split("#", 1)
        return base, member
    local = not is_gcs(uri)
    if local and os.path.isfile(os.path.expanduser(uri)):
        return uri, ""
    position = uri.find("#")
    while position != -1:
        base = uri[:position]
        if _is_zip_name(base) or (local and os.path.isfile(os.path.expanduser(base))
                                  and zipfile.is_zipfile(os.path.expanduser(base))):
            return base, uri[position + 1:]
        position = uri.find("#", position + 1)
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
    if not name or name.endswith("/"):
        raise DataSourceError(f"{uri}: names a folder, not an object; pass the folder itself as the "
                              "input (every object under it is read) or one object")
    partial = destination + ".partial"
    try:
        blob = gcs_client().bucket(bucket_name).blob(name)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        blob.download_to_filename(partial)
    except Exception as error:  # the client raises many types; all mean "could not read it"
        if os.path.isfile(partial):
            os.remove(partial)
        raise DataSourceError(f"{uri}: could not download from Google Cloud Storage: {error}") from error
    os.replace(partial, destination)


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
    if is_builtin(uri):
        return builtin_path(uri)
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
        raise DataSourceError(f"{uri}: is a folder; pass it as an input (every file in it is read), "
                              "a delimited file, or a zip with '#member'")
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


GLOB_CHARACTERS = "*?["


def has_glob(uri: str) -> bool:
    return any(c in split_member(uri)[0] for c in GLOB_CHARACTERS)


def _skipped_in_folder(name: str) -> bool:
    """Hidden files and Hadoop/Beam markers (`_SUCCESS`, `.crc`) are not data shards."""
    base = posixpath.basename(name)
    return not base or base.startswith((".", "_")) or base.endswith(".crc")


def _glob_regex(pattern: str) -> "re.Pattern":
    """gsutil-style wildcards: `*` and `?` stay inside one folder level, `**` crosses levels."""
    parts, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 2
            continue
        if c == "*":
            parts.append("[^/]*")
        elif c == "?":
            parts.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                parts.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                parts.append(f"[{body}]")
                i = end
        else:
            parts.append(re.escape(c))
        i += 1
    return re.compile("".join(parts) + r"\Z")


def _gcs_names(bucket_name: str, prefix: str) -> List[str]:
    try:
        return sorted(blob.name for blob in gcs_client().list_blobs(bucket_name, prefix=prefix))
    except Exception as error:  # the client raises many types; all mean "could not list it"
        raise DataSourceError(f"gs://{bucket_name}/{prefix}: could not list Google Cloud Storage: "
                              f"{error}") from error


def _expand_gcs(uri: str) -> List[str]:
    bucket_name, name = parse_gcs(uri)
    if has_glob(uri):
        cut = min(name.find(c) for c in GLOB_CHARACTERS if c in name)
        pattern = _glob_regex(name)
        names = [n for n in _gcs_names(bucket_name, name[:cut]) if pattern.match(n) and not n.endswith("/")]
    elif not name or name.endswith("/"):
        prefix = name
        names = [n for n in _gcs_names(bucket_name, prefix)
                 if not n.endswith("/") and not _skipped_in_folder(n[len(prefix):])]
    else:
        try:
            exists = gcs_client().bucket(bucket_name).blob(name).exists()
        except Exception:  # unreachable or forbidden: the download reports it with its reason
            exists = True
        if exists:
            return [uri]
        prefix = name + "/"  # `gs://bucket/folder` without the slash
        names = [n for n in _gcs_names(bucket_name, prefix)
                 if not n.endswith("/") and not _skipped_in_folder(n[len(prefix):])]
        if not names:
            return [uri]  # the download names the missing object
    return [f"gs://{bucket_name}/{n}" for n in names]


def _expand_local(uri: str) -> List[str]:
    path = os.path.expanduser(uri)
    if has_glob(uri) and not os.path.exists(path):
        return sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
    if os.path.isdir(path):
        found = []
        for root, folders, files in os.walk(path):
            folders[:] = sorted(f for f in folders if not _skipped_in_folder(f))
            found.extend(os.path.join(root, f) for f in files if not _skipped_in_folder(f))
        return sorted(found)
    return [uri]


def expand_inputs(uri: str) -> List[str]:
    """The files an input names: itself, every file a glob matches, or every file in a folder.

    Works for local paths and gs:// (`gs://bucket/train-*.csv`, `gs://bucket/folder/`); URLs and
    `ZIP#member` and `builtin:` names name one file. Shards come back sorted by name, so row order
    is stable.
    """
    if is_url(uri) or is_builtin(uri):
        return [uri]
    base, member = split_member(uri)
    if member:
        return [uri]
    if is_gcs(uri):
        found = _expand_gcs(uri)
    else:
        found = _expand_local(uri)
    if not found:
        what = "matches no files" if has_glob(uri) else "holds no data files (hidden and '_' files are skipped)"
        raise DataSourceError(f"{uri}: {what}")
    return found


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
    if is_builtin(uri):
        return uri[len(BUILTIN_PREFIX):] in BUILTIN_DATA
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
