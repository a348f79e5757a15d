"""The built-in rules (plugins/rules.py) called directly: the 1-3-5 table, the phrase classifier,
routing to the failed window's department, and the configured escalation chains."""

from __future__ import annotations

import pytest

from conftest import sample
from unstuck.plugins.rules import (
    ONE_THREE_FIVE,
    ConfiguredEscalation,
    DeadlineRule,
    FailedWindowRouting,
    PhraseClassifier,
)
from unstuck.schemas import CaseIntake, Category


def intake(**changes: object) -> CaseIntake:
    return CaseIntake.model_validate(sample("01", **changes))


def test_the_one_three_five_table():
    assert ONE_THREE_FIVE == {
        Category.GUIDED: 1,
        Category.REFUSED: 1,
        Category.CANNOT: 3,
        Category.HARD: 5,
    }


@pytest.mark.parametrize(("category", "days"), [("guided", 1), ("refused", 1), ("cannot", 3), ("hard", 5)])
def test_the_deadline_rule_without_overrides_gives_the_one_three_five_days(category, days):
    assert DeadlineRule().unstuck_deadline_working_days(category=Category(category)) == days


def test_an_override_replaces_only_its_own_category():
    rule = DeadlineRule({"hard": 7})
    assert [rule.unstuck_deadline_working_days(category=Category(c)) for c in Category] == [
        3 if c is Category.CANNOT else 7 if c is Category.HARD else 1 for c in Category
    ]


def test_a_category_chosen_at_intake_is_kept_without_looking_at_the_words():
    chosen = intake(category="hard", description="窗口態度不好，不給辦")
    assert PhraseClassifier().unstuck_classify(intake=chosen) == (Category.HARD, "classified at intake")


@pytest.mark.parametrize(
    ("title", "description", "category", "phrase"),
    [
        ("門頭招牌設置", "窗口工作人員推諉，讓我改天再來", Category.REFUSED, "推諉"),
        ("門頭招牌設置", "按規定二層以上禁止設置", Category.CANNOT, "禁止"),
        ("直播帶貨營業執照", "屬於新業態，沒有辦理指引", Category.HARD, "新業態"),
        ("社保轉移", "材料不全，窗口讓補", Category.GUIDED, "材料不全"),
        ("不給辦的招牌", "說明文字沒有關鍵詞", Category.REFUSED, "不給辦"),  # the title counts too
        # both a refused and a cannot phrase: the refused table is read first and wins
        ("招牌", "說不能辦，態度很差", Category.REFUSED, "態度"),
        # within one table the first phrase listed wins over a later one that also occurs
        ("招牌", "法規不允許，也禁止", Category.CANNOT, "禁止"),
    ],
)
def test_the_first_matching_phrase_decides_the_suggested_category(title, description, category, phrase):
    suggestion = PhraseClassifier().unstuck_classify(
        intake=intake(category=None, matter_title=title, description=description)
    )
    assert suggestion == (category, f"description mentions 「{phrase}」")


def test_no_phrase_means_no_suggestion():
    words = intake(category=None, matter_title="門頭招牌設置", description="想在二樓掛一塊招牌")
    assert PhraseClassifier().unstuck_classify(intake=words) is None


def test_routing_asks_the_department_of_the_failed_window_whatever_the_category():
    routing = FailedWindowRouting()
    for category in Category:
        assert routing.unstuck_route(intake=intake(department="scjg"), category=category) == ["scjg"]


def test_escalation_chains_come_from_configuration_and_are_copied():
    configured = {"scjg": {"clerk": "科員", "director": "局長"}}
    escalation = ConfiguredEscalation(configured)
    configured["scjg"]["director"] = "changed later"
    assert escalation.unstuck_escalation_chain(department="scjg") == {"clerk": "科員", "director": "局長"}
    assert escalation.unstuck_escalation_chain(department="renshe") is None
