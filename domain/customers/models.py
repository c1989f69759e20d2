"""The customer row."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Column, Numeric
from sqlmodel import Field, SQLModel

from domain.shared.models import json_object_field, timestamp_field


class Customer(SQLModel, table=True):
    __tablename__ = "customers"

    tenant_id: UUID = Field(primary_key=True, foreign_key="tenants.id")
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    external_id: str
    name: str
    arr: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2), nullable=True))
    renewal_date: date | None = None
    has_account_plan: bool = False
    health_score: int | None = None
    csm_id: UUID | None = None
    account_team: dict[str, Any] = json_object_field()
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
