"""The fast path (app.imaging.scan) gives what the pydicom path gives, or steps aside.

For every file it takes, the stored bytes, the index facts and the UID map must equal those of
``prepare_dicom(fast=False)``, the reference; every file it does not take goes to the reference.
"""

import io
import logging
import random
import re
import struct
import warnings

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from app.imaging import deid, dicom, scan
from app.imaging.ingest import prepare_dicom
from tests.imaging.dicom_samples import DATA, sample
from tests.imaging.hostile import encoded, mislabelled, spliced

OPTIONS = {"secret": "case-secret", "pseudonym": "HUIZHEN^CASE7", "max_frame_pixels": 64_000_000,
           "max_decoded_bytes": 2**31}


def reference(data: bytes):
    """(bytes, facts, UID map) from the pydicom path, or the exception it raises."""
    try:
        result = prepare_dicom(data, force=False, fast=False, **OPTIONS)
    except Exception as exc:  # noqa: BLE001 - compared with the fast path, which must then step aside
        return exc
    return dicom.assemble(result.pieces, data), result.facts, result.uid_map


def fast(data: bytes):
    result = scan.prepare(data, **OPTIONS)
    if result is None:
        return None
    pieces, facts, uid_map = result
    return dicom.assemble(pieces, data), facts, uid_map


def agree(data: bytes) -> bool:
    """Assert the two paths agree on data; return whether the fast path took it."""
    got = fast(data)
    if got is None:
        return False
    expected = reference(data)
    assert not isinstance(expected, Exception), f"the fast path took a file the reference refuses: {expected!r}"
    assert got[1] == expected[1]
    assert got[2] == expected[2]
    assert got[0] == expected[0]
    return True


def test_every_pydicom_test_file_agrees_and_the_plain_ones_take_the_fast_path():
    taken = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(DATA.glob("*.dcm")):  # the shipped files (get_testdata_files tries downloads)
            if agree(path.read_bytes()):
                taken.add(path.name)
    # Explicit VR little endian, native and encapsulated (JPEG, JPEG 2000, JPEG-LS, RLE), multi-frame;
    # implicit VR little endian, nested sequences of an RT plan among them.
    assert {"CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "JPEG-lossy.dcm", "SC_rgb_rle_2frame.dcm",
            "MR_small_jpeg_ls_lossless.dcm", "JPEG2000-embedded-sequence-delimiter.dcm",
            "MR_small_implicit.dcm", "rtplan.dcm"} <= taken
    assert len(taken) >= 45


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "image_dfl.dcm", "badVR.dcm"])
def test_what_the_scanner_does_not_read_goes_to_pydicom(name):
    data = sample(name).read_bytes()
    assert fast(data) is None
    result = prepare_dicom(data, force=False, **OPTIONS)  # the default path still prepares it
    assert result.facts.sop_instance_uid.startswith("2.25.")


def chinese_referral(*, undefined: bool, implicit: bool = False) -> bytes:
    """A CT slice as a Chinese hospital sends it: GB18030 text, references and private tags inside sequences."""
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    ds.SpecificCharacterSet = "GB18030"
    ds.PatientName = "张^三"
    ds.InstitutionName = "某县人民医院"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "CT001", "99LOCAL", "胸部平扫"
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = "1.3.6.1.4.1.5962.99.1.1.2"
    ref.add_new(0x00091001, "LO", "private inside an item")
    ref.ReferencedImageSequence = Sequence([Dataset()])  # nested, empty item
    ref.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.3.6.1.4.1.5962.99.1.1.3"
    ds.ProcedureCodeSequence = Sequence([code])
    ds.ReferencedImageSequence = Sequence([ref, ref.copy()])
    ds.ReferencedPerformedProcedureStepSequence = Sequence([Dataset()])  # (0008,1111): removed whole
    for keyword in ("ProcedureCodeSequence", "ReferencedImageSequence"):
        ds[keyword].is_undefined_length = undefined
        for item in ds[keyword].value:
            item.is_undefined_length_sequence_item = undefined
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=implicit, little_endian=True)
    return out.getvalue()


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit-VR", "implicit-VR"])
@pytest.mark.parametrize("undefined", [False, True], ids=["defined-lengths", "undefined-lengths"])
def test_sequences_and_chinese_text_agree_and_lose_what_identifies(undefined, implicit):
    data = chinese_referral(undefined=undefined, implicit=implicit)
    assert agree(data)
    stored, _, uid_map = fast(data)
    assert "张".encode("gb18030") not in stored
    assert "某县".encode("gb18030") not in stored
    assert "胸部平扫".encode("gb18030") in stored  # kept: a procedure's name does not identify
    assert b"private inside an item" not in stored
    assert {"1.3.6.1.4.1.5962.99.1.1.2", "1.3.6.1.4.1.5962.99.1.1.3"} <= set(uid_map)
    assert b"1.3.6.1.4.1.5962.99.1.1.2" not in stored


