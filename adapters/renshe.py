"""人力資源和社會保障局 (renshe): pensions, unemployment benefits, employment, qualifications."""

from __future__ import annotations

from datetime import timedelta

from unstuck.schemas import CoordinationReply, CoordinationRequest, Department, Outcome

from .answers import Answers
from .hookspecs import adapter_hookimpl

ELSEWHERE = {
    "shop_sign": "chengguan",
    "outdoor_ad": "chengguan",
    "street_vending": "chengguan",
    "construction_waste": "chengguan",
    "name_registration": "scjg",
    "business_licence": "scjg",
    "food_permit": "scjg",
}


class RensheAdapter:
    """Decides on the matters the bureau's windows handle, from the facts the window recorded."""

    @adapter_hookimpl
    def unstuck_department(self) -> Department:
        return Department(
            code="renshe",
            name="人力資源和社會保障局",
            matters=[
                "pension_transfer",
                "unemployment_benefit",
                "employment_registration",
                "qualification_certificate",
            ],
            chain={
                "clerk": "養老保險科經辦人",
                "section_head": "養老保險科科長",
                "leader_in_charge": "分管副局長",
                "director": "局長",
            },
        )

    @adapter_hookimpl
    def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        reply = Answers(request, "renshe")
        f = request.facts
        match request.matter:
            case "pension_transfer":
                if not f.get("transfer_form_received", True):
                    return reply(
                        Outcome.NEED_MATERIALS,
                        "轉入地尚未收到轉移接續信息表，請申請人補交後即可辦理",
                        "養老保險科",
                        materials=["基本養老保險關係轉移接續信息表", "參保繳費憑證"],
                    )
                return reply(
                    Outcome.RESOLVED,
                    "經科長覆核，跨省轉移材料齊全，經辦人拒辦無依據；已當場受理轉移接續，"
                    "轉入手續15個工作日內辦結",
                    "養老保險科科長",
                )
            case "unemployment_benefit":
                months = int(f.get("months_contributed", 0))
                if months < 12:
                    return reply(
                        Outcome.CANNOT,
                        f"失業前繳納失業保險費僅{months}個月，未滿一年，不能領取失業保險金",
                        "就業失業科",
                        legal_basis="《失業保險條例》第十四條",
                    )
                if f.get("left_voluntarily", False):
                    return reply(
                        Outcome.CANNOT,
                        "因本人意願中斷就業，不符合領取失業保險金條件",
                        "就業失業科",
                        legal_basis="《失業保險條例》第十四條",
                    )
                return reply(Outcome.RESOLVED, "符合領取條件，已核定失業保險金並當月發放", "就業失業科")
            case "employment_registration":
                return reply(Outcome.RESOLVED, "已補辦就業登記，信息當日同步社保系統", "就業服務中心")
            case "qualification_certificate":
                return reply(
                    Outcome.ACCEPTED,
                    "證書信息需省職業技能鑒定中心核驗，已發函，待回覆後補發證書",
                    "職業能力建設科",
                    expected_date=request.deadline - timedelta(days=1),
                )
        return reply.elsewhere_or_later(ELSEWHERE, "人社")
