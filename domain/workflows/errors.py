"""Workflow errors."""

from domain.shared.errors import Conflict, DomainError, NotFound


class CoreReadOnly(DomainError):
    """Core workflows are shared by every tenant: clone one to change it."""

    code = "CORE_READ_ONLY"


class WorkflowDeleted(DomainError):
    code = "WORKFLOW_DELETED"


class KeyTaken(Conflict):
    code = "ALREADY_EXISTS"


class WorkflowNotFound(NotFound):
    pass
