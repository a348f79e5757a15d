"""Checking what an applicant typed, field by field, with the bus's own rules, before anything is sent.

The id number and the phone are normalised and checked as the broker checks them
(``unstuck.schemas.identifiers``); free text is refused when it is too long or holds control
characters or HTML (``unstuck.web.forms.text_problem``). Each message names the field in Chinese.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from unstuck.schemas.identifiers import identifier_problem, normalised_identifier, phone_problem
from unstuck.schemas.labels import SATISFACTION_LABELS
from unstuck.web.forms import text_problem
from unstuck.web.text import simplified

SHORT, LONG, COMMENT = 200, 4000, 2000
MATTER = "online_report"  # every online report's matter code; the title says what it was
KINDS = {"citizen": "个人", "enterprise": "企业"}
LEVELS = [(code, simplified(zh)) for code, (zh, _) in SATISFACTION_LABELS.items()]
RECEIPT = re.compile(r"^[A-Z0-9-]{8,64}$")

REPORT_LABELS = {
    "applicant_kind": "申请人类型",
    "applicant_name": "姓名或企业名称",
    "id_number": "证件号码",
    "phone": "联系电话",
    "department": "窗口所属部门",
    "window": "办理窗口",
    "matter_title": "要办的事项",
    "description": "窗口怎么答复的",
}


def _text(form: Mapping[str, Any], name: str) -> str:
    raw = form.get(name)
    return raw.strip().replace("\r\n", "\n") if isinstance(raw, str) else ""


def _free_text(label: str, text: str, limit: int, one_line: bool, required: bool = True) -> str | None:
    if not text:
        return f"{label}：必填，请填写" if required else None
    if one_line and "\n" in text:
        return f"{label}：只能填一行，请删去换行"
    return text_problem(label, text, limit)


def check_report(
    form: Mapping[str, Any], departments: Iterable[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The body of ``case.open`` (no owner: the broker names the online owner) and a message per bad field."""
    typed = {name: _text(form, name) for name in REPORT_LABELS}
    errors: dict[str, str] = {}
    kind = typed["applicant_kind"]
    if kind not in KINDS:
        errors["applicant_kind"] = "申请人类型：请选择个人或企业"
    if typed["department"] not in set(departments):
        errors["department"] = "窗口所属部门：请从列表中选择"
    for name, limit, one_line in [
        ("applicant_name", SHORT, True),
        ("window", SHORT, True),
        ("matter_title", SHORT, True),
        ("description", LONG, False),
    ]:
        problem = _free_text(REPORT_LABELS[name], typed[name], limit, one_line)
        if problem:
            errors[name] = problem
    id_number = normalised_identifier(typed["id_number"])
    if not id_number:
        errors["id_number"] = "证件号码：必填，请填写"
    elif kind in KINDS and (problem := identifier_problem(kind, id_number)) is not None:
        errors["id_number"] = f"证件号码：{simplified(problem.zh)}"
    phone = normalised_identifier(typed["phone"])
    if not phone:
        errors["phone"] = "联系电话：必填，查询进度时要用到它的后 4 位"
    elif (bad := phone_problem(phone)) is not None:
        errors["phone"] = f"联系电话：{simplified(bad.zh)}"
    if errors:
        return {}, errors
    body = {
        "channel": "online",
        "applicant": {"kind": kind, "name": typed["applicant_name"], "id_number": id_number, "phone": phone},
        "matter": MATTER,
        "matter_title": typed["matter_title"],
        "facts": {},
        "window": typed["window"],
        "department": typed["department"],
        "description": typed["description"],
    }
    return body, {}


def check_lookup(form: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``receipt`` and ``phone_last4`` as ``case.lookup`` and ``case.evaluate`` want them."""
    receipt = normalised_identifier(_text(form, "receipt"))
    last4 = normalised_identifier(_text(form, "phone_last4"))
    errors = {}
    if not RECEIPT.match(receipt):
        errors["receipt"] = "回执码：请填写反映时得到的回执码，例如 DD-20260928-0001-XXXXXXXXXXXXXXXX"
    if not (len(last4) == 4 and last4.isascii() and last4.isdigit()):
        errors["phone_last4"] = "电话后 4 位：请填写反映时所留电话号码的最后 4 位数字"
    return {"receipt": receipt, "phone_last4": last4}, errors


def check_rating(form: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    level = _text(form, "level")
    comment = _text(form, "comment")
    errors = {}
    if level not in SATISFACTION_LABELS:
        errors["level"] = "评价：请选择五个等级中的一个"
    if (problem := _free_text("意见和建议", comment, COMMENT, False, required=False)) is not None:
        errors["comment"] = problem
    return {"level": level, "comment": comment}, errors
