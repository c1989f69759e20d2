"""Tenants and their company contacts."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlmodel import Field, SQLModel

from domain.shared.models import json_object_field, timestamp_field


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    name: str
    time_zone: str = Field(default="UTC")
    created_at: datetime = timestamp_field()


class CompanyContacts(SQLModel, table=True):
    """Who a tenant escalates to (VP of customer success, CEO, ...): one row per tenant."""

    __tablename__ = "company_contacts"

    tenant_id: UUID = Field(primary_key=True, foreign_key="tenants.id")
    vp_customer_success: str | None = None
    ceo: str | None = None
    other: dict[str, Any] = json_object_field()
    updated_at: datetime = timestamp_field()
