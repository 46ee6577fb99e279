"""The DICOM listener: a pynetdicom Storage SCP (and Verification) whose called AE title picks the case.

pynetdicom runs each association in its own thread; every handler enters the Flask app context,
so it has its own database session, exactly like a request.
"""

import logging
import threading

from flask import Flask
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, evt
from pynetdicom import _config as pynetdicom_config
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import Verification

from app.dicomnet import service

log = logging.getLogger(__name__)
# pynetdicom's INFO/DEBUG lines can carry dataset contents; patient identifiers never reach our logs.
logging.getLogger("pynetdicom").setLevel(logging.WARNING)

# Larger PDUs than the 16 KiB default mean fewer round trips per image; senders may use less.
MAX_PDU = 1024 * 1024
REJECTED_PERMANENT, SERVICE_USER = 0x01, 0x01


class StorageSCP:
    """A C-STORE/C-ECHO listener that ingests what it receives into the case its called AE title names."""

    def __init__(self, app: Flask):
        self.app = app
        self.host = app.config["DICOM_HOST"]
        self.port = int(app.config["DICOM_PORT"])
        self._sessions: dict[int, service.Received] = {}
        self._lock = threading.Lock()
        self._server = None
        # Each C-STORE's data set is written to a temporary file as it arrives (removed after the
        # handler) instead of gathered in memory: ten associations of any size cannot exhaust it. A
        # process-wide switch of pynetdicom's; this listener is its only user here. The file is bounded
        # as it grows (_on_pdu) and removed if the association ends before it is complete (_on_close).
        pynetdicom_config.STORE_RECV_CHUNKED_DATASET = True
        self.ae = AE(ae_title="HUIZHEN")
        self.ae.maximum_pdu_size = MAX_PDU
        # Called AE titles are checked against the cases in _on_requested, not against ours.
        self.ae.require_called_aet = False
        self.ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
        # Every storage SOP class, every transfer syntax (native, deflated, JPEG, JPEG-LS, JPEG 2000,
        # RLE...): the bytes are stored as sent, pixel data untouched.
        for context in StoragePresentationContexts:
            self.ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self.handlers = [(evt.EVT_REQUESTED, self._on_requested), (evt.EVT_C_STORE, self._on_store),
                         (evt.EVT_PDU_RECV, self._on_pdu), (evt.EVT_CONN_CLOSE, self._on_close)]

    def start(self, *, block: bool = False):
        """Listen on DICOM_HOST:DICOM_PORT; with block=True serve until interrupted."""
        self._server = self.ae.start_server((self.host, self.port), block=block, evt_handlers=self.handlers)
        if not block:
            self.port = self._server.server_address[1]
        return self

    def stop(self) -> None:
        """Stop listening and close the open associations."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_requested(self, event) -> None:
        request = event.assoc.requestor.primitive
        with self.app.app_context():
            admission = service.admit(called_ae=request.called_ae_title, calling_ae=request.calling_ae_title)
            max_bytes = self.app.config["MAX_CONTENT_LENGTH"]
        if admission.case_id is None:
            event.assoc.acse.send_reject(REJECTED_PERMANENT, SERVICE_USER, admission.reject_diagnostic)
            event.assoc.kill()
            return
        with self._lock:
            self._sessions[id(event.assoc)] = service.Received(
                case_id=admission.case_id, holder_id=admission.holder_id,
                calling_ae=request.calling_ae_title.strip(), max_bytes=max_bytes)

    def _on_pdu(self, event) -> None:
        """Count the data set arriving (in the thread that writes it to disk): one larger than an upload may
        be ends the association, A-ABORT, before more of it is written (DIMSE cannot refuse a message half-way)."""
        if not isinstance(event.pdu, P_DATA_TF):
            return
        session = self._sessions.get(id(event.assoc))
        if session is None:
            return
        for item in event.pdu.presentation_data_value_items:
            fragment = item.presentation_data_value or b"\x00"
            if session.arrive(command=bool(fragment[0] & 1), size=len(fragment) - 1):
                log.warning("DICOM association from %s aborted: an instance larger than %d MB",
                            session.calling_ae, session.max_bytes // (1024 * 1024))
                event.assoc.abort()
                return

    def _on_store(self, event) -> Dataset:
        answer = Dataset()
        session = self._sessions.get(id(event.assoc))
        if session is None:  # the association ended (aborted) while this instance waited its turn: not taken
            answer.Status = service.OUT_OF_RESOURCES
            return answer
        name = f"c-store-{session.received + 1}"  # never the sender's UIDs: they identify the patient
        try:
            path = event.dataset_path  # the instance as a DICOM file, with the file meta of its context
            with self.app.app_context(), path.open("rb") as stream:
                status, reason = service.receive(session=session, stream=stream, size=path.stat().st_size,
                                                 name=name)
        except Exception as exc:  # noqa: BLE001 - pynetdicom removes the instance's file only after a return
            # The type only: a message could quote the instance's values.
            log.error("C-STORE could not be handled: %s", type(exc).__name__)
            status, reason = service.PROCESSING_FAILURE, "could not be processed"
            session.reasons[reason] += 1
        answer.Status = status
        if reason:
            answer.ErrorComment = reason[:64]  # LO: at most 64 characters
        return answer

    def _on_close(self, event) -> None:
        _remove_partial_instance(event.assoc)
        with self._lock:
            session = self._sessions.pop(id(event.assoc), None)
        if session is None or not session.received:
            return
        with self.app.app_context():
            try:
                service.record_summary(session=session)
            except Exception:  # the images are stored; a lost summary must not crash the listener
                log.exception("could not record the summary of a DICOM association")


def _remove_partial_instance(assoc) -> None:
    """Remove the temporary file of an instance still arriving when the association ended (aborted, dropped):
    pynetdicom removes an instance's file only after its C-STORE handler ran, which this one never will."""
    message = getattr(assoc.dimse, "message", None)
    partial, path = getattr(message, "_data_set_file", None), getattr(message, "_data_set_path", None)
    if partial is None or path is None:
        return
    partial.close()
    path.unlink(missing_ok=True)


def start_in_background(app: Flask) -> StorageSCP | None:
    """Start the listener next to the web server; a port already taken is logged, not fatal."""
    try:
        scp = StorageSCP(app).start()
    except OSError as exc:
        log.warning("DICOM listener not started on %s:%s: %s", app.config["DICOM_HOST"], app.config["DICOM_PORT"], exc)
        return None
    log.info("DICOM listener on %s:%s", scp.host, scp.port)
    return scp
