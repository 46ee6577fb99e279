"""De-identification per DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

Actions (Table E.1-1): X remove, Z replace with an empty (or dummy) value, D replace with a dummy
value, U replace the UID consistently. Private tags are removed; every UID that is not a
well-known DICOM UID is replaced, wherever it stands (sequences included), so references stay
consistent; pixel data is never touched. ``PatientIdentityRemoved`` becomes YES and the method
is recorded with code 113100 (DCM, "Basic Application Confidentiality Profile").
"""

import hashlib
import hmac
from functools import lru_cache

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

# (group, element): action. Attributes of Table E.1-1 a referral's images actually carry.
_ACTIONS_HEX = {
    # Identifying dates and times of the visit and the instance
    "00080012": "X", "00080013": "X", "00080020": "Z", "00080021": "X", "00080022": "X",
    "00080023": "Z", "00080024": "X", "00080025": "X", "0008002A": "X", "00080030": "Z",
    "00080031": "X", "00080032": "X", "00080033": "Z", "00080034": "X", "00080035": "X",
    "00080201": "X",
    # Accession, institution, people and places
    "00080050": "Z", "00080080": "X", "00080081": "X", "00080082": "X", "00080090": "Z",
    "00080092": "X", "00080094": "X", "00080096": "X", "00081010": "X", "00081030": "X",
    "0008103E": "X", "00081040": "X", "00081048": "X", "00081049": "X", "00081050": "X",
    "00081052": "X", "00081060": "X", "00081062": "X", "00081070": "X", "00081072": "X",
    "00081080": "X", "00081084": "X", "00081110": "X", "00081111": "X", "00081120": "X",
    "00082111": "X", "00084000": "X", "0008009C": "Z", "0008009D": "X",
    # Patient
    "00100010": "Z", "00100020": "Z", "00100021": "X", "00100022": "X", "00100024": "X",
    "00100030": "Z", "00100032": "X", "00100040": "Z", "00100050": "X", "00100101": "X",
    "00100102": "X", "00101000": "X", "00101001": "X", "00101002": "X", "00101005": "X",
    "00101010": "X", "00101020": "X", "00101030": "X", "00101040": "X", "00101050": "X",
    "00101060": "X", "00101080": "X", "00101081": "X", "00101090": "X", "00102000": "X",
    "00102110": "X", "00102150": "X", "00102152": "X", "00102154": "X", "00102160": "X",
    "00102180": "X", "001021A0": "X", "001021B0": "X", "001021C0": "X", "001021D0": "X",
    "001021F0": "X", "00102203": "X", "00102297": "X", "00102299": "X", "00104000": "X",
    # Device and acquisition identifiers and free text
    "00181000": "X", "00181004": "X", "00181005": "X", "00181007": "X", "00181008": "X",
    "00181030": "X", "00181400": "X", "00184000": "X", "0018700A": "X", "00189424": "X",
    "0018A003": "X",
    # Study, image and frame free text
    "00200010": "Z", "00204000": "X", "00209158": "X",
    # Requests, visits, procedure steps
    "00321032": "X", "00321033": "X", "00321060": "X", "00321064": "X", "00321070": "X",
    "00324000": "X", "00320012": "X", "00380010": "X", "00380014": "X", "00380060": "X",
    "00380062": "X", "00380300": "X", "00380400": "X", "00380500": "X", "00384000": "X",
    "00400001": "X", "00400002": "X", "00400003": "X", "00400004": "X", "00400005": "X",
    "00400006": "X", "00400007": "X", "00400009": "X", "00400010": "X", "00400011": "X",
    "00400100": "X", "00400241": "X", "00400242": "X", "00400243": "X", "00400244": "X",
    "00400245": "X", "00400250": "X", "00400251": "X", "00400253": "X", "00400254": "X",
    "00400275": "X", "00400280": "X", "00400555": "X", "00401001": "X", "00401010": "X",
    "00401400": "X", "00402016": "X", "00402017": "X", "00402400": "X", "0040A123": "X",
    "0040A730": "X", "0040A078": "X",
    # Content creators, reviewers, signatures, original values and padding
    "00700084": "Z", "00701060": "X", "04000100": "X", "04000402": "X", "04000403": "X",
    "04000404": "X", "04000561": "X", "FFFAFFFA": "X", "FFFCFFFC": "X",
    "40080114": "X", "4008010C": "X", "4008011A": "X", "40080119": "X",
}
ACTIONS: dict[int, str] = {int(k, 16): v for k, v in _ACTIONS_HEX.items()}

# Groups whose every element is removed: curve data (50xx); overlays (60xx) below.
_CURVE_GROUPS = range(0x5000, 0x5100, 2)

PIXEL_DATA = Tag(0x7FE0, 0x0010)
DICOM_ROOT = "1.2.840.10008."  # well-known UIDs (SOP classes, transfer syntaxes) are not identifying
METHOD = "PS3.15 E.1.1 Basic Application Confidentiality Profile"
METHOD_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")


