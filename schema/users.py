"""Users, tenants and the viewer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from domain.tenants.models import CompanyContacts as CompanyContactsModel
from domain.tenants.models import Tenant as TenantModel
from domain.users.models import Role as RoleModel
from domain.users.models import User as UserModel
from resolvers import users as resolve
from schema.context import Info
from schema.errors import UserError, attempt

Role = strawberry.enum(RoleModel, name="Role")


@strawberry.type
class Tenant:
    id: strawberry.ID
    name: str
    time_zone: str

    @classmethod
    def of(cls, model: TenantModel) -> Tenant:
        return cls(id=strawberry.ID(str(model.id)), name=model.name, time_zone=model.time_zone)


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    name: str
    role: Role  # type: ignore[valid-type]
    created_at: datetime
    _model: strawberry.Private[UserModel]

    @classmethod
    def of(cls, model: UserModel) -> User:
        return cls(id=strawberry.ID(str(model.id)), email=model.email, name=model.name,
                   role=RoleModel(model.role), created_at=model.created_at, _model=model)

    @strawberry.field
    async def manager(self, info: Info) -> Annotated[User, strawberry.lazy("schema.users")] | None:
        manager = await resolve.manager(info, self._model)
        return User.of(manager) if manager else None

    @strawberry.field
    async def tenant(self, info: Info) -> Tenant:
        return Tenant.of(await resolve.tenant(info, self._model.tenant_id))


def user_or_none(model: UserModel | None) -> User | None:
    return User.of(model) if model else None


@strawberry.type
class Query:
    @strawberry.field(description="The caller, as their token and the tenant's users say.")
    async def viewer(self, info: Info) -> User | None:
        return user_or_none(await resolve.viewer(info))

    @strawberry.field(description="The tenant's company contacts (empty until an admin sets them).")
    async def company_contacts(self, info: Info) -> CompanyContacts:
        return CompanyContacts.of(await resolve.company_contacts(info))


@strawberry.type(description="Who the tenant escalates to; `other` holds extra roles.")
class CompanyContacts:
    vp_customer_success: str | None
    ceo: str | None
    other: JSON

    @classmethod
    def of(cls, model: CompanyContactsModel | None) -> CompanyContacts:
        if model is None:
            return cls(vp_customer_success=None, ceo=None, other=cast(JSON, {}))
        return cls(vp_customer_success=model.vp_customer_success, ceo=model.ceo,
                   other=cast(JSON, dict(model.other or {})))


@strawberry.input
class CreateUserInput:
    email: str = strawberry.field(description="At most 254 characters.")
    name: str = strawberry.field(description="1-200 characters.")
    role: Role  # type: ignore[valid-type]
    manager_id: strawberry.ID | None = None


@strawberry.type
class CreateUserPayload:
    user: User | None
    errors: list[UserError]


@strawberry.input(description="Fields left out keep their value; null clears one. `other` "
                              "replaces the extra contacts ({role: email}).")
class CompanyContactsInput:
    vp_customer_success: str | None = strawberry.UNSET
    ceo: str | None = strawberry.UNSET
    other: JSON | None = strawberry.field(default=strawberry.UNSET,
                                          description="At most 30 roles of email addresses.")

    def changes(self) -> dict[str, Any]:
        sent = {"vp_customer_success": self.vp_customer_success, "ceo": self.ceo,
                "other": self.other}
        return {k: v for k, v in sent.items() if v is not strawberry.UNSET}


@strawberry.type
class UpdateCompanyContactsPayload:
    company_contacts: CompanyContacts | None
    errors: list[UserError]


@strawberry.input(description="Tenant settings; fields left out keep their value.")
class TenantSettingsInput:
    time_zone: str | None = strawberry.field(
        default=None, description="IANA zone (e.g. Europe/Berlin) renewal days are counted in.")


@strawberry.type
class UpdateTenantSettingsPayload:
    tenant: Tenant | None
    errors: list[UserError]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Admins add a user to their tenant.")
    async def create_user(self, info: Info, input: CreateUserInput) -> CreateUserPayload:
        user, errors = await attempt(info, lambda: resolve.create_user(
            info, email=input.email, name=input.name, role=input.role,
            manager_id=input.manager_id))
        return CreateUserPayload(user=user_or_none(user), errors=errors)

    @strawberry.mutation(description="Admins set the company contacts (VP CS, CEO, others).")
    async def update_company_contacts(self, info: Info, input: CompanyContactsInput
                                      ) -> UpdateCompanyContactsPayload:
        contacts, errors = await attempt(
            info, lambda: resolve.update_company_contacts(info, input.changes()))
        return UpdateCompanyContactsPayload(
            company_contacts=CompanyContacts.of(contacts) if contacts else None, errors=errors)

    @strawberry.mutation(description="Admins change tenant settings (the time zone).")
    async def update_tenant_settings(self, info: Info, input: TenantSettingsInput
                                     ) -> UpdateTenantSettingsPayload:
        tenant, errors = await attempt(info, lambda: resolve.update_tenant_settings(
            info, time_zone=input.time_zone))
        return UpdateTenantSettingsPayload(tenant=Tenant.of(tenant) if tenant else None,
                                           errors=errors)
