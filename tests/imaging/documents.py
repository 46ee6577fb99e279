"""Real PDF documents for the tests, made with fpdf2 (the app's own PDF writer)."""

from fpdf import FPDF

XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>{name}</dc:creator>'
       '</rdf:Description></rdf:RDF></x:xmpmeta>')


def report_pdf(*, text: str = "Hemoglobin 120 g/L", pages: int = 1, patient: str | None = None) -> bytes:
    """A lab report. With ``patient``, the name is also where hospital systems put it beside the pages:
    the document information (title, subject), XMP metadata and an attached file."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for i in range(pages):
        pdf.add_page()
        pdf.cell(text=f"{text} ({i + 1}/{pages})")
    if patient:
        pdf.set_title(f"{patient} lab report")
        pdf.set_subject(f"patient {patient}")
        pdf.set_author("Lab of a county hospital")
        pdf.set_xmp_metadata(XMP.format(name=patient))
        pdf.embed_file(basename="id.txt", bytes=f"{patient} ID 440101".encode())
    return bytes(pdf.output())
