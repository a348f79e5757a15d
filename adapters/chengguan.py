"""城市管理局 (chengguan): shop signs and outdoor advertising, street-side business, construction waste."""

from __future__ import annotations

from unstuck.schemas import CoordinationReply, CoordinationRequest, Department, Outcome

from .answers import Answers
from .hookspecs import adapter_hookimpl

SIGN_RULE = "本市戶外招牌設置管理規定：門頭招牌只設於建築物一層，二層及以上不得設置"
ELSEWHERE = {
    "name_registration": "scjg",
    "business_licence": "scjg",
    "food_permit": "scjg",
    "pension_transfer": "renshe",
    "unemployment_benefit": "renshe",
}


class ChengguanAdapter:
    @adapter_hookimpl
    def unstuck_department(self) -> Department:
        return Department(
            code="chengguan",
            name="城市管理局",
            matters=["shop_sign", "outdoor_ad", "street_vending", "construction_waste"],
            chain={
                "clerk": "市容科經辦人",
                "section_head": "市容科科長",
                "leader_in_charge": "分管副局長",
                "director": "局長",
            },
        )

    @adapter_hookimpl
    def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        reply = Answers(request, "chengguan")
        f = request.facts
        match request.matter:
            case "shop_sign" | "outdoor_ad":
                floor = int(f.get("floor", 1))
                if floor >= 2:
                    return reply(
                        Outcome.CANNOT,
                        f"招牌擬設於{floor}樓外立面，不符合設置規定；可在一層入口處設置指示牌",
                        "市容科",
                        legal_basis=SIGN_RULE,
                    )
                return reply(Outcome.RESOLVED, "一層門頭招牌符合規定，已辦理設置備案", "市容科")
            case "street_vending":
                if f.get("zone") == "designated":
                    return reply(Outcome.RESOLVED, "位於規劃的便民攤點區，已登記攤位", "市容科")
                return reply(
                    Outcome.CANNOT,
                    "擬經營地點不在劃定的攤點區域，可申請附近便民市場攤位",
                    "市容科",
                    legal_basis="本市城市市容和環境衛生管理條例：占道經營須在劃定區域",
                )
            case "construction_waste":
                return reply(Outcome.RESOLVED, "運輸車輛和消納場所核驗通過，處置核准已發放", "渣土管理科")
        return reply.elsewhere_or_later(ELSEWHERE, "城管")
