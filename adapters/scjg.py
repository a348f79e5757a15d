"""市場監督管理局 (scjg): name registration (核名), business licences, food-business permits."""

from __future__ import annotations

from unstuck.schemas import CoordinationReply, CoordinationRequest, Department, Outcome

from .answers import Answers
from .hookspecs import adapter_hookimpl

# New business forms (三新經濟) the provincial bureau has approved wording for.
NEW_BUSINESS_FORMS = {"直播電商", "劇本殺", "電競酒店", "寵物殯葬", "共享儲能", "無人機培訓"}
ELSEWHERE = {
    "shop_sign": "chengguan",
    "outdoor_ad": "chengguan",
    "street_vending": "chengguan",
    "pension_transfer": "renshe",
    "unemployment_benefit": "renshe",
}


class ScjgAdapter:
    @adapter_hookimpl
    def unstuck_department(self) -> Department:
        return Department(
            code="scjg",
            name="市場監督管理局",
            matters=["name_registration", "business_licence", "food_permit"],
            chain={
                "clerk": "登記註冊科經辦人",
                "section_head": "登記註冊科科長",
                "leader_in_charge": "分管副局長",
                "director": "局長",
            },
        )

    @adapter_hookimpl
    def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        reply = Answers(request, "scjg")
        f = request.facts
        match request.matter:
            case "name_registration" | "business_licence":
                form = str(f.get("business_form", ""))
                if f.get("name_has_restricted_words", False):
                    return reply(
                        Outcome.CANNOT,
                        "企業名稱含有禁止使用的文字，不能登記，可更換字號後重新申報",
                        "登記註冊科",
                        legal_basis="《企業名稱登記管理規定》第十一條",
                    )
                if form in NEW_BUSINESS_FORMS:
                    return reply(
                        Outcome.RESOLVED,
                        f"「{form}」屬新業態，系統無對應經營範圍條目；區局已請示省局，按省局規範表述"
                        "予以核准，當日辦結",
                        "登記註冊科科長",
                    )
                if form:
                    return reply(
                        Outcome.ACCEPTED,
                        f"「{form}」經營範圍表述需報省局確認，已上報",
                        "登記註冊科",
                        expected_date=request.deadline,
                    )
                return reply(Outcome.RESOLVED, "名稱自主申報通過，已核准", "登記註冊科")
            case "food_permit":
                if not f.get("site_plan_provided", False):
                    return reply(
                        Outcome.NEED_MATERIALS,
                        "缺少經營場所平面圖和設備布局圖",
                        "食品經營科",
                        materials=["經營場所平面圖", "設備布局和工藝流程圖"],
                    )
                return reply(Outcome.RESOLVED, "現場核查通過，許可證已發放", "食品經營科")
        return reply.elsewhere_or_later(ELSEWHERE, "市場監管")
