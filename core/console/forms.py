"""Checking what staff type, field by field, before anything is sent to the broker.

Each message names the field in Chinese and says how to put it right; the form comes back with
everything that was typed, so nothing accepted is lost. HTML and control characters (escape
sequences) are refused in free text: the console shows text as text, and a record is read for years.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from unstuck.schemas.common import CASE_ID_PATTERN
from unstuck.schemas.identifiers import identifier_problem, normalised_identifier
from unstuck.web.forms import text_problem
from unstuck.web.text import simplified

SHORT, LONG = 200, 4000  # the contract's ShortText and LongText
COMMENT = 2000  # an evaluation's comment

_PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CASE_ID = re.compile(CASE_ID_PATTERN)


def valid_case_id(value: str) -> bool:
    return bool(_CASE_ID.match(value))


@dataclass(frozen=True)
class Field:
    name: str
    label: str  # how the form names it, in Chinese
    kind: str = "short"  # short | long | comment | choice | days | id_number | phone | code | facts
    required: bool = True
    choices: tuple[str, ...] = ()
    low: int = 1
    high: int = 10


def check(form: Mapping[str, Any], fields: Iterable[Field]) -> tuple[dict[str, Any], dict[str, str]]:
    """The values of ``fields`` in ``form`` (typed as the broker wants them) and a message per bad field."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        raw = form.get(f.name)
        text = raw.strip() if isinstance(raw, str) else ""
        if f.kind in ("long", "facts", "comment"):
            text = text.replace("\r\n", "\n")
        elif "\n" in text or "\r" in text:
            errors[f.name] = f"{f.label}：只能填一行，请删去换行"
            continue
        if not text:
            if f.required:
                errors[f.name] = f"{f.label}：必填，请填写"
            continue
        problem = text_problem(
            f.label, text, {"long": LONG, "facts": LONG, "comment": COMMENT}.get(f.kind, SHORT)
        )
        if problem is None:
            value, problem = _typed(f, text)
            if problem is None:
                values[f.name] = value
        if problem is not None:
            errors[f.name] = problem
    return values, errors


def refusal(fields: Iterable[Field], name: str | None, message: str) -> dict[str, str]:
    """The broker's refusal as the message beside the field of the form it names, headed by that
    field's label as every message beside a field is; nothing when it names no field of the form."""
    label = next((f.label for f in fields if f.name == name), None)
    return {name: f"{label}：{message}"} if name and label else {}


def _typed(f: Field, text: str) -> tuple[Any, str | None]:
    if f.kind == "choice":
        return text, None if text in f.choices else f"{f.label}：请从列表中选择"
    if f.kind == "days":
        # isdecimal, not isdigit: "²" is a digit int() cannot read; full-width "１０" is decimal and reads 10
        if not text.isdecimal() or not f.low <= int(text) <= f.high:
            return None, f"{f.label}：请填 {f.low} 到 {f.high} 之间的整数"
        return int(text), None
    if f.kind == "id_number":  # the bus's own rule (GB 11643 / GB 32100), so nothing it refuses is sent
        value = normalised_identifier(text)
        kind = "citizen" if value[:17].isdigit() else "enterprise"
        if identifier_problem("citizen", value) is None or identifier_problem("enterprise", value) is None:
            return value, None
        problem = identifier_problem(kind, value)
        return None, f"{f.label}：{simplified(problem.zh) if problem else ''}，请核对"
    if f.kind == "phone":
        value = text.replace(" ", "")
        if _PHONE.match(value):
            return value, None
        return None, f"{f.label}：应为 11 位手机号码或带区号的固定电话（如 0415-1234567）"
    if f.kind == "code":
        if _CODE.match(text):
            return text, None
        return None, f"{f.label}：只能用小写英文字母、数字和下划线，以字母开头，例如 shop_sign"
    if f.kind == "facts":
        return _facts(f.label, text)
    return text, None


def _facts(label: str, text: str) -> tuple[dict[str, Any] | None, str | None]:
    """``name=value`` lines: a whole number or true/false becomes that; anything else stays text."""
    facts: dict[str, Any] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not _CODE.match(name) or not value:
            return None, (
                f"{label}：第 {n} 行应写成「名称=值」，名称用小写英文字母、数字和下划线，例如 floor=2"
            )
        if value.lower() in ("true", "false"):
            facts[name] = value.lower() == "true"
        elif re.fullmatch(r"-?\d{1,15}", value):
            facts[name] = int(value)
        else:
            facts[name] = value[:SHORT]
    if len(facts) > 50:
        return None, f"{label}：最多 50 项"
    return facts, None


# --- the forms ---------------------------------------------------------------------------------------

CATEGORIES = ("cannot", "hard", "refused", "guided")
CHANNELS = ("window", "phone", "online", "enterprise")


