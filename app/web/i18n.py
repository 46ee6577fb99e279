"""Languages of the pages: Chinese first (the source strings), English as a translation.

Templates and code mark strings with ``_()``; their msgids are the Chinese text, so the UI is
Chinese even without a catalogue. ``app/translations/<lang>/LC_MESSAGES/messages.po`` holds the
translations; they are compiled into ``instance/translations`` when the app starts (the .mo files
are build output, never committed). The ES modules get their strings from :data:`JS_STRINGS`,
translated on the server and embedded in every page.
"""

import logging
import os
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, request, session
from flask_babel import lazy_gettext as _l

from app.accounts.specialties import specialty_names
from app.extensions import babel
from app.notifications.service import text_in

log = logging.getLogger(__name__)

DEFAULT_LOCALE = "zh"
LANGUAGES = {"zh": "中文", "en": "English"}
SOURCE_DIR = Path(__file__).resolve().parent.parent / "translations"

# Strings the browser scripts show, keyed by the names the scripts use.
JS_STRINGS = {
    "network_error": _l("网络错误，请重试"),
    "preparing_download": _l("正在生成文件…"),
    "saved": _l("已保存"),
    "uploading": _l("上传中"),
    "queued": _l("等待上传"),
    "accepted": _l("已接收"),
    "rejected": _l("已拒收"),
    "failed": _l("上传失败"),
    "retry": _l("重试"),
    "retrying": _l("正在重试"),
    "all_done": _l("全部完成"),
    "already_stored": _l("病例中已有，跳过"),
    "resuming": _l("已上传 {done}/{total}，正在续传"),
    "waiting_network": _l("等待网络恢复…"),
    "files": _l("个文件"),
    # what an uploaded file was received as (the API's "kind")
    "file_dicom": _l("DICOM 影像"),
    "file_image": _l("照片"),
    "file_document": _l("文档"),
    "no_specialists": _l("没有找到合适的专家"),
    "choose": _l("选择"),
    "open_cases": _l("在办会诊"),
    "online": _l("在线"),
    "typing": _l("正在输入…"),
    "connected": _l("已连接"),
    "disconnected": _l("连接已断开，正在重连…"),
    "presenter": _l("主讲人"),
    "you_present": _l("您正在主讲"),
    "nobody_presents": _l("无人主讲"),
    "present_take": _l("我来主讲"),
    "present_release": _l("结束主讲"),
    "following": _l("跟随主讲人"),
    "slice": _l("层面"),
    "frame": _l("帧"),
    "window": _l("窗宽窗位"),
    "loading": _l("加载中…"),
    "not_renderable": _l("此图像无法显示"),
    "delete": _l("删除"),
    "jump_to_image": _l("查看图像"),
    "message_too_long": _l("消息过长"),
    "confirm": _l("确定吗？"),
    "share_by_rules": _l("医联体：按分诊规则进入对应会诊组"),
    "share_to_pool": _l("会诊组：进入其分诊队列"),
    "no_orgs": _l("您所在的医院不属于任何医联体或会诊组"),
    # annotation kinds, as listed under the image
    "kind_line": _l("测量"),
    "kind_arrow": _l("箭头"),
    "kind_ellipse": _l("椭圆"),
    "kind_text": _l("文字"),
}

# Timeline entries, by the action recorded.
ACTION_NAMES = {
    "created": _l("创建了会诊"),
    "share": _l("提交了会诊申请"),
    "accept": _l("接受了会诊"),
    "decline": _l("婉拒了会诊"),
    "ask": _l("提出了问题"),
    "answer": _l("回答了问题"),
    "withdraw": _l("撤回了申请"),
    "sign_opinion": _l("签署了会诊意见"),
    "opinion_amended": _l("修订了会诊意见"),
    "close": _l("结案"),
    "invited": _l("邀请了同事"),
    "removed": _l("移出了同事"),
    "report": _l("提交了学科报告"),
    "assign": _l("分派了会诊专家"),
    "reroute": _l("转到其他会诊组"),
    "return_to_pool": _l("婉拒，病例退回分诊队列"),
}
# A step recorded under one action, told apart by what its data says.
LEFT_POOL = _l("因指定专家离开会诊组，病例退回分诊队列")


def action_name(code: str, data: dict | None = None) -> str:
    """A timeline action in the current language (``data``: the step's recorded data, if any)."""
    if code == "return_to_pool" and (data or {}).get("left_pool"):
        return str(LEFT_POOL)  # a coordinator removed the designated specialist from the pool: nobody declined
    return str(ACTION_NAMES.get(code, code))


def notification_text(notification) -> str:
    """A notification's text in the current language."""
    return text_in(notification, select_locale())


def select_locale() -> str:
    """The language the user picked (kept in the session), else Chinese."""
    lang = session.get("lang")
    return lang if lang in LANGUAGES else DEFAULT_LOCALE


def js_strings() -> dict[str, str]:
    """The scripts' strings in the current language."""
    return {key: str(text) for key, text in JS_STRINGS.items()}


def compile_catalogues(target: Path) -> None:
    """Compile every .po under app/translations into ``target`` when it is missing or stale."""
    for po in SOURCE_DIR.glob("*/LC_MESSAGES/messages.po"):
        mo = target / po.relative_to(SOURCE_DIR).with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as f:
            catalog = read_po(f)
        tmp = mo.with_name(f"{mo.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            write_mo(f, catalog)
        tmp.replace(mo)  # atomic, so a second process starting at once never reads half a file


def init_app(app: Flask) -> None:
    """Compile the catalogues and wire Flask-Babel with the session's language."""
    target = Path(app.instance_path) / "translations"
    compile_catalogues(target)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(target)
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    babel.init_app(app, locale_selector=select_locale)

    app.jinja_env.globals.update(action_name=action_name, specialty_names=specialty_names,
                                notification_text=notification_text)

    @app.context_processor
    def _i18n_globals():
        lang = select_locale()
        return {"lang": lang, "html_lang": "zh-CN" if lang == "zh" else lang, "languages": LANGUAGES,
                "js_strings": js_strings, "next_url": request.full_path if request else "/"}

