"""DICOM JSON of the metadata: invalid values left out, without switching pydicom's process-wide mode.

pydicom's ``to_json_dict(suppress_invalid_tags=True)`` sets the reading validation mode of the whole
process to strict while it runs. The server's other threads then refused uploads and frames with
values pydicom should only warn about, and two overlapping metadata requests once left the mode
strict for the rest of the process (a CI run saw 32 tests fail after the OHIF test loaded two
series at once). ``wado.json_of`` checks each element with the mode given explicitly.
"""

import io
import threading
import warnings

import pydicom
import pytest
from pydicom import config
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag

from app.dicomweb import wado
from app.dicomweb.wado import json_of
from tests.imaging.dicom_samples import sample


def _read(name: str) -> pydicom.Dataset:
    return pydicom.dcmread(sample(name), stop_before_pixels=True)


def _with_invalid_values() -> pydicom.Dataset:
    """CT_small with an infinite spacing, an IS that is no integer and a UID with a leading zero."""
    ds = _read("CT_small.dcm")
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    for old, new in ((b"0.661468\\0.661468", b"inf\\0.661468     "),):
        assert old in data
        data = data.replace(old, new)
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    # As read from a file: raw values, converted (and validated) when first used.
    for tag, vr, value in ((0x00200011, "IS", b"1A"), (0x00200052, "UI", b"1.2.03.4")):
        ds._dict[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)  # noqa: SLF001
    return ds


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "waveform_ecg.dcm", "invalid"])
def test_the_same_elements_are_left_out_as_pydicoms_strict_serialisation(name):
    def make():
        return _with_invalid_values() if name == "invalid" else _read(name)

    options = {"bulk_data_threshold": 1024, "bulk_data_element_handler": lambda elem: "uri"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = make().to_json_dict(suppress_invalid_tags=True, **options)  # one thread: safe here
        ours = json_of(make(), **options)
    assert ours == reference
    if name == "invalid":
        assert not {"00280030", "00200011", "00200052"} & set(ours)  # spacing, series number, frame of reference
        assert "00100010" in ours


def test_serialising_leaves_the_process_wide_reading_mode_alone():
    """Another thread reading DICOM meanwhile must see the mode it set (warn), never strict."""
    modes = []

    def handler(elem):  # runs in the middle of the serialisation, as another thread could
        modes.append(config.settings.reading_validation_mode)
        return "uri"

    before = config.settings.reading_validation_mode
    json_of(_read("CT_small.dcm"), bulk_data_threshold=16, bulk_data_element_handler=handler)
    assert modes
    assert set(modes) == {before} != {config.RAISE}
    assert config.settings.reading_validation_mode == before


def test_overlapping_serialisations_never_leave_the_mode_strict():
    barrier = threading.Barrier(8)
    errors = []

    def serialise():
        barrier.wait(10)
        try:
            for _ in range(20):
                json_of(_with_invalid_values(), bulk_data_threshold=16, bulk_data_element_handler=lambda e: "uri")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threads = [threading.Thread(target=serialise) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []
    assert config.settings.reading_validation_mode == config.WARN


def _raw(ds: pydicom.Dataset, tag: int, vr: str, value: bytes) -> None:
    ds._dict[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)  # noqa: SLF001


def test_values_pydicom_reads_without_complaint_are_kept_and_unreadable_ones_left_out_alone(caplog):
    """Code strings in lower case and dotted dates were kept before and are kept; an element whose bytes
    cannot be read at all (a US of three bytes, an IS beyond any integer) is left out, not the whole answer,
    and logged once (by tag, never its value), though the answer walks the dataset twice."""
    caplog.set_level("INFO", logger=wado.log.name)
    ds = _read("CT_small.dcm")
    _raw(ds, 0x00080008, "CS", b"ORIGINAL\\PRIMARY\\axial ")
    _raw(ds, 0x00080021, "DA", b"2020.01.01")
    _raw(ds, 0x00280010, "US", b"\x00\x02\x00")  # Rows: three bytes
    _raw(ds, 0x00200013, "IS", b"1e400 ")  # InstanceNumber
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = wado._paths(ds, "", {})  # noqa: SLF001 - the walk the metadata answer makes first
        out = json_of(ds)
    assert paths
    assert out["00080008"]["Value"] == ["ORIGINAL", "PRIMARY", "axial"]
    assert out["00080021"]["Value"] == ["2020.01.01"]
    assert "00280010" not in out
    assert "00200013" not in out
    assert out["00100010"]  # the rest is there
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert sorted(left_out) == ["metadata: element 00200013 left out (OverflowError)",
                                "metadata: element 00280010 left out (BytesLengthException)"], left_out