def test_a_series_shares_one_meta_template_and_each_file_keeps_its_own_uid():
    template = pydicom.dcmread(sample("CT_small.dcm"))
    files = []
    for i in range(3):
        ds = template.copy()
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{1000 + i * 7}"  # lengths differ: odd, even...
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    outputs = [fast(f) for f in files]
    for data in files:
        assert agree(data)
    assert len({o[1].sop_instance_uid for o in outputs}) == 3
    for stored, facts, _ in outputs:
        assert pydicom.dcmread(io.BytesIO(stored)).file_meta.MediaStorageSOPInstanceUID == facts.sop_instance_uid


def test_damaged_files_agree_or_go_to_pydicom():
    """Truncations and flipped bytes across the header: the fast path agrees with the reference or steps aside."""
    rng = random.Random(16)  # noqa: S311 - repeatable damage, not secrets
    originals = [sample("CT_small.dcm").read_bytes(), sample("JPEG2000.dcm").read_bytes(),
                 chinese_referral(undefined=True), chinese_referral(undefined=True, implicit=True),
                 sample("rtplan.dcm").read_bytes()]
    # Damage the header: up to the pixel data's element header (rtplan has none: all of it).
    header_ends = [d.rfind(b"\xe0\x7f\x10\x00") + 12 if b"\xe0\x7f\x10\x00" in d else len(d) for d in originals]
    taken = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for data, header_end in zip(originals, header_ends, strict=True):
            for cut in sorted(rng.sample(range(1, len(data)), 40)):
                agree(data[:cut])
            for _ in range(150):
                damaged = bytearray(data)
                for _ in range(rng.randint(1, 3)):
                    damaged[rng.randrange(128, header_end)] = rng.randrange(256)
                taken += agree(bytes(damaged))
    assert taken > 0  # some damage (inside values) leaves a file both paths take


def test_damaged_element_headers_agree_or_go_to_pydicom():
    """Lengths, VRs and tags changed where element and item headers stand: agree, or the fast path steps aside."""
    rng = random.Random(7)  # noqa: S311 - repeatable damage, not secrets
    originals = [chinese_referral(undefined=True), chinese_referral(undefined=True, implicit=True),
                 sample("rtplan.dcm").read_bytes(), ct_slice()]
    tags = [struct.pack("<HH", 0xFFFE, e) for e in (0xE000, 0xE00D, 0xE0DD)]
    taken = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for data in originals:
            starts: dict[int, int] = {}
            dicom.read_dataset(io.BytesIO(data), starts=starts)
            items = [i for i in range(132, len(data) - 8) if data.startswith(b"\xfe\xff", i)]
            headers = [*starts.values(), *items, *(i + 8 for i in items)]
            for _ in range(150):
                damaged = bytearray(data)
                at = rng.choice(headers)
                kind = rng.randrange(5)
                if kind == 0:  # a 4-byte length (implicit VR, long VRs, items) a little off, or undefined
                    offset = 8 if damaged[at + 4:at + 6].decode("latin-1") in dicom.LONG_HEADER_VRS else 4
                    length = int.from_bytes(damaged[at + offset:at + offset + 4], "little")
                    length = rng.choice([0xFFFFFFFF, max(0, length + rng.choice([-2, -1, 1, 2, 8]))])
                    damaged[at + offset:at + offset + 4] = length.to_bytes(4, "little")
                elif kind == 1:  # a 2-byte length a little off
                    length = int.from_bytes(damaged[at + 6:at + 8], "little") + rng.choice([-2, -1, 1, 2])
                    damaged[at + 6:at + 8] = (length % 0x10000).to_bytes(2, "little")
                elif kind == 2:  # another VR
                    damaged[at + 4:at + 6] = rng.choice([b"SQ", b"UN", b"OB", b"UT", b"US", b"UI", b"DS", b"LO"])
                elif kind == 3:  # an item or delimiter tag
                    damaged[at:at + 4] = rng.choice(tags)
                else:  # a NUL, a space or a backslash inside the value
                    damaged[min(at + rng.randrange(8, 24), len(damaged) - 1)] = rng.choice(b"\x00 \\")
                taken += agree(bytes(damaged))
    assert taken > 0


