"""The Handlebars engine: helpers, escaping, broken templates, caching, notifications."""

from __future__ import annotations

from typing import Any

import pytest

from domain.templating import engine
from domain.templating.engine import TemplateError, condition_holds, problems, render
from domain.templating.notifications import preview, render_notification

CONTEXT: dict[str, Any] = {
    "customer": {"name": "Acme & Sons <Ltd>", "arr": "250000", "healthScore": 35,
                 "hasAccountPlan": True, "renewalDate": "2026-12-20"},
    "workflow": {"daysUntilRenewal": -8, "daysOverdue": 8, "renewalARR": 250000,
                 "hoursUntilRenewal": None},
    "csm": {"email": "csm@acme.test", "manager": None},
    "company": {"vpCustomerSuccess": "vp@acme.test", "ceo": ""},
    "accountTeam": {"allEmails": "ae@acme.test,csm@acme.test"},
}


class TestHelpers:
    @pytest.mark.parametrize(("template", "expected"), [
        ("{{gte customer.arr 100000}}", "true"),        # number given as a string
        ("{{gt \"10\" \"9\"}}", "true"),                # both strings: numeric, not lexical
        ("{{lt customer.arr \"1e6\"}}", "true"),
        ("{{lte workflow.renewalARR customer.arr}}", "true"),
        ("{{eq customer.arr 250000}}", "true"),
        ("{{eq customer.healthScore \"35\"}}", "true"),
        ("{{eq customer.hasAccountPlan \"true\"}}", "true"),
        ("{{eq \"a\" \"b\"}}", "false"),
        ("{{abs workflow.daysUntilRenewal}}", "8"),
        ("{{abs \"-2.50\"}}", "2.5"),
        ("{{and customer.hasAccountPlan (gte workflow.renewalARR 100000)}}", "true"),
        ("{{or (lt customer.healthScore 20) (gt workflow.daysOverdue 7)}}", "true"),
        ("{{not (and (gte (abs workflow.daysUntilRenewal) 7) (lt customer.healthScore 40))}}",
         "false"),
        ("{{#if (gte workflow.renewalARR 250000)}}high{{else}}low{{/if}}", "high"),
        ("{{#unless (eq customer.healthScore 100)}}at risk{{/unless}}", "at risk"),
    ])
    def test_values_numbers_and_nested_subexpressions(self, template: str, expected: str) -> None:
        assert render(template, CONTEXT) == expected

    @pytest.mark.parametrize(("template", "expected"), [
        ("{{gte missing.value 1}}", "false"),
        ("{{lt missing.value 1}}", "false"),
        ("{{gt 1 workflow.hoursUntilRenewal}}", "false"),  # null
        ("{{eq missing.value nothing.either}}", "true"),
        ("{{eq missing.value 0}}", "false"),
        ("{{eq missing.value \"\"}}", "false"),
        ("{{not missing.value}}", "true"),
        ("{{not company.ceo}}", "true"),                  # empty string is false
        ("{{and missing.value true}}", "false"),
        ("{{or missing.value company.ceo}}", "false"),
        ("{{abs missing.value}}", ""),
        ("{{abs \"abc\"}}", ""),
        ("{{abs \"1e999999999\"}}", ""),                 # no giant integers
        ("{{gte \"abc\" 5}}", "false"),                  # text against a number: no order
        ("{{gte \"NaN\" 5}}", "false"),
        ("{{gte (abs missing.value) 7}}", "false"),
        ("{{#if (gte missing.value 1)}}yes{{else}}no{{/if}}", "no"),
    ])
    def test_missing_and_odd_values_never_raise(self, template: str, expected: str) -> None:
        assert render(template, CONTEXT) == expected

    @pytest.mark.parametrize(("template", "expected"), [
        ("{{#gte workflow.renewalARR 250000}}high{{else}}low{{/gte}}", "high"),
        ("{{#eq customer.healthScore \"36\"}}same{{else}}different{{/eq}}", "different"),
        ("{{#and customer.hasAccountPlan (lt customer.healthScore 40)}}risk{{/and}}", "risk"),
        ("{{#not missing.value}}{{customer.healthScore}}{{/not}}", "35"),
        ("{{#lt missing.value 1}}never{{/lt}}.", "."),
    ])
    def test_helpers_work_as_blocks_too(self, template: str, expected: str) -> None:
        assert render(template, CONTEXT) == expected

    @pytest.mark.parametrize(("template", "holds"), [
        ("{{gte workflow.daysOverdue 7}}", True), ("{{gte workflow.daysOverdue 9}}", False),
        ("", False), ("  ", False), ("false", False), ("0", False), ("null", False),
        ("{{company.ceo}}", False), ("{{csm.email}}", True), ("{{abs 0}}", False),
    ])
    def test_conditions(self, template: str, holds: bool) -> None:
        assert condition_holds(template, CONTEXT) is holds


