"""The signed opinion as a PDF, the document a county hospital files in its records.

Chinese text needs a CJK font embedded in the PDF: Noto Sans CJK comes from a PyPI package
(installed with the app); only the glyphs used are embedded, so a report stays small.
"""

from functools import lru_cache
from pathlib import Path

from fpdf import FPDF

from app.accounts.specialties import specialty_names
from app.cases.models import Case, Opinion
from app.core.time import isoformat

SEX = {"female": "女", "male": "男", "other": "其他", "unknown": "未知"}
URGENCY = {"routine": "常规", "urgent": "加急", "emergency": "急诊"}


@lru_cache(maxsize=1)
def font_path() -> str:
    """Return the path of the CJK font file shipped by the font package."""
    import cvttf_NotoSansCJK_Regular as font_package

    folder = Path(font_package.__file__).parent
    return str(next(p for p in folder.iterdir() if p.suffix.lower() in (".otf", ".ttf")))


class _Doc(FPDF):
    def __init__(self, footer_text: str):
        super().__init__(format="A4")
        self.footer_text = footer_text
        self.add_font("cjk", fname=font_path())
        self.set_auto_page_break(auto=True, margin=18)

    def footer(self):
        self.set_y(-13)
        self.set_font("cjk", size=7)
        self.set_text_color(110)
        self.cell(0, 5, f"{self.footer_text}    第 {self.page_no()} 页 / Page {self.page_no()}", align="C")


def render(case: Case, opinion: Opinion, versions: list[Opinion]) -> bytes:
    """Build the PDF of a signed opinion version."""
    c = opinion.content
    doc = _Doc(f"会诊 Huizhen · 病例 #{case.id} · 版本 v{opinion.version} · SHA-256 {opinion.content_sha256[:16]}…")
    doc.add_page()
    doc.set_font("cjk", size=18)
    doc.cell(0, 10, "远程会诊意见书", new_x="LMARGIN", new_y="NEXT", align="C")
    doc.set_font("cjk", size=10)
    doc.cell(0, 6, "Remote Consultation Opinion", new_x="LMARGIN", new_y="NEXT", align="C")
    doc.ln(4)

    def section(title: str, text: str | None) -> None:
        if not text:
            return
        doc.set_font("cjk", size=12)
        doc.set_fill_color(232, 240, 251)
        doc.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT", fill=True)
        doc.set_font("cjk", size=10.5)
        doc.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        doc.ln(2)

    owner, consultant = case.owner, opinion.author
    patient = f"{SEX.get(case.patient_sex, case.patient_sex)}，{case.patient_age} 岁" if case.patient_age is not None \
        else SEX.get(case.patient_sex, case.patient_sex)
    section("病例 Case", "\n".join([
        f"病例号：#{case.id}    紧急程度：{URGENCY.get(case.urgency, case.urgency)}",
        f"标题：{case.title}",
        f"患者：{patient}",
        f"申请医生：{owner.name}（{owner.title}，{owner.institution.name}）",
        f"会诊专家：{consultant.name}（{consultant.title}，{consultant.institution.name}）",
    ]))
    section("会诊问题 Clinical question", case.clinical_question)
    section("病情摘要 Summary", case.summary)
    section("诊断意见 Diagnosis", c.get("diagnosis"))
    if c.get("differential"):
        section("鉴别诊断 Differential", "\n".join(f"{i}. {d}" for i, d in enumerate(c["differential"], 1)))
    section("处理建议 Recommendations", c.get("recommendations"))
    section("随访 Follow-up", c.get("follow_up"))
    if c.get("contributions"):
        section("多学科意见 Disciplines", "\n\n".join(
            f"【{specialty_names(x['discipline'])['zh']}】{x['summary']}" for x in c["contributions"]))
    if c.get("image_refs"):
        section("关键图像 Key images", "\n".join(
            f"- 序列 {r.get('series_uid') or '-'}，图像 {r.get('sop_instance_uid') or '-'}"
            f"{'，帧 ' + str(r['frame']) if r.get('frame') else ''}{'：' + r['note'] if r.get('note') else ''}"
            for r in c["image_refs"]))
    history = [v for v in versions if v.version <= opinion.version]
    if opinion.amendment_reason or len(history) > 1:
        section("修订记录 Amendments", "\n".join(
            f"v{v.version}  {isoformat(v.signed_at)}  {v.amendment_reason or '首次签发 first signature'}"
            for v in history))
    section("签名 Signature", "\n".join([
        f"签发人：{consultant.name}    签发时间（UTC）：{isoformat(opinion.signed_at)}",
        f"内容摘要 SHA-256：{opinion.content_sha256}",
        "本意见基于所提供的资料，仅供临床参考。This opinion is based on the material provided.",
    ]))
    return bytes(doc.output())