def test_the_index_values_are_not_changed_by_the_profile():
    """The scanner reads validation's and the index's values before de-identification."""
    assert not [hex(tag) for tag in scan.FACT_TAGS if deid.action_of(tag)]


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm", "examples_overlay.dcm",
                                  "test-SR.dcm", "reportsi.dcm", "waveform_ecg.dcm"])
def test_files_rewritten_in_implicit_vr_agree(name):
    """Older modalities send implicit VR little endian: the same files in that encoding."""
    ds = pydicom.dcmread(sample(name))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=True, little_endian=True)
    assert agree(out.getvalue())


@pytest.mark.parametrize(("said", "written"), [(pydicom.uid.ExplicitVRLittleEndian, True),
                                               (pydicom.uid.ImplicitVRLittleEndian, False)])
@pytest.mark.parametrize("name", ["CT_small.dcm", "rtplan.dcm"])
def test_a_dataset_in_the_other_encoding_than_its_transfer_syntax_agrees(name, said, written):
    """pydicom reads a mislabelled file in the encoding it finds: the reference prepares it, the fast path agrees."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = mislabelled(pydicom.dcmread(sample(name)), said=said, implicit=written)
        assert not isinstance(reference(data), Exception)
        agree(data)


@pytest.mark.parametrize("padded", [b" 1.2.826.0.1.3680043.8.498.12 ", b"\t1.2.826.0.1.3680043.8.498.12\t",
                                    b"1.2.826.0.1.3680043.8.498.123\n", b"\t" + b" " * 29],
                         ids=["spaces", "tabs", "newline", "blank"])
@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"])
def test_uids_with_surrounding_whitespace_agree(keyword, padded):
    """pydicom strips whitespace around each UID it reads; the scanner must derive from the same value."""
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    setattr(ds, keyword, "1.2.826.0.1.3680043.8.498.1234")  # 30 characters, as long as each padded value
    ds.RelatedGeneralSOPClassUID = ["1.2.826.0.1.3680043.8.498.55", "1.2.826.0.1.3680043.8.498.66"]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue().replace(b"1.2.826.0.1.3680043.8.498.1234", padded)
    data = data.replace(b".55\\1.", b".5 \\ 1")  # components of a multi-valued UID padded too
    taken = agree(data)
    assert taken or (keyword != "FrameOfReferenceUID" and not padded.strip())  # a blank study/SOP UID: refused
    if taken:
        uid_map = fast(data)[2]
        assert all(uid == uid.strip() for uid in uid_map)
        assert (padded.strip().decode() in uid_map) == bool(padded.strip())


# Files a review found the two paths reading differently: hand-made elements spliced into real files.

def ct_slice(*, implicit: bool = False, pixels: bool = True) -> bytes:
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    if not pixels:
        del ds.PixelData
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=implicit, little_endian=True)
    return out.getvalue()


@pytest.mark.parametrize(("tag", "vr", "value"), [
    (0x00200013, "US", b"12"),  # InstanceNumber: pydicom reads 12849, the text "12" would say 12
    (0x00200011, "UL", b"1234"),  # SeriesNumber
    (0x00280008, "US", b"1 "),  # NumberOfFrames: 8241 frames, so the reference finds the pixels short
    (0x00200032, "FD", struct.pack("<3d", 1.0, 2.0, 3.0)),  # ImagePositionPatient: numbers, not text
    (0x00080060, "US", b"CT"),  # Modality
    (0x00080018, "LO", b" 1.2.826.0.1.3680043.8.498.5 "),  # SOPInstanceUID: LO keeps the leading space
    (0x00280010, "SS", struct.pack("<h", 128)),  # Rows
    (0x00280011, "IS", b"128 "),  # Columns
    (0x00280100, "UL", struct.pack("<I", 16)),  # BitsAllocated
    (0x00280002, "OW", struct.pack("<H", 1)),  # SamplesPerPixel
], ids=["InstanceNumber-US", "SeriesNumber-UL", "NumberOfFrames-US", "ImagePosition-FD", "Modality-US",
        "SOPInstanceUID-LO", "Rows-SS", "Columns-IS", "BitsAllocated-UL", "SamplesPerPixel-OW"])
def test_index_values_in_another_vr_than_the_dictionary_agree(tag, vr, value):
    """pydicom decodes a value by the VR the file gives it; the scanner must not read it as the dictionary's."""
    agree(spliced(ct_slice(), tag, encoded(tag, vr, value)))