class TestEscaping:
    def test_html_escapes_values_and_text_does_not(self) -> None:
        template = "<b>{{customer.name}}</b>"
        assert render(template, CONTEXT, html=True) == "<b>Acme &amp; Sons &lt;Ltd&gt;</b>"
        assert render(template, CONTEXT) == "<b>Acme & Sons <Ltd></b>"

    def test_triple_stash_is_raw_on_every_channel(self) -> None:
        assert render("{{{customer.name}}}", CONTEXT, html=True) == "Acme & Sons <Ltd>"

    def test_blocks_and_helpers_keep_working_unescaped(self) -> None:
        template = "{{#if customer.hasAccountPlan}}{{customer.name}} ({{abs -3}}){{/if}}"
        assert render(template, CONTEXT) == "Acme & Sons <Ltd> (3)"
        assert render(template, CONTEXT, html=True) == "Acme &amp; Sons &lt;Ltd&gt; (3)"

    @pytest.mark.parametrize(("template", "text", "html"), [
        ("{{#if customer.missing}}yes{{ else }}no{{/if}}", "no", "no"),
        ("{{#if customer.missing}}yes {{~else~}} no{{/if}}", "no", "no"),
        ("{{#if customer.missing}}yes {{~ else ~}} no{{/if}}", "no", "no"),
        ("{{#if customer.missing}}yes{{else~}} no{{/if}}", "no", "no"),
        ("[ {{~customer.name~}} ]", "[Acme & Sons <Ltd>]", "[Acme &amp; Sons &lt;Ltd&gt;]"),
        ("[ {{~ customer.name ~}} ]", "[Acme & Sons <Ltd>]", "[Acme &amp; Sons &lt;Ltd&gt;]"),
        ("[ {{~customer.name}} ]", "[Acme & Sons <Ltd> ]", "[Acme &amp; Sons &lt;Ltd&gt; ]"),
        ("[ {{customer.name~}} ]", "[ Acme & Sons <Ltd>]", "[ Acme &amp; Sons &lt;Ltd&gt;]"),
        ("[ {{~{customer.name}~}} ]", "[Acme & Sons <Ltd>]", "[Acme & Sons <Ltd>]"),
    ])
    def test_else_and_whitespace_control_in_both_modes(self, template: str, text: str,
                                                      html: str) -> None:
        assert problems(template, path="$.t") == []
        assert render(template, CONTEXT) == text
        assert render(template, CONTEXT, html=True) == html

    @pytest.mark.parametrize(("template", "code"), [
        ("{{~shout customer.name~}}", "TEMPLATE_UNKNOWN_HELPER"),
        ("{{~> partial}}", "TEMPLATE_UNSUPPORTED"),
        ("{{#if a}}x{{~else if b~}}y{{/if}}", "TEMPLATE_UNSUPPORTED"),
        ("{{~ custmer.name ~}}", "TEMPLATE_UNKNOWN_ROOT"),
        ("{{~{ custmer.name }~}}", "TEMPLATE_UNKNOWN_ROOT"),
    ])
    def test_whitespace_control_does_not_hide_a_tag_from_the_checks(self, template: str,
                                                                    code: str) -> None:
        assert [p.code for p in problems(template, path="$.t")] == [code]

    def test_whitespace_controlled_blocks_still_shift_scope(self) -> None:
        assert problems("{{~#each steps~}}{{label}}{{~/each~}}{{~!-- note --~}}",
                        path="$.t") == []


