"""The OHIF Viewer's prebuilt files: fetched once from npm with the npm client, checked, patched, cached.

`@ohif/app` cannot go into package.json: its published dependencies name versions that are not
on the registry (``@ohif/i18n@3.13.2``), so ``npm ci`` would fail. Its ``dist/`` is a complete,
self-contained build, so ``npm pack`` fetches just the tarball (npm's own cache keeps it), its
integrity is checked against the pin below, and ``dist/`` is unpacked into the cache folder.

The build expects to be served at ``/``; it is served under :data:`PREFIX`, so the few absolute
paths in it (webpack's public path, the stylesheet's font, the page's links, the manifest's icons)
are rewritten while unpacking. Source maps are left out (about 30 MB only debuggers read).
"""

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@ohif/app"
VERSION = "3.13.2"
INTEGRITY = "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
PREFIX = "/ohif/"
READY = ".ready"

# The inline scripts of the build's index.html; app-config.js (served per case) carries them instead,
# so the page's Content-Security-Policy needs no 'unsafe-inline' for scripts.
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)
_PUBLIC_URL = re.compile(rb'window\.PUBLIC_URL="/"')
_EXPECTED_INLINE = [b'console.time("scriptToView"),', b"function browserImportFunction(n){return import(n)}"]
# What those scripts do, less the public URL (app-config.js sets it): checked at unpack time.
PAGE_JS = 'console.time("scriptToView");\nfunction browserImportFunction(n){return import(n)}\n'


def dist_dir(cache: str | Path) -> Path:
    """Return the folder the patched build of the pinned version lives in under the cache."""
    return Path(cache) / f"ohif-app-{VERSION}"


def is_ready(cache: str | Path) -> bool:
    """Tell whether the pinned build has been fetched and unpacked completely."""
    return (dist_dir(cache) / READY).is_file()


def _check_integrity(data: bytes) -> None:
    algo, _, expected = INTEGRITY.partition("-")
    digest = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if digest != expected:
        raise RuntimeError(f"{PACKAGE}@{VERSION}: tarball integrity {algo}-{digest} is not the pinned {INTEGRITY}")


def _patch(name: str, data: bytes) -> bytes:
    prefix = PREFIX.encode()
    if name.endswith(".js"):
        return data.replace(b'__webpack_require__.p = "/";', b'__webpack_require__.p = "' + prefix + b'";')
    if name.endswith(".css"):
        return data.replace(b"url(/", b"url(" + prefix)
    if name == "manifest.json":
        return data.replace(b'"/assets/', b'"' + prefix + b"assets/")
    if name == "index.html":
        scripts = _INLINE_SCRIPT.findall(data)
        if [_PUBLIC_URL.sub(b"", s) for s in scripts] != _EXPECTED_INLINE:
            raise RuntimeError(f"{PACKAGE}@{VERSION}: index.html's inline scripts are not the expected ones")
        data = _INLINE_SCRIPT.sub(b"", data)
        # Relative, so each case's (or link's) page loads its own generated configuration.
        data = data.replace(b'src="/app-config.js"', b'src="app-config.js"')
        return data.replace(b'href="/', b'href="' + prefix).replace(b'src="/', b'src="' + prefix)
    return data


def _unpack(tgz: Path, target: Path) -> None:
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.startswith("package/dist/") or member.name.endswith(".map"):
                continue
            rel = Path(member.name[len("package/dist/"):])
            if rel.is_absolute() or ".." in rel.parts:
                raise RuntimeError(f"{PACKAGE}: unsafe path in the tarball: {member.name}")
            source = tar.extractfile(member)
            assert source is not None  # noqa: S101 - isfile() members always have a file object
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(_patch(rel.as_posix(), source.read()))


def fetch(cache: str | Path, *, npm: str = "npm") -> Path:
    """Fetch the pinned ``@ohif/app`` with ``npm pack`` (once), check it and unpack its patched dist."""
    target = dist_dir(cache)
    if is_ready(cache):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".ohif-") as tmp:
        work = Path(tmp)
        command = [shutil.which(npm) or npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(work),
                   "--silent", "--no-audit", "--no-fund"]
        # The arguments are this module's constants and a temporary folder: nothing from outside.
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
        tgz = next(work.glob("*.tgz"))
        _check_integrity(tgz.read_bytes())
        staging = work / "dist"
        _unpack(tgz, staging)
        (staging / READY).write_text(f"{PACKAGE}@{VERSION}\n")
        if target.exists():
            shutil.rmtree(target)  # a half-unpacked earlier attempt (no READY marker)
        os.replace(staging, target)
    return target