@pytest.mark.parametrize(("tag", "vr", "value"), [
    (0x00100010, "US", b"\x01\x00"),  # PatientName: set to the pseudonym, which US cannot hold
    (0x00100020, "FL", struct.pack("<f", 1.0)),  # PatientID: the same
    (0x00080020, "UN", b"20200101"),  # StudyDate (emptied): pydicom reads UN as the dictionary's DA
    (0x00100030, "LO", b"19700101"),  # PatientBirthDate (emptied)
    (0x00120062, "UN", b"NO"),  # PatientIdentityRemoved (set)
], ids=["PatientName-US", "PatientID-FL", "StudyDate-UN", "PatientBirthDate-LO", "PatientIdentityRemoved-UN"])
def test_emptied_and_set_elements_in_another_vr_agree(tag, vr, value):
    """The profile empties or sets these whatever their VR; the scanner must not raise, nor write them otherwise."""
    agree(spliced(ct_slice(), tag, encoded(tag, vr, value)))


ITEM, ITEM_END, SEQUENCE_END = (struct.pack("<HHI", 0xFFFE, e, 0) for e in (0xE000, 0xE00D, 0xE0DD))
UNDEFINED_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
UID = b"1.2.826.0.1.3680043.8.498.77\x00"


def referencing_item(*, implicit: bool = False) -> bytes:
    """An item of undefined length holding a ReferencedSOPInstanceUID."""
    return UNDEFINED_ITEM + encoded(0x00081155, "UI", UID, implicit=implicit) + ITEM_END


@pytest.mark.parametrize(("tag", "vr", "value"), [
    (0x00000100, "US", b"\x01\x00\x00"),  # CommandField, 3 bytes: pydicom reads group 0000 as a command set
    (0x00000002, "LO", UID),  # AffectedSOPClassUID as LO
    (0x00080000, "UI", UID),  # a group length with a UID in it: the profile replaces it
    (0x00280000, "UI", UID),
    (0x00080000, "SQ", referencing_item()),  # ... or a sequence holding one
], ids=["command-US-3-bytes", "command-LO", "group-length-UI", "group-0028-length-UI", "group-length-SQ"])
def test_group_0000_and_group_lengths_in_another_vr_agree(tag, vr, value):
    agree(spliced(ct_slice(), tag, encoded(tag, vr, value)))


def test_an_implicit_vr_group_length_of_undefined_length_agrees():
    """pydicom reads an unknown element of undefined length whose first item follows as a sequence."""
    item = referencing_item(implicit=True) + SEQUENCE_END
    agree(spliced(ct_slice(implicit=True), 0x00080000, encoded(0x00080000, "", item, implicit=True, length=0xFFFFFFFF)))


def meta_elements(data: bytes) -> dict[int, tuple[int, int, int]]:
    """(start, value offset, end) of each file meta element."""
    pos, spans = 132, {}
    while struct.unpack_from("<H", data, pos)[0] == 2:
        group, element, vr = struct.unpack_from("<HH2s", data, pos)
        header, length = (12, struct.unpack_from("<I", data, pos + 8)[0]) if vr.decode() in dicom.LONG_HEADER_VRS \
            else (8, struct.unpack_from("<H", data, pos + 6)[0])
        spans[group << 16 | element] = (pos, pos + header, pos + header + length)
        pos += header + length
    return spans


