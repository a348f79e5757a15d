"""住房和城鄉建設局 (zhujian): answers the 辦不成事 window's coordination requests.

Started from ``unstuck adapters new zhujian --name 住房和城鄉建設局``; the rule table is the bureau's:
construction permits, presale permits, rental registration and home renovation filings, decided
from the facts the window recorded. The host (``unstuck adapters run zhujian``) calls
``unstuck_coordinate`` once per request_id and answers repeats from its cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from unstuck.adapters import hookimpl
from unstuck.schemas import CoordinationReply, CoordinationRequest, Department, Outcome

CODE = "zhujian"
NAME = "住房和城鄉建設局"
PERMIT_RULES = "《建築工程施工許可管理辦法》"
RENTAL_RULES = "《商品房屋租賃管理辦法》"
PRESALE_RULES = "《城市商品房預售管理辦法》"
RENOVATION_RULES = "《住宅室內裝飾裝修管理辦法》"

Facts = Mapping[str, str | int | bool]


def number(facts: Facts, name: str, default: int) -> int:
    value = facts.get(name, default)
    return int(value) if not isinstance(value, bool) else default


@dataclass(frozen=True)
class Rule:
    """For ``matter``, when ``when(facts)`` holds (None: always), answer ``outcome``."""

    matter: str
    when: Callable[[Facts], bool] | None
    outcome: Outcome
    message: str
    handler: str
    legal_basis: str | None = None
    materials: tuple[str, ...] = ()


RULES: tuple[Rule, ...] = (
    # 建築工程施工許可證
    Rule(
        "construction_permit",
        lambda f: number(f, "investment_wan", 1000) < 30 or number(f, "floor_area_m2", 10000) < 300,
        Outcome.RESOLVED,
        "工程投資額在30萬元以下或者建築面積在300平方米以下，可以不申請辦理施工許可證，已當面告知",
        "建築市場監管科",
    ),
    Rule(
        "construction_permit",
        lambda f: not f.get("planning_permit_obtained", False),
        Outcome.NEED_MATERIALS,
        "尚未取得建設工程規劃許可證，不具備申領施工許可證的條件；取得後一併提交",
        "建築市場監管科",
        materials=("建設工程規劃許可證", "建築工程用地批准手續"),
    ),
    Rule(
        "construction_permit",
        None,
        Outcome.RESOLVED,
        "申領條件經科長覆核均已具備，施工許可證當日核發",
        "建築市場監管科科長",
    ),
    # 商品房預售許可
    Rule(
        "presale_permit",
        lambda f: number(f, "investment_percent", 0) < 25,
        Outcome.CANNOT,
        "投入開發建設的資金未達到工程建設總投資的25%，暫不能核發預售許可證",
        "房地產市場監管科",
        legal_basis=PRESALE_RULES + "第五條",
    ),
    Rule(
        "presale_permit",
        None,
        Outcome.ACCEPTED,
        "形象進度需現場核驗，已安排核驗，核驗通過即核發預售許可證",
        "房地產市場監管科",
    ),
    # 房屋租賃登記備案
    Rule(
        "rental_registration",
        lambda f: bool(f.get("illegal_structure", False)),
        Outcome.CANNOT,
        "出租房屋屬於違法建築，不得出租，不予登記備案",
        "房屋租賃管理科",
        legal_basis=RENTAL_RULES + "第六條",
    ),
    Rule(
        "rental_registration",
        lambda f: bool(f.get("kitchen_let_as_bedroom", False)),
        Outcome.CANNOT,
        "廚房、衛生間、陽台和地下儲藏室不得出租供人員居住，調整租賃範圍後可重新申請",
        "房屋租賃管理科",
        legal_basis=RENTAL_RULES + "第八條",
    ),
    Rule(
        "rental_registration",
        None,
        Outcome.RESOLVED,
        "經科長覆核，材料齊全，經辦人拒辦無依據；已當場辦理租賃登記備案並出具備案證明",
        "房屋租賃管理科科長",
    ),
    # 住宅室內裝飾裝修
    Rule(
        "renovation_filing",
        lambda f: bool(f.get("alters_load_bearing_structure", False)),
        Outcome.CANNOT,
        "未經原設計單位或者具有相應資質的設計單位提出設計方案，不得變動建築主體和承重結構",
        "物業管理科",
        legal_basis=RENOVATION_RULES + "第五條",
    ),
    Rule("renovation_filing", None, Outcome.RESOLVED, "裝飾裝修登記已辦理，已告知物業服務企業", "物業管理科"),
)

# 退單: matters that belong to another department
ELSEWHERE: dict[str, str] = {
    "shop_sign": "chengguan",
    "outdoor_ad": "chengguan",
    "construction_waste": "chengguan",
    "name_registration": "scjg",
    "business_licence": "scjg",
    "pension_transfer": "renshe",
}


class ZhujianAdapter:
    """住房和城鄉建設局: decides from the facts the window recorded."""

    @hookimpl
    def unstuck_department(self) -> Department:
        return Department(
            code=CODE,
            name=NAME,
            matters=sorted({rule.matter for rule in RULES}),
            chain={
                "clerk": "政務服務窗口經辦人",
                "section_head": "行政審批科科長",
                "leader_in_charge": "分管副局長",
                "director": "局長",
            },
        )

    @hookimpl
    def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        for rule in RULES:
            if rule.matter == request.matter and (rule.when is None or rule.when(request.facts)):
                return self.reply(
                    request,
                    rule.outcome,
                    rule.message,
                    rule.handler,
                    legal_basis=rule.legal_basis,
                    materials=list(rule.materials),
                    expected_date=request.deadline - timedelta(days=1)
                    if rule.outcome is Outcome.ACCEPTED
                    else None,
                )
        if request.matter in ELSEWHERE:
            return self.reply(
                request,
                Outcome.NOT_OURS,
                f"{request.matter_title}不屬住建部門職責",
                "辦公室",
                belongs_to=ELSEWHERE[request.matter],
            )
        return self.reply(
            request,
            Outcome.ACCEPTED,
            "已轉業務科室研究，按期答覆",
            "辦公室",
            expected_date=request.deadline,
        )

    @staticmethod
    def reply(
        request: CoordinationRequest, outcome: Outcome, message: str, handler: str, **extra: object
    ) -> CoordinationReply:
        return CoordinationReply(
            request_id=request.request_id,
            department=CODE,
            outcome=outcome,
            message=message,
            handler=handler,
            **extra,
        )
