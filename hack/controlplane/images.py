"""Container images for the real node, written without Docker or a registry.

Each image is one OCI image archive (an OCI layout in a tar) holding a single
uncompressed layer, made from a root directory by the standard library and
imported into the node's containerd with `ctr images import`. The archives are
cached under the tools cache by a hash of everything that goes into them, so a
warm start only imports them.

- `busybox`: Debian's static busybox with its applets (the operator's default task
  image, tagged `docker.io/library/busybox:1.36` so task Pods find it locally);
- `pause`: the sandbox image, a 15-line static C program (hack/images/pause.c);
- `python`: Debian bookworm (python3 3.11) made by `mmdebstrap --variant=essential`,
  for tasks that need Python.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HACK_DIR = Path(__file__).resolve().parent.parent
IMAGES_DIR = HACK_DIR / "images"
BUSYBOX = Path("/bin/busybox")

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
BUSYBOX_IMAGE = "docker.io/library/busybox:1.36"
PYTHON_IMAGE = "docker.io/library/python:3.11-kfl"

RECIPE_VERSION = "1"
"""Bump when the way images are made changes (the layout, the config): every archive is rebuilt."""


@dataclass(frozen=True)
class Image:
    """A named image and how to make its root directory."""

    name: str
    inputs: Callable[[], tuple[str, ...]]
    """Strings whose change means a new image (file hashes, package lists), read when needed."""
    make_rootfs: Callable[[Path], None]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    user: str = ""
    ports: tuple[int, ...] = ()

    def key(self) -> str:
        fields = (
            self.name,
            RECIPE_VERSION,
            *self.inputs(),
            *self.entrypoint,
            *self.cmd,
            *self.env,
            self.user,
        )
        text = "\n".join((*fields, *map(str, self.ports)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _base_dirs(root: Path) -> None:
    for d in ("bin", "etc", "root", "proc", "sys", "dev", "var", "usr/bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    tmp.chmod(0o1777)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")


def _busybox_rootfs(root: Path) -> None:
    _base_dirs(root)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)


def _pause_rootfs(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["gcc", "-Os", "-static", "-s", "-o", str(root / "pause"), str(IMAGES_DIR / "pause.c")],
        check=True,
        capture_output=True,
    )


PYTHON_PACKAGES = ("python3", "python3-venv", "ca-certificates")


def _python_rootfs(root: Path, packages: tuple[str, ...] = PYTHON_PACKAGES) -> None:
    """Debian bookworm with python3, as a python:3.11 image would have it (`python` included)."""
    subprocess.run(
        [
            "mmdebstrap", "--variant=essential", "--mode=root", "--quiet",
            f"--include={','.join(packages)}",
            "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "bookworm", str(root),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    python = root / "usr" / "bin" / "python"
    if not python.exists():
        os.symlink("python3", python)
    for cache in ("var/cache/apt", "var/lib/apt/lists"):
        shutil.rmtree(root / cache, ignore_errors=True)


OPERATOR_PACKAGES = (*PYTHON_PACKAGES, "graphviz")
"""The operator image's Debian packages: Python, and Graphviz for the web UI's graph view."""

REPO_DIR = HACK_DIR.parent
OPERATOR_USER = 10001
"""The operator image's non-root uid and gid, as in the Dockerfile."""