def intake_fields(departments: Iterable[str]) -> list[Field]:
    codes = tuple(departments)
    return [
        Field("channel", "受理渠道", "choice", choices=CHANNELS),
        Field("applicant_kind", "申请人类型", "choice", choices=("citizen", "enterprise")),
        Field("applicant_name", "申请人姓名或名称"),
        Field("id_number", "证件号码", "id_number"),
        Field("phone", "联系电话", "phone", required=False),
        Field("contact", "联系人", required=False),
        Field("matter_title", "事项名称"),
        Field("matter", "事项代码", "code"),
        Field("window", "原办理窗口"),
        Field("department", "原窗口所属部门", "choice", choices=codes),
        Field("description", "情况说明", "long"),
        Field("category", "分类", "choice", required=False, choices=CATEGORIES),
        Field("facts", "案情要素", "facts", required=False),
    ]


def intake_body(values: Mapping[str, Any], client_ref: str | None) -> dict[str, Any]:
    """The body of ``case.open`` from checked intake values (no owner: the broker takes it from the subject)."""
    applicant = {
        "kind": values["applicant_kind"],
        "name": values["applicant_name"],
        "id_number": values["id_number"],
    }
    for key in ("phone", "contact"):
        if values.get(key):
            applicant[key] = values[key]
    body: dict[str, Any] = {
        "channel": values["channel"],
        "applicant": applicant,
        "matter": values["matter"],
        "matter_title": values["matter_title"],
        "facts": values.get("facts") or {},
        "window": values["window"],
        "department": values["department"],
        "description": values["description"],
    }
    if values.get("category"):
        body["category"] = values["category"]
    if client_ref:
        body["client_ref"] = client_ref
    return body


def department_field(name: str, label: str, departments: Iterable[str]) -> Field:
    return Field(name, label, "choice", choices=tuple(departments))


ACTION_FIELDS: dict[str, list[Field]] = {
    "classify": [Field("category", "分类", "choice", choices=CATEGORIES), Field("reason", "分类理由")],
    "handover": [Field("owner", "新承办人"), Field("reason", "移交理由")],
    "extend": [Field("working_days", "延期工作日数", "days", high=10), Field("reason", "延期理由")],
    "approve_extension": [],
    "guide": [Field("window", "引导至窗口"), Field("instructions", "办理指引", "long")],
    "close": [
        Field(
            "outcome",
            "销号结果",
            "choice",
            choices=("resolved", "cannot", "guided", "need_materials", "withdrawn"),
        ),
        Field("explanation", "向申请人的说明", "long"),
        Field("override_reason", "改定理由（领导）", required=False),
    ],
    "reopen": [Field("reason", "重办理由")],
    "escalate": [
        Field("department", "督办部门"),
        Field(
            "level", "督办层级", "choice", choices=("clerk", "section_head", "leader_in_charge", "director")
        ),
        Field("note", "督办事项"),
    ],
    "rule_bounce": [Field("department", "承办部门")],
    "accountability": [
        Field("staff", "被问责人"),
        Field("section", "科室"),
        Field("leader_in_charge", "分管领导"),
        Field("finding", "认定事实", "long"),
        Field(
            "measures", "处理措施", "choice", choices=("interview", "performance_review", "criticism", "none")
        ),
        Field("fault_tolerance", "容错免责", "choice", required=False, choices=("yes",)),
    ],
    "review_notice": [
        Field("department", "作出不能办答复的部门"),
        Field("how", "告知方式"),
        Field("note", "告知内容", "comment", required=False),
    ],
    "review_conclude": [
        Field("department", "作出不能办答复的部门"),
        Field("outcome", "复核结论", "choice", choices=("upheld", "overturned")),
        Field("note", "上级部门的结论", "long"),
    ],
}
"""The fields of each action on the case page (the verb ``case.<action>``, ``accountability.record``)."""


def action_fields(action: str, departments: Iterable[str], staff: Iterable[str]) -> list[Field]:
    """The fields of ``action``, with the departments and staff ids this bus knows as the choices."""
    codes, people = tuple(departments), tuple(staff)
    out = []
    for f in ACTION_FIELDS[action]:
        if f.name == "department":
            choices = (*codes, "window") if action == "escalate" else codes
            f = Field(f.name, f.label, "choice", f.required, choices)
        elif f.name in ("owner", "staff"):
            f = Field(f.name, f.label, "choice", f.required, people)
        out.append(f)
    return out


def action_body(action: str, case_id: str, values: dict[str, Any]) -> dict[str, Any]:
    body = {"case_id": case_id, **values}
    if action == "accountability":
        body["measures"] = [body["measures"]]
        body["fault_tolerance"] = body.pop("fault_tolerance", None) == "yes"
    return body
