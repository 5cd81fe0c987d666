"""Where a training task keeps its checkpoints: a folder keyed by everything its training depends on.

The folder is `{root}/{architecture}/{key}`, `root` being `checkpoint_root` when one is given, else
`checkpoints/` under the pipeline root. The key hashes the training task's inputs: the identity
(URI) of its data artifacts, the architecture, model options, hyperparameters, the cache salt and
the library's code. So a retried task, a preempted node's replacement or a re-submission of the
same work finds the same folder and resumes from its last checkpoint, while a run with any changed
input gets a new folder and starts from scratch. `--no-cache` re-runs preprocessing as well, whose
new artifacts (new URIs) give a new key.

Training writes the folder with plain file I/O, so a `gs://` root is used through Vertex AI's
Cloud Storage FUSE mount (`/gcs/BUCKET/...`). A root that cannot be written that way (no mount,
minio:// or s3:// on Kubeflow, an unresolved placeholder) leaves the checkpoints inside the model
artifact, as before, and says so: a retry then starts over. On Kubeflow, point `checkpoint_root`
at a shared volume or a mounted bucket to resume.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping, Optional, Tuple

ROOT_FOLDER = "checkpoints"
GCS_MOUNT = "/gcs"  # where Vertex AI mounts Cloud Storage in every container (Cloud Storage FUSE)
KEY_LENGTH = 20


def code_digest() -> str:
    """Hash of the installed library's source: a new release trains from scratch."""
    import components
    package = os.path.dirname(os.path.abspath(components.__file__))
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    digest.update(os.path.relpath(path, package).encode() + b"\0" + f.read())
    return digest.hexdigest()


def key(architecture: str, model_options: Mapping[str, Any], hparams: Mapping[str, Any], cache_salt: str,
        data: Mapping[str, str], code: Optional[str] = None) -> str:
    """The checkpoint key of one training task; `data` maps input names to artifact URIs."""
    payload = {"architecture": architecture, "model_options": dict(model_options or {}),
               "hparams": dict(hparams or {}), "cache_salt": cache_salt or "", "data": dict(data),
               "code": code if code is not None else code_digest()}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def writable_path(uri: str) -> Tuple[str, str]:
    """(a local path for `uri`, "") or ("", why it cannot be written with plain file I/O)."""
    uri = (uri or "").strip()
    if not uri:
        return "", "no pipeline root or checkpoint_root was given"
    if uri.startswith("{{"):
        return "", f"the orchestrator left the placeholder {uri!r} unresolved"
    if uri.startswith("gs://"):
        if os.path.isdir(GCS_MOUNT):
            return os.path.join(GCS_MOUNT, uri[len("gs://"):]), ""
        return "", f"{uri} is not mounted at {GCS_MOUNT}/ here (Vertex AI mounts Cloud Storage there)"
    if "://" in uri:
        return "", f"{uri} cannot be written as files here; give checkpoint_root a mounted path"
    return os.path.abspath(uri), ""


def folder(checkpoint_root: str, pipeline_root: str, architecture: str, task_key: str) -> Tuple[str, str]:
    """(the task's checkpoint folder, "") or ("", why checkpoints stay inside the model artifact)."""
    base, why = writable_path(checkpoint_root) if checkpoint_root else writable_path(pipeline_root)
    if not base:
        return "", why
    if not checkpoint_root:
        base = os.path.join(base, ROOT_FOLDER)
    return os.path.join(base, architecture, task_key), ""