def _project_hash() -> str:
    """The project's wheel inputs: pyproject.toml, README.md and every file of the package."""
    digest = hashlib.sha256()
    files = [REPO_DIR / "pyproject.toml", REPO_DIR / "README.md"]
    files += sorted(
        p for p in (REPO_DIR / "kubeflowlite").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    for path in files:
        digest.update(str(path.relative_to(REPO_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _project_version() -> str:
    text = (REPO_DIR / "pyproject.toml").read_text()
    return text.split('version = "', 1)[1].split('"', 1)[0]


def _kubeflowlite_rootfs(root: Path) -> None:
    """The operator image as the Dockerfile makes it: Debian's python3 with a venv holding the
    project's wheel and its dependencies (from PyPI), run as uid 10001."""
    _python_rootfs(root, OPERATOR_PACKAGES)
    wheels = root / "tmp" / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(REPO_DIR)],
        check=True,
        capture_output=True,
    )
    for command in (
        ["python3", "-m", "venv", "/opt/kubeflowlite"],
        ["/opt/kubeflowlite/bin/pip", "install", "--quiet", "--no-index", "--find-links", "/tmp/wheels",
         "--no-compile", "kubeflowlite"],
    ):  # fmt: skip
        subprocess.run(["chroot", str(root), *command], check=True, capture_output=True)
    shutil.rmtree(wheels)
    for cache in root.glob("opt/kubeflowlite/**/__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    with open(root / "etc" / "passwd", "a") as passwd:
        passwd.write(f"kubeflowlite:x:{OPERATOR_USER}:{OPERATOR_USER}::/nonexistent:/usr/sbin/nologin\n")
    with open(root / "etc" / "group", "a") as group:
        group.write(f"kubeflowlite:x:{OPERATOR_USER}:\n")


CACHE_ROOT = Path(
    os.environ.get(
        "KFL_TOOLS_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kubeflowlite"
    )
)
"""Where archives are kept (the tools cache, as hack/build-tools has it)."""

OPERATOR_IMAGE = f"docker.io/kubeflowlite/kubeflowlite:{_project_version()}"

IMAGES: dict[str, Image] = {
    "pause": Image(
        PAUSE_IMAGE, lambda: (_file_hash(IMAGES_DIR / "pause.c"),), _pause_rootfs, entrypoint=("/pause",)
    ),
    "busybox": Image(BUSYBOX_IMAGE, lambda: (_file_hash(BUSYBOX),), _busybox_rootfs, cmd=("sh",)),
    "python": Image(PYTHON_IMAGE, lambda: PYTHON_PACKAGES, _python_rootfs, cmd=("python3",)),
    # The operator (helm install on the real node): what the Dockerfile builds, made here.
    "kubeflowlite": Image(
        OPERATOR_IMAGE,
        lambda: (_project_hash(), *OPERATOR_PACKAGES),
        _kubeflowlite_rootfs,
        entrypoint=("kubeflowlite", "operator"),
        env=(
            "PATH=/opt/kubeflowlite/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONUNBUFFERED=1",
            "PYTHONDONTWRITEBYTECODE=1",
        ),
        user=f"{OPERATOR_USER}:{OPERATOR_USER}",
        ports=(8080, 9090),
    ),
}


def archive(name: str, cache_root: Path) -> Path:
    """The OCI archive of image `name`, built into `cache_root/images` unless already there."""
    image = IMAGES[name]
    out_dir = cache_root / "images"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}-{image.key()}.oci.tar"
    if out.exists():
        return out
    # Two test lanes (hack/test-lanes) may want the same image at once: one builds, the other waits.
    with (out_dir / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():
            return out
        with tempfile.TemporaryDirectory(prefix=f"kfl-image-{name}-", dir=out_dir) as tmp:
            root = Path(tmp) / "rootfs"
            image.make_rootfs(root)
            partial = Path(tmp) / "image.tar"
            write_oci_archive(root, partial, image)
            partial.replace(out)
        for stale in out_dir.glob(f"{name}-*.oci.tar"):
            if stale != out:
                stale.unlink(missing_ok=True)
    return out


def write_oci_archive(root: Path, out: Path, image: Image) -> None:
    """An OCI layout tar with one layer holding `root` (owned by root, mtime 0: reproducible)."""
    layer = _layer_tar(root)
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": list(image.env),
            **({"Entrypoint": list(image.entrypoint)} if image.entrypoint else {}),
            **({"Cmd": list(image.cmd)} if image.cmd else {}),
            "WorkingDir": "/",
            **({"User": image.user} if image.user else {}),
            **({"ExposedPorts": {f"{p}/tcp": {} for p in image.ports}} if image.ports else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created_by": "kubeflowlite hack/controlplane/images.py"}],
    }
    config_blob = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": f"sha256:{hashlib.sha256(config_blob).hexdigest()}",
            "size": len(config_blob),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": f"sha256:{layer_digest}",
                "size": len(layer),
            }
        ],
    }
    manifest_blob = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = hashlib.sha256(manifest_blob).hexdigest()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{manifest_digest}",
                "size": len(manifest_blob),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": image.name,
                    "org.opencontainers.image.ref.name": image.name,
                },
            }
        ],
    }
    with tarfile.open(out, "w") as tar:
        _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _add_bytes(tar, "index.json", json.dumps(index).encode())
        for blob in (layer, config_blob, manifest_blob):
            _add_bytes(tar, f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}", blob)


def _layer_tar(root: Path) -> bytes:
    buffer = io.BytesIO()

    def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        return info

    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name, filter=owned_by_root)
    return buffer.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
