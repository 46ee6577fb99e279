"""The monthly report as a PDF, in Chinese, with the CJK font of the signed opinions.

The text goes into the PDF through fpdf2's cells and tables, which place a string as it is (no
markup is parsed, ``markdown`` stays off), so names entered by users cannot turn into layout. The
trend figure is vector graphics drawn with fpdf2's own path operators — lines, dots and axis
labels — so it stays sharp when printed and needs no browser.
"""

from fpdf import FPDF
from fpdf.fonts import FontFace

from app.cases.opinion_pdf import font_path
from app.metrics.dashboard import ANONYMOUS
from app.metrics.definitions import HIGHER, LOWER, Metric

KINDS = {"consortium": "医联体", "department": "科室", "doctor_group": "医师集团"}
PEERS = {"consortium": "医联体内其他成员机构", "pool": "本组其他医生", "members": "其他成员",
         "level": "同级医院", "region": "同地区医院", "specialty": "同专科医生", "institution": "同院医生"}
UNITS = {"cases": "例", "hours": "小时", "%": "%", "score": "分"}
VERDICTS = {"better": "优于同行", "no_different": "与同行无差异", "worse": "差于同行"}
OPPORTUNITY_UNITS = {"cases/year": "例/年", "case-hours/year": "例·小时/年"}
SUPPRESSED = "样本不足"
ANONYMOUS_ZH = "一位匿名同行"  # as the dashboard page shows ANONYMOUS
NONE = "–"

BLUE, GREY, LIGHT, HEAD = (51, 102, 204), (110, 110, 110), (215, 215, 215), (232, 240, 251)
MARGIN = 12
FOOTER_NAME = 40  # characters of the org's name in the one-line footer (the title shows it whole)


def month_zh(month: str) -> str:
    """``2025-01`` as ``2025年1月``."""
    return f"{int(month[:4])}年{int(month[5:])}月"


def fmt(value: float | None, unit: str) -> str:
    """A figure with its unit, as the dashboard page shows it (– when there is none)."""
    if value is None:
        return NONE
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "hours":
        return f"{value:.1f} 小时"
    if unit == "cases":
        return f"{value:g}"
    return f"{value:.2f}"


def fmt_delta(value: float | None, unit: str) -> str:
    """A difference between two figures: percentage points for rates, signed."""
    if value is None:
        return NONE
    sign = "+" if value > 0 else ""
    if unit == "%":
        return f"{sign}{value:.1f} 个百分点"
    if unit == "hours":
        return f"{sign}{value:.1f} 小时"
    return f"{sign}{value:g}" if unit == "cases" else f"{sign}{value:.2f}"


def _direction(metric: Metric, change: float | None) -> str:
    if change is None or change == 0 or metric.direction not in (HIGHER, LOWER):
        return ""
    return "（改善）" if (change > 0) == (metric.direction == HIGHER) else "（变差）"


def _shown(mv: dict, unit: str) -> str:
    return SUPPRESSED if mv.get("suppressed") else fmt(mv.get("value"), unit)