def meta_spliced(data: bytes, tag: int, raw: bytes) -> bytes:
    """data with its file meta element tag replaced by raw, and the group length made to fit."""
    start, _, end = meta_elements(data)[tag]
    data = data[:start] + raw + data[end:]
    if tag != 0x00020000:
        length = struct.unpack_from("<I", data, 140)[0] + len(raw) - (end - start)
        data = data[:140] + struct.pack("<I", length) + data[144:]
    return data


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit-VR", "implicit-VR"])
@pytest.mark.parametrize(("vr", "padded"), [
    ("UI", b" {uid}"), ("UI", b"\t{uid}"), ("UI", b"{uid}\t"), ("UI", b"{uid}\n"), ("UI", b"{uid}\xa0"),
    ("OB", b"{uid}"), ("US", b"{uid}"),
], ids=["leading-space", "leading-tab", "trailing-tab", "newline", "nbsp", "OB", "US"])
def test_a_transfer_syntax_with_whitespace_or_another_vr_agrees(implicit, vr, padded):
    """pydicom strips all whitespace around a UID (a NUL or space pads it); OB or US is no UID at all."""
    uid = (pydicom.uid.ImplicitVRLittleEndian if implicit else pydicom.uid.ExplicitVRLittleEndian).encode()
    value = padded.replace(b"{uid}", uid)
    value += b"\x00" * (len(value) % 2)
    agree(meta_spliced(ct_slice(implicit=implicit), 0x00020010, encoded(0x00020010, vr, value)))


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit-VR", "implicit-VR"])
def test_samples_per_pixel_0_counts_as_1_for_the_decoded_size(implicit):
    """The reference's size limit reads SamplesPerPixel 0 as 1: 70,000 frames of 128×128×2 pass 2 GiB."""
    data = spliced(ct_slice(implicit=implicit), 0x00280002, encoded(0x00280002, "US", b"\x00\x00", implicit=implicit))
    data = spliced(data, 0x00280008, encoded(0x00280008, "IS", b"70000 ", implicit=implicit))
    assert isinstance(reference(data), dicom.RejectedFile)
    agree(data)


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit-VR", "implicit-VR"])
@pytest.mark.parametrize("value", [b"\x80", b"\x80\x00\x00", b"\x80\x00\x80\x00\x00"],
                         ids=["1-byte", "3-bytes", "5-bytes"])
@pytest.mark.parametrize("tag", [0x00280010, 0x00280011], ids=["Rows", "Columns"])
def test_rows_and_columns_of_odd_length_agree(tag, value, implicit):
    """Without pixel data only the index reads them: pydicom cannot decode an odd number of bytes as US."""
    agree(spliced(ct_slice(implicit=implicit, pixels=False), tag, encoded(tag, "US", value, implicit=implicit)))


@pytest.mark.parametrize(("vr", "value", "implicit"), [
    ("US", b"\x01", False), ("US", b"\x01\x00\x00", False), ("SS", b"\x01", False), ("FL", b"\x00" * 3, False),
    ("UL", b"\x00\x00", False), ("US", b"\x01", True), ("US", b"\x01\x00\x00", True),
], ids=["US-1-byte", "US-3-bytes", "SS-1-byte", "FL-3-bytes", "UL-2-bytes", "implicit-1-byte", "implicit-3-bytes"])
def test_a_malformed_pixel_representation_agrees(vr, value, implicit):
    """Setting the de-identification code sequence makes pydicom decode PixelRepresentation, whatever the file."""
    tag = 0x00280103
    agree(spliced(ct_slice(implicit=implicit), tag, encoded(tag, vr, value, implicit=implicit)))


@pytest.mark.parametrize(("tag", "vr", "length"), [
    (0x00020003, "LO", None), (0x00020003, "SH", None),  # pydicom writes the new SOP Instance UID in that VR
    (0x00020000, "SL", None), (0x00020000, "US", 2), (0x00020000, "OB", None), (0x00020000, "UL", 8),
], ids=["instance-UID-LO", "instance-UID-SH", "group-length-SL", "group-length-US", "group-length-OB",
        "group-length-8-bytes"])
def test_a_meta_header_element_in_another_form_does_not_share_the_series_template(tag, vr, length):
    """The meta template is cached by the header's bytes less the two values that change per file."""
    plain = ct_slice()
    assert agree(plain)  # its template is cached now
    _, start, end = meta_elements(plain)[tag]
    value = (plain[start:end] * 2)[:length or end - start]
    agree(meta_spliced(plain, tag, encoded(tag, vr, value)))


def nested_item(*, implicit: bool) -> bytes:
    """An item of undefined length holding a sequence of undefined length: a sequence delimiter inside."""
    nested = encoded(0x00081140, "SQ", referencing_item(implicit=implicit), implicit=implicit, length=0xFFFFFFFF)
    return UNDEFINED_ITEM + nested + SEQUENCE_END + ITEM_END


