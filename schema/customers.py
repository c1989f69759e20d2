"""Customers: upsert by external id, the paginated list, and the template context."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from domain.customers.models import Customer as CustomerModel
from resolvers import customers as resolve
from schema.context import Info
from schema.errors import UserError, attempt, query_result
from schema.relay import Connection
from schema.users import User


@strawberry.type
class Customer:
    id: strawberry.ID
    external_id: str
    name: str
    arr: float | None
    renewal_date: date | None
    has_account_plan: bool
    health_score: int | None
    account_team: JSON = strawberry.field(description='Role -> email, e.g. {"ae": "..."}.')
    created_at: datetime
    updated_at: datetime
    _model: strawberry.Private[CustomerModel]

    @classmethod
    def of(cls, model: CustomerModel) -> Customer:
        return cls(
            id=strawberry.ID(str(model.id)), external_id=model.external_id, name=model.name,
            arr=float(model.arr) if model.arr is not None else None,
            renewal_date=model.renewal_date, has_account_plan=model.has_account_plan,
            health_score=model.health_score,
            account_team=cast(JSON, dict(model.account_team or {})),
            created_at=model.created_at, updated_at=model.updated_at, _model=model,
        )

    @strawberry.field(description="Days from today to the renewal date, in the tenant's time "
                                  "zone (0 on the day, negative after it).")
    async def days_until_renewal(self, info: Info) -> int | None:
        return await resolve.days_until_renewal(info, self._model)

    @strawberry.field
    async def csm(self, info: Info) -> User | None:
        found = await resolve.csm(info, self._model)
        return User.of(found) if found else None


@strawberry.input(description="Upsert by externalId; optional fields left out keep their value.")
class CustomerInput:
    external_id: str = strawberry.field(description="1-200 characters.")
    name: str = strawberry.field(description="1-300 characters.")
    arr: float | None = strawberry.field(default=strawberry.UNSET,
                                         description="0 to 999999999999.99 (cents kept).")
    renewal_date: date | None = strawberry.UNSET
    has_account_plan: bool | None = strawberry.UNSET
    health_score: int | None = strawberry.field(default=strawberry.UNSET,
                                                description="0 to 100.")
    csm_id: strawberry.ID | None = strawberry.UNSET
    account_team: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="At most 30 roles (identifiers) of email "
        "addresses of at most 254 characters.")

    def changes(self) -> dict[str, Any]:
        """The fields the caller sent, by their domain names."""
        sent = {"name": self.name, "arr": self.arr, "renewal_date": self.renewal_date,
                "has_account_plan": self.has_account_plan, "health_score": self.health_score,
                "csm_id": self.csm_id, "account_team": self.account_team}
        return {k: v for k, v in sent.items() if v is not strawberry.UNSET}


@strawberry.type
class UpsertCustomerPayload:
    customer: Customer | None
    errors: list[UserError]


@strawberry.type
class Query:
    @strawberry.field(description="The tenant's customers by name; search matches name or "
                                  "external id.")
    async def customers(self, info: Info, first: int | None = None, after: str | None = None,
                        search: str | None = None) -> Connection[Customer]:
        page = await query_result(lambda: resolve.page(info, first, after, search))
        return Connection[Customer].of(page, Customer.of)

    @strawberry.field(description="One customer; null when missing (or another tenant's).")
    async def customer(self, info: Info, id: strawberry.ID) -> Customer | None:
        found = await resolve.one(info, id)
        return Customer.of(found) if found else None

    @strawberry.field(description=(
        "{customer, csm, workflow, company, accountTeam} for the customer's templates; null "
        "when the customer is not visible. Dates count in the tenant's time zone: "
        "workflow.daysUntilRenewal (0 on the day), hoursUntilRenewal (whole hours until 00:00 "
        "of the renewal day, negative once it began), daysOverdue = max(0, -daysUntilRenewal), "
        "renewalARR = customer.arr. asOf pins the clock (default: now)."))
    async def workflow_context(self, info: Info, customer_id: strawberry.ID,
                               as_of: datetime | None = None) -> JSON | None:
        return cast(JSON | None, await resolve.context(info, customer_id, as_of))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create or update a customer by externalId (editors).")
    async def upsert_customer(self, info: Info, input: CustomerInput) -> UpsertCustomerPayload:
        customer, errors = await attempt(
            info, lambda: resolve.upsert(info, input.external_id, input.changes()))
        return UpsertCustomerPayload(customer=Customer.of(customer) if customer else None,
                                     errors=errors)