class _Doc(FPDF):
    def __init__(self, footer_text: str):
        super().__init__(format="A4")
        self.footer_text = footer_text
        self.add_font("cjk", fname=font_path())
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(auto=True, margin=16)

    def footer(self):
        self.set_y(-12)
        self.set_font("cjk", size=7)
        self.set_text_color(*GREY)
        self.cell(0, 5, f"{self.footer_text}    第 {self.page_no()} 页", align="C")
        self.set_text_color(0)

    def heading(self, text: str) -> None:
        if self.will_page_break(30):
            self.add_page()
        self.ln(3)
        self.set_font("cjk", size=13)
        self.set_fill_color(*HEAD)
        self.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT", fill=True)
        self.ln(2)
        self.set_font("cjk", size=9)

    def note(self, text: str, size: float = 8.5) -> None:
        self.set_font("cjk", size=size)
        self.set_text_color(*GREY)
        self.multi_cell(0, 4.6, text, align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(0)
        self.set_font("cjk", size=9)

    def grid(self, header: list[str], rows: list[list[str]], widths: tuple[float, ...]) -> None:
        """A table with a shaded header row, repeated on each page it runs onto."""
        self.set_font("cjk", size=8.5)
        with self.table(col_widths=widths, line_height=5.2, text_align="CENTER", width=self.epw,
                        headings_style=FontFace(emphasis="", fill_color=HEAD), borders_layout="HORIZONTAL_LINES",
                        padding=0.8) as table:
            for row in [header, *rows]:
                cells = table.row()
                for text in row:
                    cells.cell(text)
        self.ln(2)


def _key_figures(doc: _Doc, report: dict) -> None:
    doc.heading(f"一、{month_zh(report['month'])}关键指标")
    rows = []
    for item, metric in zip(report["key_figures"], report["metrics"], strict=True):
        rows.append([metric.zh, _shown(item, metric.unit), str(item["n"]), fmt(item["previous"], metric.unit),
                     fmt_delta(item["change"], metric.unit) + _direction(metric, item["change"])])
    doc.grid(["指标", "本月", "样本数 n", f"上月（{month_zh(report['previous_month'])}）", "变化"], rows,
             (34, 20, 14, 24, 28))
    doc.note("“样本不足”：样本数低于该指标的最少样本数，不予显示；上月“–”：无数据或样本不足。")


def _members(doc: _Doc, report: dict) -> None:
    institutions = report["level"] == "institution"
    doc.heading("二、成员机构指标与同行对比" if institutions else "二、成员医生指标与同行对比")
    doc.note(f"同行组：{PEERS.get(report['peers'], report['peers'])}。同行 P25/P50/P75 为同行本月数值的四分位数；"
             "结论以本值的 95% 置信区间是否包含同行中位数判断（率用 Wilson 区间，中位数用顺序统计量区间，"
             "均值用 ±1.96 标准误）。")
    key = report["member_key"]
    if not report["members"]:
        doc.note("本组织暂无成员。")
    for row in report["members"]:
        if doc.will_page_break(30):
            doc.add_page()
        doc.set_font("cjk", size=10.5)
        doc.multi_cell(0, 6, row[key]["name"], align="L", new_x="LMARGIN", new_y="NEXT")
        lines = []
        for mv, metric in zip(row["metrics"], report["metrics"], strict=True):
            peer = mv.get("peer") or {}
            percentile = peer.get("percentile")
            lines.append([metric.zh, _shown(mv, metric.unit), str(mv["n"]), fmt(peer.get("p25"), metric.unit),
                          fmt(peer.get("p50"), metric.unit), fmt(peer.get("p75"), metric.unit),
                          NONE if percentile is None else str(percentile), VERDICTS.get(mv.get("verdict"), NONE)])
        doc.grid(["指标", "本值", "n", "同行 P25", "同行 P50", "同行 P75", "百分位", "结论"], lines,
                 (30, 17, 9, 16, 16, 16, 11, 21))


def _gaps(doc: _Doc, report: dict) -> None:
    doc.heading("三、差距分析（按改进空间排序）")
    if not report["gaps"]:
        doc.note("本月没有低于同行中位数且可计算改进空间的指标。")
        return
    doc.note("差距：与同行中位数之差；改进空间：差距乘以年工作量（例如每年可多按时答复的病例数）。"
             "向谁学习：该指标表现最好的同行（未同意具名的成员显示为匿名同行）。")
    key = report["member_key"]
    by_code = {m.code: m for m in report["metrics"]}
    rows = []
    for g in report["gaps"]:
        metric = by_code[g["code"]]
        best = ANONYMOUS_ZH if g["best_peer"] == ANONYMOUS else g["best_peer"]
        rows.append([g[key]["name"], metric.zh, fmt(g["value"], metric.unit), fmt(g["peer_p50"], metric.unit),
                     fmt_delta(g["gap"], metric.unit),
                     f"{g['opportunity']:g} {OPPORTUNITY_UNITS.get(g['opportunity_unit'], '')}", best])
    doc.grid(["成员", "指标", "本值", "同行中位数", "差距", "改进空间", "向谁学习"], rows, (30, 26, 15, 17, 20, 22, 28))


def _axis_label(value: float, unit: str) -> str:
    return f"{value:.0f}" if unit in ("%", "cases") or abs(value) >= 100 else f"{value:.1f}"


def trend_chart(doc: _Doc, *, x: float, y: float, w: float, h: float, metric: Metric, months: list[str],
                values: list[float | None]) -> None:
    """Draw one metric's monthly line (gaps where a month is suppressed or empty) in a w × h box."""
    doc.set_font("cjk", size=7.5)
    doc.set_xy(x, y)
    doc.cell(w, 4, f"{metric.zh}（{UNITS.get(metric.unit, metric.unit)}）")
    left, top, width, height = x + 9, y + 6, w - 11, h - 12
    doc.set_draw_color(*LIGHT)
    doc.set_line_width(0.2)
    doc.rect(left, top, width, height)
    doc.set_font("cjk", size=5.5)
    doc.set_text_color(*GREY)
    step = width / max(len(months) - 1, 1)
    for i, month in enumerate(months):
        doc.set_xy(left + i * step - 3, top + height + 0.5)
        doc.cell(6, 3, str(int(month[5:])), align="C")
    known = [v for v in values if v is not None]
    if not known:
        doc.set_xy(left, top + height / 2 - 2)
        doc.cell(width, 4, "无数据或样本不足", align="C")
        doc.set_text_color(0)
        return
    lo, hi = min(known), max(known)
    if metric.unit in ("cases", "%"):
        lo = min(lo, 0.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1

    def at(i: int, v: float) -> tuple[float, float]:
        return left + i * step, top + height - (v - lo) / (hi - lo) * height

    for v in (lo, (lo + hi) / 2, hi):  # gridlines with their values
        _, gy = at(0, v)
        doc.set_dash_pattern(dash=0.6, gap=0.6)
        doc.line(left, gy, left + width, gy)
        doc.set_dash_pattern()
        doc.set_xy(x, gy - 1.5)
        doc.cell(8.5, 3, _axis_label(v, metric.unit), align="R")
    doc.set_text_color(0)
    doc.set_draw_color(*BLUE)
    doc.set_fill_color(*BLUE)
    doc.set_line_width(0.45)
    run: list[tuple[float, float]] = []
    for i, v in enumerate([*values, None]):
        if v is not None:
            run.append(at(i, v))
            continue
        if len(run) > 1:
            doc.polyline(run)
        for px, py in run:
            doc.circle(px, py, 0.55, style="F")
        run = []
    doc.set_draw_color(0)
    doc.set_line_width(0.2)


def _trends(doc: _Doc, report: dict) -> None:
    months = report["trends"]["months"]
    doc.heading(f"四、近 {len(months)} 个月趋势（{month_zh(months[0])}—{month_zh(months[-1])}，全组织合计）")
    columns, w, h, gap = 3, 60.0, 44.0, (doc.epw - 3 * 60.0) / 2
    metrics = report["metrics"]
    for start in range(0, len(metrics), columns):
        if doc.will_page_break(h):
            doc.add_page()
        y = doc.get_y()
        for col, metric in enumerate(metrics[start:start + columns]):
            trend_chart(doc, x=doc.l_margin + col * (w + gap), y=y, w=w, h=h, metric=metric, months=months,
                        values=report["trends"]["series"][metric.code])
        doc.set_xy(doc.l_margin, y + h + 1)
    doc.note("横轴为月份；折线断开处表示该月无数据或样本不足。")


def _definitions(doc: _Doc, report: dict) -> None:
    doc.heading("指标定义")
    for metric in report["metrics"]:
        minimum = f"；样本数少于 {metric.min_n} 时不显示" if metric.min_n else ""
        better = {HIGHER: "越高越好", LOWER: "越低越好"}.get(metric.direction, "不评优劣")
        doc.note(f"{metric.zh}（{metric.code}，{better}{minimum}）：{metric.definition_zh}", size=7.5)
        doc.ln(0.8)


def render(report: dict) -> bytes:
    """Build the PDF of an org's monthly report (see :func:`app.metrics.report.monthly_report`)."""
    org, month = report["org"], report["month"]
    name = org["name"] if len(org["name"]) <= FOOTER_NAME else org["name"][:FOOTER_NAME - 1] + "…"
    doc = _Doc(f"会诊 Huizhen · {name} · {month_zh(month)}月度报告 · 生成于 {report['today']}")
    doc.set_title(f"{org['name']} {month} 月度报告")
    doc.set_creator("Huizhen")
    doc.add_page()
    doc.set_font("cjk", size=18)
    doc.multi_cell(0, 10, f"{org['name']}", align="C", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("cjk", size=14)
    doc.cell(0, 8, f"{KINDS.get(org['kind'], '')}{month_zh(month)}月度报告", align="C", new_x="LMARGIN",
             new_y="NEXT")
    doc.set_font("cjk", size=9)
    doc.set_text_color(*GREY)
    period = f"统计期间：{report['period']['from']} 至 {report['period']['to']}（按会诊分享日期，UTC）"
    if report["partial"]:
        period += f"；本月尚未结束，数据截至 {report['today']}"
    doc.cell(0, 6, period, align="C", new_x="LMARGIN", new_y="NEXT")
    doc.set_text_color(0)
    if not report["has_data"]:
        doc.ln(4)
        doc.set_font("cjk", size=12)
        doc.cell(0, 8, f"{month_zh(month)}无会诊数据。", align="C", new_x="LMARGIN", new_y="NEXT")
    _key_figures(doc, report)
    if report["has_data"]:
        _members(doc, report)
        _gaps(doc, report)
    _trends(doc, report)
    _definitions(doc, report)
    return bytes(doc.output())