class TestBrokenTemplates:
    @pytest.mark.parametrize(("template", "code"), [
        ("Renewal {{#if customer.name}}soon. Escalate now.", "TEMPLATE_TRUNCATED"),
        ("{{#if a}}x{{else}}y and the rest", "TEMPLATE_TRUNCATED"),
        ("{{#each steps}}{{this}}", "TEMPLATE_TRUNCATED"),
        ("{{!-- an unclosed comment", "TEMPLATE_TRUNCATED"),
        ("Hi {{customer.name", "TEMPLATE_SYNTAX"),
        ("{{/if}}", "TEMPLATE_SYNTAX"),
        ("{{#if a}}x{{/each}}", "TEMPLATE_SYNTAX"),
        ("{{shout customer.name}}", "TEMPLATE_UNKNOWN_HELPER"),
        ("{{#if customer.missing}}{{shout 1}}{{/if}}", "TEMPLATE_UNKNOWN_HELPER"),
        ("{{#if (shout 1)}}x{{/if}}", "TEMPLATE_UNKNOWN_HELPER"),
        ("{{#if a}}x{{else if b}}y{{/if}}", "TEMPLATE_UNSUPPORTED"),
        ("{{> partial}}", "TEMPLATE_UNSUPPORTED"),
        ("{{#if}}x{{/if}}", "TEMPLATE_RENDER"),
        ("x" * (engine.MAX_LENGTH + 1), "TEMPLATE_TOO_LONG"),
        ("{{customer.name}}" * (engine.MAX_TAGS + 1), "TEMPLATE_TOO_COMPLEX"),
    ])
    def test_is_an_error_never_a_shortened_output(self, template: str, code: str) -> None:
        with pytest.raises(TemplateError) as caught:
            render(template, CONTEXT)
        assert caught.value.code == code
        assert [p.code for p in problems(template, path="$.x")] == [code]

    def test_unclosed_tag_floods_are_rejected(self) -> None:
        # (These used to take seconds in a quadratic scan; the benchmark, not a test, times.)
        for template in ("{{" * 3999, "{{a " * 1999):
            with pytest.raises(TemplateError) as caught:
                render(template, CONTEXT)
            assert caught.value.code in ("TEMPLATE_SYNTAX", "TEMPLATE_TOO_COMPLEX")

    def test_ad_hoc_templates_allow_fewer_tags(self) -> None:
        template = "{{customer.name}}" * (engine.MAX_AD_HOC_TAGS + 1)
        with pytest.raises(TemplateError) as caught:
            render(template, CONTEXT, ad_hoc=True)
        assert caught.value.code == "TEMPLATE_TOO_COMPLEX"

    def test_ad_hoc_templates_have_a_budget_of_characters_and_words_inside_tags(self) -> None:
        long_text = '{{eq customer.name "' + "z" * 200 + '"}}'  # 225 characters, 4 words
        many_words = "{{and " + " ".join(["1"] * 40) + "}}"  # 87 characters, 41 words
        deep_path = "{{customer" + ".a" * 40 + "}}"  # 94 characters, 41 words
        nested = "{{not " + "(not " * 16 + "1" + ")" * 16 + "}}"  # 33 subexpressions
        for template in (long_text, many_words, deep_path, nested):
            assert [p.code for p in problems(template, path="t", ad_hoc=True)] == [
                "TEMPLATE_TOO_COMPLEX"]
            assert problems(template, path="t") == []  # config templates: the wider caps
        assert engine.tag_size("ab {{x}} cd {{{y (z)}}} {{z") == (
            len("{{x}}{{{y (z)}}}{{z"), 6)
        text = "plain text " * ((engine.MAX_AD_HOC_LENGTH - 17) // 11)
        assert problems(text + "{{customer.name}}", path="t", ad_hoc=True) == []

    def test_the_ad_hoc_caps_admit_every_seed_template(self) -> None:
        import json
        from pathlib import Path

        def strings(value: Any) -> list[str]:
            if isinstance(value, str):
                return [value] if "{{" in value else []
            items = value.values() if isinstance(value, dict) else \
                value if isinstance(value, list) else []
            return [s for item in items for s in strings(item)]

        found = [s for path in Path("seeds/workflows").glob("*.json")
                 for s in strings(json.loads(path.read_text()))]
        assert len(found) > 20
        for template in found:
            assert problems(template, path="t", ad_hoc=True) == [], template

    def test_an_ad_hoc_render_compiles_once_in_its_mode(self) -> None:
        engine.clear_caches()
        template = "<b>{{customer.name}}</b> once"
        for _ in range(3):
            assert problems(template, path="t", ad_hoc=True, html=True) == []
            assert render(template, CONTEXT, html=True, ad_hoc=True) == \
                "<b>Acme &amp; Sons &lt;Ltd&gt;</b> once"
        assert engine.cache_info()["ad_hoc_compile"]["misses"] == 1

    def test_a_float_literal_gets_a_hint(self) -> None:
        with pytest.raises(TemplateError) as caught:
            render("{{gte workflow.renewalARR 1.5}}", CONTEXT)
        assert caught.value.code == "TEMPLATE_SYNTAX"
        assert 'quoted: "1.5"' in caught.value.message
        assert render('{{gte workflow.renewalARR "1.5"}}', CONTEXT) == "true"

    def test_a_failure_is_cached_too(self) -> None:
        template = "{{#if customer.name}}never closed"
        for _ in range(3):
            with pytest.raises(TemplateError):
                render(template, CONTEXT)
        assert engine._verify.cache_info().hits >= 2

    def test_unknown_roots_are_problems_but_still_render(self) -> None:
        assert [p.code for p in problems("{{custmer.name}}", path="$.t")] == [
            "TEMPLATE_UNKNOWN_ROOT"]
        assert render("{{custmer.name}}", CONTEXT) == ""


class TestCache:
    def test_a_template_compiles_once_per_escaping_mode(self) -> None:
        engine.clear_caches()
        for _ in range(5):
            render("{{customer.name}} cached", CONTEXT)
            render("{{customer.name}} cached", CONTEXT, html=True)
        info = engine.cache_info()
        # The checked probe (with its sentinel) also renders text; HTML needs its own.
        assert info["compile"]["misses"] == 2
        assert info["verify"]["misses"] == 1

    def test_ad_hoc_templates_have_their_own_small_cache(self) -> None:
        engine.clear_caches()
        render("{{customer.name}} config", CONTEXT)
        for index in range(100):
            render(f"{{{{customer.name}}}} typed {index}", CONTEXT, ad_hoc=True)
        info = engine.cache_info()
        assert info["compile"]["currsize"] == 1  # the config template was not flushed
        assert info["ad_hoc_compile"]["currsize"] == info["ad_hoc_compile"]["maxsize"]


NOTE: dict[str, Any] = {
    "id": "war-room", "type": "email", "title": "War room: {{customer.name}}",
    "message": "<p>{{customer.name}} is {{workflow.daysOverdue}} days overdue</p>",
    "recipients": ["{{csm.manager}}", "{{company.vpCustomerSuccess}}",
                   "{{accountTeam.allEmails}}", "CSM@acme.test"],
    "condition": "{{gte workflow.daysOverdue 7}}",
}


class TestCompiledTemplatesDoNotLeak:
    def test_distinct_templates_leave_no_modules_behind(self) -> None:
        import sys

        before = {name for name in sys.modules if name.startswith("pybars._templates")}
        for index in range(50):
            assert render(f"leak check {index} {{{{customer.name}}}}", CONTEXT, html=True) == \
                f"leak check {index} Acme &amp; Sons &lt;Ltd&gt;"
        after = {name for name in sys.modules if name.startswith("pybars._templates")}
        assert after <= before


class TestNotificationRendering:
    def test_email_escapes_the_body_only(self) -> None:
        rendered = render_notification(NOTE, CONTEXT, step_id="s1")
        assert rendered.title == "War room: Acme & Sons <Ltd>"
        assert rendered.message == "<p>Acme &amp; Sons &lt;Ltd&gt; is 8 days overdue</p>"
        assert rendered.condition_met is True
        assert rendered.problems == []

    @pytest.mark.parametrize("channel", ["in_app", "webhook"])
    def test_text_channels_are_not_escaped(self, channel: str) -> None:
        rendered = render_notification({**NOTE, "type": channel}, CONTEXT)
        assert rendered.message == "<p>Acme & Sons <Ltd> is 8 days overdue</p>"

    def test_recipients_are_split_deduplicated_and_empty_ones_dropped(self) -> None:
        rendered = render_notification(NOTE, CONTEXT)
        assert rendered.recipients == ["vp@acme.test", "ae@acme.test", "csm@acme.test"]

    def test_a_broken_part_is_a_problem_with_its_path(self) -> None:
        config = {"steps": [{"id": "a"}, {"id": "b", "notifications": [
            {**NOTE, "message": "{{#if x}}cut", "condition": "{{nope 1}}"}]}]}
        [rendered] = preview(config, CONTEXT)
        assert rendered.step_id == "b"
        assert rendered.message is None
        assert rendered.condition_met is False
        assert {(p.code, p.path) for p in rendered.problems} == {
            ("TEMPLATE_TRUNCATED", "$.steps[1].notifications[0].message"),
            ("TEMPLATE_UNKNOWN_HELPER", "$.steps[1].notifications[0].condition")}

    def test_email_titles_and_recipients_carry_no_line_breaks(self) -> None:
        context = {**CONTEXT,
                   "customer": {"name": "Acme\r\nBcc: thief@evil.test\nX: y"},
                   "csm": {"email": "csm@acme.test\r\nBcc: thief@evil.test",
                           "manager": "boss@acme.test\u2028"}}
        note = {**NOTE, "title": "Renewal:\n{{customer.name}}",
                "recipients": ["{{csm.email}}", "{{csm.manager}}"]}
        rendered = render_notification(note, context)
        assert rendered.title == "Renewal: Acme Bcc: thief@evil.test X: y"
        assert rendered.recipients == ["csm@acme.testBcc: thief@evil.test", "boss@acme.test"]
        for channel in ("slack", "in_app", "webhook"):
            other = render_notification({**note, "type": channel}, context)
            assert not any(c in r for r in other.recipients for c in "\r\n")

    def test_slack_escapes_values_but_keeps_its_own_markup(self) -> None:
        context = {**CONTEXT, "customer": {"name": "<!channel> & <http://evil.test|Acme>"}}
        note = {"id": "n", "type": "slack", "title": "<!here> {{customer.name}}",
                "message": "*{{customer.name}}* <https://app.test|open> {{{customer.name}}}",
                "recipients": ["#cs"]}
        rendered = render_notification(note, context)
        escaped = "&lt;!channel&gt; &amp; &lt;http://evil.test|Acme&gt;"
        assert rendered.title == f"<!here> {escaped}"
        assert rendered.message == (f"*{escaped}* <https://app.test|open> "
                                    "<!channel> & <http://evil.test|Acme>")
        assert rendered.problems == []

    def test_slack_escaping_keeps_blocks_helpers_and_whitespace_control(self) -> None:
        context = {**CONTEXT, "customer": {"name": "<A&B>", "arr": 5, "on": True}}
        note = {"type": "Slack", "title": "t", "recipients": [],
                "message": "{{#if customer.on}} {{~customer.name~}} {{/if}}|{{gte customer.arr 1}}"
                           "|{{#each customer}}{{this}};{{/each}}|{{customer.missing}}"}
        rendered = render_notification(note, context)
        assert rendered.message == "&lt;A&amp;B&gt;|true|&lt;A&amp;B&gt;;5;true;|"

    def test_no_condition_means_true(self) -> None:
        rendered = render_notification({"type": "slack", "title": "t", "recipients": []}, {})
        assert rendered.condition_met is True
