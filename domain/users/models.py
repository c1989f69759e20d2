"""Users of a tenant: the CSMs, their managers and the admins."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlmodel import Field, SQLModel

from domain.shared.actor import Role
from domain.shared.models import timestamp_field

__all__ = ["Role", "User"]


class User(SQLModel, table=True):
    __tablename__ = "users"

    tenant_id: UUID = Field(primary_key=True, foreign_key="tenants.id")
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    email: str
    name: str
    role: str = Field(default=Role.VIEWER.value)
    manager_id: UUID | None = None
    created_at: datetime = timestamp_field()
