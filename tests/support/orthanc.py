"""A real Orthanc (Debian package ``orthanc``) on free 127.0.0.1 ports with a throw-away config.

Used as a sending PACS (tests) and as the reference receiver (bench). HZ_REQUIRE_DICOM_TOOLS=1 (CI)
turns a missing binary into a failure instead of a skip.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import requests

from tests.conftest import free_port


def orthanc_binary() -> str | None:
    """Return the Orthanc executable, or None if it is not installed."""
    return shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc",) if Path(p).exists()), None)


class Orthanc:
    """Start and stop an Orthanc whose storage lives in a temp folder."""

    def __init__(self, workdir: Path, *, modalities: dict | None = None, aet: str = "ORTHANC",
                 plugins: list[str] | None = None):
        self.http_port, self.dicom_port, self.aet = free_port(), free_port(), aet
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.workdir = workdir
        config = {
            "Name": "huizhen-test", "StorageDirectory": str(workdir / "db"), "IndexDirectory": str(workdir / "db"),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": aet,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": False,
            "DicomModalities": modalities or {}, "Plugins": plugins or [], "StableAge": 1,
            "StorageCompression": False, "MaximumStorageCacheSize": 0,
        }
        (workdir / "orthanc.json").write_text(json.dumps(config))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Orthanc":
        binary = orthanc_binary()
        self.log = open(self.workdir / "orthanc.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([binary, str(self.workdir / "orthanc.json")],  # noqa: S603
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/system", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not start; see {self.workdir / 'orthanc.log'}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None
            self.log.close()

    def upload(self, data: bytes) -> dict:
        """Store one DICOM file through the REST API and return Orthanc's answer."""
        r = requests.post(f"{self.url}/instances", data=data, timeout=30)
        r.raise_for_status()
        return r.json()

    def __enter__(self) -> "Orthanc":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def require_or_skip() -> None:
    """Skip the calling test when Orthanc is missing, unless CI requires it."""
    import pytest

    if orthanc_binary() is None:
        if os.environ.get("HZ_REQUIRE_DICOM_TOOLS") == "1":
            pytest.fail("Orthanc is required (HZ_REQUIRE_DICOM_TOOLS=1) but not installed")
        pytest.skip("Orthanc is not installed (Debian package orthanc)")
