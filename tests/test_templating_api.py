"""renderTemplate over GraphQL: output, escaping, coded errors, isolation."""

from __future__ import annotations

import uuid

import pytest

from domain.templating import engine
from tests.factories import counting, make_tenant, make_user
from tests.factories_customers import contract, set_contacts, upsert_customer

pytestmark = pytest.mark.asyncio

WITH_OPTIONS = """
query($template: String!, $customerId: ID!, $html: Boolean, $at: DateTime) {
  renderTemplate(template: $template, customerId: $customerId, html: $html, asOf: $at) {
    output errors { code message path }
  }
}
"""


class TestRenderTemplate:
    async def test_renders_the_customers_context(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        csm = await make_user(tenant, email="csm@acme.test")
        await set_contacts(gql, tenant, vpCustomerSuccess="vp@acme.test")
        customer = await upsert_customer(gql, tenant, name="Acme", arr=300000,
                                         renewalDate="2026-12-20", csmId=str(csm))
        template = ("{{customer.name}} renews in {{workflow.daysUntilRenewal}} days"
                    "{{#if (gte workflow.renewalARR 250000)}} (high value){{/if}}"
                    " -> {{company.vpCustomerSuccess}}, {{accountTeam.allEmails}}")
        data = await gql(WITH_OPTIONS, {"template": template, "customerId": customer["id"],
                                        "at": "2026-12-10T09:00:00Z"}, token=tenant.token)
        assert data["renderTemplate"] == {
            "output": "Acme renews in 10 days (high value) -> vp@acme.test, csm@acme.test",
            "errors": []}

    async def test_the_contract_document_renders_with_the_real_clock(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        customer = await upsert_customer(gql, tenant, name="Globex")
        data = await gql(contract("RenderTemplate"), {
            "template": "Hello {{customer.name}}", "customerId": customer["id"]},
            token=tenant.token)
        assert data["renderTemplate"] == {"output": "Hello Globex", "errors": []}

    async def test_escapes_only_when_asked_for_html(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        customer = await upsert_customer(gql, tenant, name="Tom & Jerry <Inc>")
        outputs = []
        for html in (None, False, True):
            data = await gql(WITH_OPTIONS, {"template": "<i>{{customer.name}}</i>",
                                            "customerId": customer["id"], "html": html},
                             token=tenant.token)
            outputs.append(data["renderTemplate"]["output"])
        assert outputs == ["<i>Tom & Jerry <Inc></i>", "<i>Tom & Jerry <Inc></i>",
                           "<i>Tom &amp; Jerry &lt;Inc&gt;</i>"]

    @pytest.mark.parametrize(("template", "code"), [
        ("Dear {{customer.name}}, {{#if workflow.daysOverdue}}you are late", "TEMPLATE_TRUNCATED"),
        ("{{customer.name", "TEMPLATE_SYNTAX"),
        ("{{uppercase customer.name}}", "TEMPLATE_UNKNOWN_HELPER"),
        ("{{custmer.name}}", "TEMPLATE_UNKNOWN_ROOT"),
    ])
    async def test_a_broken_template_is_a_coded_error(self, gql, settings, template,
                                                      code) -> None:
        tenant = await make_tenant(settings)
        customer = await upsert_customer(gql, tenant)
        data = await gql(contract("RenderTemplate"), {"template": template,
                                                      "customerId": customer["id"]},
                         token=tenant.token)
        result = data["renderTemplate"]
        assert result["output"] is None
        assert [(e["code"], e["path"]) for e in result["errors"]] == [(code, "template")]

    @pytest.mark.parametrize(("template", "code"), [
        ("x" * (engine.MAX_AD_HOC_LENGTH + 1), "TEMPLATE_TOO_LONG"),
        ("{{customer.name}}" * (engine.MAX_AD_HOC_TAGS + 1), "TEMPLATE_TOO_COMPLEX"),
        ("{{" + ".".join(["customer"] * 30) + "}}", "TEMPLATE_TOO_COMPLEX"),
        ("{{and " + " ".join(["customer.a"] * 40) + "}}", "TEMPLATE_TOO_COMPLEX"),
    ])
    async def test_ad_hoc_templates_are_capped(self, gql, settings, template, code) -> None:
        tenant = await make_tenant(settings)
        customer = await upsert_customer(gql, tenant)
        data = await gql(contract("RenderTemplate"), {"template": template,
                                                      "customerId": customer["id"]},
                         token=tenant.token)
        assert [e["code"] for e in data["renderTemplate"]["errors"]] == [code]

    async def test_a_broken_template_fails_before_any_customer_query(self, gql, settings,
                                                                     app) -> None:
        tenant = await make_tenant(settings)
        customer = await upsert_customer(gql, tenant)
        for template in ("{{#if customer.name}}cut", "x" * (engine.MAX_AD_HOC_LENGTH + 1)):
            for customer_id in (customer["id"], str(uuid.uuid4())):
                with counting(app) as statements:
                    data = await gql(contract("RenderTemplate"), {
                        "template": template, "customerId": customer_id}, token=tenant.token)
                assert data["renderTemplate"]["errors"][0]["code"].startswith("TEMPLATE_")
                # (the caller's re-read brings the caller's tenant row: not a customer query)
                reads = [s for s in statements if "stepwise_enter" not in s]
                assert not [s for s in reads if "customers" in s or "tenants" in s], statements

    async def test_another_tenants_customer_is_the_same_as_a_missing_one(self, gql,
                                                                        settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        theirs = await upsert_customer(gql, b, name="Hidden")
        results = []
        for customer_id in (theirs["id"], str(uuid.uuid4()), "nonsense"):
            data = await gql(contract("RenderTemplate"), {"template": "{{customer.name}}",
                                                          "customerId": customer_id},
                             token=a.token)
            results.append(data["renderTemplate"])
        assert results[0] == results[1] == results[2] == {"output": None, "errors": [
            {"code": "NOT_FOUND", "message": "no such customer", "path": "customerId"}]}
