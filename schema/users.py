"""Users, tenants and the viewer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from domain.tenants.models import Tenant as TenantModel
from domain.users.models import Role as RoleModel
from domain.users.models import User as UserModel
from resolvers import users as resolve
from schema.context import Info

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