@pytest.mark.parametrize(("tag", "inside"), [
    (0x00080080, False),  # InstitutionName (removed), LO
    (0x00080020, False),  # StudyDate (emptied), DA
    (0x00081032, True),  # a kept sequence whose item holds CodeValue (SH) of undefined length
], ids=["removed-LO", "emptied-DA", "SH-inside-a-kept-item"])
def test_implicit_vr_undefined_length_outside_sequences_agrees(tag, inside):
    """pydicom reads an undefined length of a non-SQ element up to the first sequence delimiter, nested or not."""
    value = nested_item(implicit=True) + SEQUENCE_END
    if inside:
        code = encoded(0x00080100, "SH", value, implicit=True, length=0xFFFFFFFF)
        value = UNDEFINED_ITEM + code + ITEM_END + SEQUENCE_END
    agree(spliced(ct_slice(implicit=True), tag, encoded(tag, "SQ", value, implicit=True, length=0xFFFFFFFF)))


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit-VR", "implicit-VR"])
@pytest.mark.parametrize("tag", [0x00081111, 0x00081032], ids=["removed", "kept"])
def test_an_item_whose_nested_sequence_runs_past_its_length_agrees(tag, implicit):
    """pydicom reads a nested sequence of undefined length to its delimiter, past its item's declared end."""
    code = encoded(0x00080100, "SH", b"AB", implicit=implicit)
    nested = encoded(0x00081140, "SQ", b"", implicit=implicit, length=0xFFFFFFFF)
    # The item claims to end right after the nested sequence's header, where that sequence's item begins.
    item = struct.pack("<HHI", 0xFFFE, 0xE000, len(code) + len(nested)) + code + nested
    value = item + referencing_item(implicit=implicit) + SEQUENCE_END
    data = spliced(ct_slice(implicit=implicit), tag, encoded(tag, "SQ", value, implicit=implicit, length=0xFFFFFFFF))
    agree(data)


def test_an_unexpected_exception_steps_aside_and_logs_only_its_type_and_line(caplog):
    """A group length of 2 bytes makes pydicom raise BytesLengthException while the meta template is made."""
    plain = ct_slice()
    _, start, _ = meta_elements(plain)[0x00020000]
    data = meta_spliced(plain, 0x00020000, encoded(0x00020000, "UL", plain[start:start + 2]))
    with caplog.at_level(logging.DEBUG, logger="app.imaging.scan"):
        assert fast(data) is None
    [record] = [r for r in caplog.records if r.name == "app.imaging.scan"]
    assert re.fullmatch(r"fast path stepped aside on BytesLengthException at scan\.py line \d+", record.getMessage())
    assert record.exc_info is None  # a traceback's messages may quote values, which may be patient data


@pytest.mark.parametrize(("tag", "value"), [
    (0x00200032, b"-83.906\x00\\-91.2000\\6.6406 "),  # ImagePositionPatient
    (0x00200037, b"1\\0\\0\\0\\1\x00\\0 "),  # ImageOrientationPatient
], ids=["position", "orientation"])
def test_a_decimal_string_with_a_nul_inside_agrees(tag, value):
    """pydicom reads a DS it cannot parse again as SH, whose values lose their trailing NULs: the slice has a place."""
    data = spliced(ct_slice(), tag, encoded(tag, "DS", value))
    assert reference(data)[1].slice_position is not None
    agree(data)


def test_an_item_delimiter_whose_length_reads_as_a_vr_agrees():
    """In explicit VR pydicom reads an element header first: a delimiter's length 'OB\\0\\0' takes 4 more bytes."""
    value = referencing_item()[:-8] + struct.pack("<HH", 0xFFFE, 0xE00D) + b"OB\x00\x00" + SEQUENCE_END
    agree(spliced(ct_slice(), 0x00081111, encoded(0x00081111, "SQ", value, length=0xFFFFFFFF)))  # removed


@pytest.mark.parametrize("spacing", [["inf", "inf"], ["nan", "0.5"], ["0", "0.5"], ["-0.5", "0.5"]],
                         ids=["inf", "nan", "zero", "negative"])