def derive_uid(secret: str, original: str) -> str:
    """Map a UID to a new one, the same for the same case secret: 2.25 plus 128 hashed bits."""
    digest = hmac.new(secret.encode(), original.encode(), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def deidentify(ds: Dataset, *, secret: str, pseudonym: str, changed: set[int] | None = None) -> dict[str, str]:
    """De-identify ds in place; return the map of original → new UIDs it used.

    If ``changed`` is given, it receives the top-level tags whose value was set (removed tags
    are simply gone): every other element keeps its bytes, so a writer may copy them through.
    """
    uid_map: dict[str, str] = {}

    def new_uid(value: str) -> str:
        if value not in uid_map:
            uid_map[value] = derive_uid(secret, value)
        return uid_map[value]

    touched = changed if changed is not None else set()
    _clean(ds, new_uid, touched)  # private tags go too
    # The 128-byte preamble may hold application data (e.g. a TIFF header); blank it.
    ds.preamble = b"\x00" * 128
    # Keep the study groupable in a viewer without revealing anything about the patient.
    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = METHOD_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    touched.update(SET_TAGS)
    if getattr(ds, "file_meta", None) is not None:
        clean_file_meta(ds.file_meta)
        if "SOPInstanceUID" in ds:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return uid_map


# File meta elements that name the systems the file passed through (AE titles, addresses) or
# carry a vendor's private data (PS3.10 7.1); what is left says how to read the file.
FILE_META_DROP = (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028, 0x00020100, 0x00020102)


def clean_file_meta(meta: Dataset) -> None:
    """Remove FILE_META_DROP from a file meta dataset, in place (both preparation paths)."""
    for tag in FILE_META_DROP:
        if tag in meta:
            del meta[tag]


def _known_vr(tag: int) -> str | None:
    """The dictionary's VR of a tag, or None if the dictionary does not know it."""
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def _vr(ds: Dataset, tag) -> str | None:
    """The VR of an element without decoding its value (implicit VR files: from the dictionary)."""
    vr = ds.get_item(tag).VR
    return _known_vr(tag) if vr is None else vr


@lru_cache(maxsize=4096)
def mismatched_vr(tag: int, vr: str | None) -> str | None:
    """The dictionary's VR of a public sequence or UID element written in another VR, else None.

    Such an element still holds a sequence or a UID: the profile removes the one (its items
    cannot be read safely) and remaps the other, whatever VR the file gave it.
    """
    if tag >> 16 & 1 or vr is None:
        return None
    known = _known_vr(tag)
    return known if known in ("SQ", "UI") and vr != known else None


# Beyond the table, whole kinds of attribute go (PS3.15 E.1-1 lists them one by one, and grows):
# every other patient attribute (group 0010: telecom, addresses, history...), the digital
# camera's (group 0016: owner, GPS), overlays (60xx: their bitmaps can hold burned-in text), the
# icon image (a thumbnail of the image as it was), and by their dictionary VR every person name
# and every date and time not in the table (observers, verifiers, capture and acquisition dates).
_GROUPS_REMOVED = (0x0010, 0x0016)
_VRS_REMOVED = ("PN", "DA", "DT", "TM")
_OTHER_REMOVED = frozenset({
    0x00880200,  # Icon Image Sequence
    0x00080055,  # Station AE Title
    0x0040A027,  # Verifying Organization
    0x0040A073,  # Verifying Observer Sequence
})


@lru_cache(maxsize=65536)
def action_of(tag: int) -> str | None:
    """The profile's action for a tag (a plain int): "X", "Z", "D", or None to keep it (UIDs aside)."""
    group = tag >> 16
    if group & 1:
        return "X"  # private
    action = ACTIONS.get(tag)
    if action is not None:
        return action
    if group in _CURVE_GROUPS or 0x6000 <= group <= 0x601E or group in _GROUPS_REMOVED:
        return "X"
    if tag in _OTHER_REMOVED or _known_vr(tag) in _VRS_REMOVED:
        return "X"
    return None


_SET_KEYWORDS = ("PatientName", "PatientID", "PatientIdentityRemoved", "DeidentificationMethod",
                 "DeidentificationMethodCodeSequence")
SET_TAGS = frozenset(int(Tag(keyword)) for keyword in _SET_KEYWORDS)  # the elements deidentify always sets


def replace_uids(values: list[str], new_uid) -> list[str]:
    """A UI element's values with every UID outside the DICOM root replaced (new_uid maps one)."""
    return [v if v.startswith(DICOM_ROOT) else new_uid(v) for v in values]


def clean_items(elem, new_uid) -> None:
    """Apply the profile inside every item of a sequence element (what deidentify does to a kept sequence)."""
    for item in elem.value:
        _clean(item, new_uid, set())


def _clean(ds: Dataset, new_uid, touched: set[int]) -> None:
    # Walk tags rather than elements: values are decoded only where they are changed, so the
    # pixel data and the many untouched attributes stay raw (this is most of ingest's speed).
    for tag in list(ds.keys()):
        if tag == PIXEL_DATA:
            continue
        action = action_of(int(tag))
        if action == "X":
            del ds[tag]
            continue
        vr = _vr(ds, tag)
        known = mismatched_vr(int(tag), vr)
        if action in ("Z", "D"):
            ds[tag].value = Sequence() if vr == "SQ" else ""
        elif known == "SQ":
            del ds[tag]  # a sequence in another VR (UN): its items cannot be cleaned one by one
            continue
        elif vr == "SQ":
            clean_items(ds[tag], new_uid)
        elif (vr == "UI" or known == "UI") and ds[tag].value:
            elem = ds[tag]
            values = elem.value if elem.VM > 1 else [elem.value]
            replaced = replace_uids([str(v) for v in values], new_uid)
            elem.value = replaced if elem.VM > 1 else replaced[0]
        else:
            continue
        touched.add(int(tag))
