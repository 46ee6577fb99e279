"""Real DICOM files that ship with pydicom (only those installed with it; nothing is downloaded)."""

import io
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

DATA = Path(pydicom.__file__).parent / "data" / "test_files"
DICOMDIR_TESTS = DATA / "dicomdirtests"


def sample(name: str) -> Path:
    """Return the path of a DICOM file shipped with pydicom."""
    path = get_testdata_file(name, download=False)
    assert path, f"{name} is not shipped with this pydicom"
    return Path(path)


def study_files(patient_dir: str) -> list[Path]:
    """Return every file of one patient folder of pydicom's dicomdirtests."""
    return sorted(p for p in (DICOMDIR_TESTS / patient_dir).rglob("*") if p.is_file())


def upload(paths, names=None) -> list[tuple[io.BytesIO, str]]:
    """Build the multipart 'files' list for the Flask test client."""
    names = names or [p.name for p in paths]
    return [(io.BytesIO(Path(p).read_bytes()), n) for p, n in zip(paths, names, strict=True)]


def ct_series(n: int, *, study_uid: str | None = None, series_uid: str | None = None,
              first: int = 1) -> list[tuple[str, bytes]]:
    """Return n slices (name, bytes) of one CT series made from CT_small.dcm (new SOP UIDs, same pixels).

    study_uid/series_uid give the series its own UIDs (CT_small.dcm's otherwise); first numbers the
    slices, so several calls with the same UIDs make different slices of the same series.
    """
    base = pydicom.dcmread(sample("CT_small.dcm"))
    if study_uid:
        base.StudyInstanceUID = study_uid
    if series_uid:
        base.SeriesInstanceUID = series_uid
    slices = []
    for number in range(first, first + n):
        base.SOPInstanceUID = f"{base.SeriesInstanceUID}.{number}"
        base.InstanceNumber = number
        out = io.BytesIO()
        base.save_as(out)
        slices.append((f"IM{number:04d}", out.getvalue()))
    return slices


def read(data: bytes) -> pydicom.Dataset:
    """Parse DICOM bytes."""
    return pydicom.dcmread(io.BytesIO(data))