def test_a_pixel_spacing_that_is_no_size_is_left_out_on_both_paths(spacing):
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that inf and nan are no valid DS
        ds.PixelSpacing = spacing
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        assert agree(out.getvalue())
        assert reference(out.getvalue())[1].pixel_spacing is None


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit-VR", "implicit-VR"])
def test_the_file_meta_loses_the_senders_and_private_information_on_both_paths(implicit):
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    meta = ds.file_meta
    meta.SourceApplicationEntityTitle = "ZHANGSAN_PC"
    meta.SendingApplicationEntityTitle = "CT_ROOM_3"
    meta.PrivateInformationCreatorUID = "1.2.826.0.1.3680043.8.498.99"
    meta.PrivateInformation = b"MRN 123456 ZHANG SAN"
    if implicit:
        meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=implicit, little_endian=True)
    data = out.getvalue()
    assert agree(data)  # the fast path takes it, and gives what the reference gives
    stored = reference(data)[0]
    for text in (b"ZHANGSAN_PC", b"CT_ROOM_3", b"1.2.826.0.1.3680043.8.498.99", b"ZHANG SAN"):
        assert text not in stored
    assert pydicom.dcmread(io.BytesIO(stored)).file_meta.TransferSyntaxUID == meta.TransferSyntaxUID


ORIGINAL = "1.2.826.0.1.3680043.8.498.4242"


def _item(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body


@pytest.mark.parametrize(("tag", "vr", "value"), [
    (0x00200052, "LO", ORIGINAL.encode()),  # FrameOfReferenceUID
    (0x0020000D, "LO", ORIGINAL.encode()),  # StudyInstanceUID: the index's study too
    # ContributingEquipmentSequence as UN: its item (implicit VR) names the patient and an operator.
    (0x0018A001, "UN", _item(encoded(0x00100010, "PN", b"ZHANG^SAN ", implicit=True),
                             encoded(0x00081070, "PN", b"LI^SI ", implicit=True))),
    # ReferencedImageSequence: the referenced UID written as UN inside a proper sequence.
    (0x00081140, "SQ", _item(encoded(0x00081155, "UN", ORIGINAL.encode()))),
], ids=["FrameOfReferenceUID-LO", "StudyInstanceUID-LO", "ContributingEquipmentSequence-UN",
        "ReferencedSOPInstanceUID-UN"])
def test_sequences_and_uids_in_another_vr_are_still_cleaned(tag, vr, value):
    """The profile goes by what an element is, not by the VR the file claims for it."""
    data = spliced(ct_slice(), tag, encoded(tag, vr, value))
    agree(data)
    stored, facts, uid_map = reference(data)
    for text in (ORIGINAL.encode(), b"ZHANG^SAN", b"LI^SI"):
        assert text not in stored
    assert ORIGINAL not in (facts.study_uid, facts.series_uid, facts.sop_instance_uid)


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit-VR", "implicit-VR"])
def test_attributes_beyond_the_table_that_identify_go_on_both_paths(implicit):
    """Patient telecom, camera and GPS, overlays, the icon, observers, verifiers and dates, nested ones too."""
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    ds.PatientTelecomInformation = "TEL 13800138000"
    ds.add_new(0x0016004F, "UT", "CAMERA OWNER ZHANG")  # digital camera group
    ds.add_new(0x00160076, "DS", "123.45")  # GPS altitude
    ds.DateOfSecondaryCapture = "19720304"
    ds.StationAETitle = "ZHANG_WS"
    observer = Dataset()
    observer.VerifyingObserverName = "LI^SI"
    observer.VerifyingOrganization = "WARD 7 ORG"
    ds.VerifyingObserverSequence = Sequence([observer])
    drug = Dataset()
    drug.RadiopharmaceuticalStartDateTime = "20240102030405"
    drug.Radiopharmaceutical = "FDG"
    ds.RadiopharmaceuticalInformationSequence = Sequence([drug])
    icon = Dataset()
    icon.Rows = icon.Columns = 1
    icon.BitsAllocated = 8
    icon.PixelData = b"ICON"
    ds.IconImageSequence = Sequence([icon])
    ds.add_new(0x60000010, "US", 2)  # an overlay: rows ...
    ds.add_new(0x60003000, "OW", b"OVERLAYBITS")  # ... and its bits, which may draw a name
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=implicit, little_endian=True)
    data = out.getvalue()
    agree(data)
    stored = reference(data)[0]
    for text in (b"13800138000", b"CAMERA OWNER", b"123.45", b"19720304", b"ZHANG_WS", b"LI^SI", b"WARD 7",
                 b"20240102030405", b"ICON", b"OVERLAYBITS"):
        assert text not in stored, text
    kept = pydicom.dcmread(io.BytesIO(stored))
    assert kept.RadiopharmaceuticalInformationSequence[0].Radiopharmaceutical == "FDG"  # what is not identifying stays
    assert kept.pixel_array.shape == (128, 128)
