"""Shared column helpers and the metadata naming convention every table uses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Column, DateTime, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import configure_mappers, instrumentation
from sqlmodel import Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp_field(*, nullable: bool = False) -> Any:
    """A timestamptz column: `now()` by default, or a nullable one (deleted_at, ...).

    A function, not a shared Field: SQLModel needs a Column object of its own per model.
    """
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    return Field(default_factory=utcnow, sa_column=Column(
        DateTime(timezone=True), nullable=False, server_default=text("now()")))


def json_object_field() -> Any:
    """A JSONB object column defaulting to {}."""
    return Field(default_factory=dict, sa_column=Column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")))


M = TypeVar("M", bound=SQLModel)
_FIELDS: dict[type, frozenset[str]] = {}


def from_row(model: type[M], row: Mapping[str, Any]) -> M:
    """A table model from a driver row, built as the ORM loads one: no validation and no
    change tracking (25 µs → 2 µs a row). A row that lacks a column is built the slow way,
    so every attribute exists either way."""
    fields = _FIELDS.get(model)
    if fields is None:
        configure_mappers()  # instances made before any ORM use need configured attributes
        fields = _FIELDS.setdefault(model, frozenset(model.model_fields))
    values = dict(row)
    if not fields <= values.keys():
        return model(**values)
    instance: M = instrumentation.manager_of_class(model).new_instance()
    instance.__dict__.update(values)
    return instance
