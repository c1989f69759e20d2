"""The JSON Schema of a workflow config: the authoritative shape the builder's forms use.

Structure only; the semantic rules (ids, targets, reachability, cycles, templates, saved
actions, UI artifacts) live in validation.py and come back with the same problem shape.
"""

from __future__ import annotations

from typing import Any

SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
STEP_TYPES = ["task", "approval", "conditional_routing", "llm", "query", "notification"]
BRANCH_TYPES = ["fixed", "llm", "saved_action", "rag"]
NOTIFICATION_TYPES = ["in_app", "email", "slack", "webhook"]
VARIABLE_TYPES = ["text", "date", "number", "select"]
FORBIDDEN_KEYS = ("ui", "artifacts", "cardTitle", "cardDescription", "styles")

_text = {"type": "string"}
_nonempty = {"type": "string", "minLength": 1}
_id = {"type": "string", "pattern": ID}
_closed = {"additionalProperties": False}  # unknown keys (typos such as `nxt`) are errors
# Day counts stay within ten years: dates are shifted by them (context.dates), and a
# renewal date plus an unbounded count overflows.
MAX_DAYS = 3660
_days = {"type": "integer", "minimum": -MAX_DAYS, "maximum": MAX_DAYS}
_range = {
    "type": "object",
    "properties": {"min": _days, "max": _days},
    "minProperties": 1,
    "additionalProperties": False,
}

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://stepwise.dev/schemas/workflow-config.json",
    "title": "Stepwise workflow config",
    "description": "Logic and content of a workflow; no UI artifacts. Every object here except "
                   "a notification's metadata is closed: an unknown key (a typo such as "
                   "`nxt`) is an UNKNOWN_FIELD error, not ignored.",
    "type": "object",
    **_closed,
    "required": ["id", "name", "description", "version", "trigger", "context", "steps"],
    "properties": {
        "id": _id,
        "name": _nonempty,
        "description": _text,
        "version": {"type": "string", "pattern": SEMVER,
                    "description": "Semantic version, e.g. 1.0.0"},
        "trigger": {"$ref": "#/$defs/trigger"},
        "context": {
            "type": "object", **_closed,
            "properties": {"systemPrompt": _text, "passStepOutputs": {"type": "boolean"}},
        },
        "variables": {"type": "array", "items": {"$ref": "#/$defs/variable"}},
        "steps": {"type": "array", "minItems": 1, "maxItems": 1000,
                  "items": {"$ref": "#/$defs/step"},
                  "description": "The first step is the entry."},
    },
    "$defs": {
        "trigger": {
            "type": "object", **_closed,
            "properties": {
                "daysUntilRenewal": {**_range, "description": "Inclusive range; negative is "
                                     "overdue."},
                "earlyTriggers": {"type": "array", "items": {
                    "type": "object", "required": ["id", "condition"], **_closed,
                    "properties": {"id": _id, "condition": _nonempty, "description": _text,
                                   "withinDays": {"type": "integer", "minimum": 1,
                                                  "maximum": 365, "description":
                                                  "How long before the window the condition "
                                                  "is checked (default 30 days)."}},
                }},
                "manualTriggers": {"type": "array", "items": _nonempty, "uniqueItems": True},
            },
        },
        "variable": {
            "type": "object", **_closed,
            "required": ["name", "type"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
                "displayName": _text,
                "type": {"enum": VARIABLE_TYPES},
                "options": {"type": "array", "items": _text, "minItems": 1},
                "required": {"type": "boolean"},
                "default": {"type": ["string", "number", "boolean", "null"]},
                "description": _text,
            },
            "if": {"properties": {"type": {"const": "select"}}, "required": ["type"]},
            "then": {"required": ["options"]},
        },
        "step": {
            "type": "object", **_closed,
            "required": ["id", "name", "type"],
            "properties": {
                "id": _id,
                "name": _nonempty,
                "type": {"enum": STEP_TYPES},
                "description": _text,
                "approver": {**_nonempty, "description": "Handlebars, e.g. {{csm.manager}}"},
                "allowRevisit": {"type": "boolean",
                                 "description": "Opt in to cycles through this step."},
                "execution": {
                    "type": "object", **_closed,
                    "properties": {"llmPrompt": _nonempty, "processor": _text,
                                   "timeoutSeconds": {"type": "integer", "minimum": 1}},
                },
                "routing": {
                    "type": "object", **_closed,
                    "properties": {
                        "routes": {"type": "array", "items": {
                            "type": "object", "required": ["condition", "next"], **_closed,
                            "properties": {"condition": _nonempty, "next": _id},
                        }},
                        "defaultRoute": _id,
                        "rejectRoute": {**_id, "description": "approval steps: where a "
                                        "rejection goes (without it, a rejection fails the "
                                        "run)"},
                    },
                },
                "notifications": {"type": "array", "items": {"$ref": "#/$defs/notification"}},
                "chatBranches": {"type": "array", "items": {"$ref": "#/$defs/chatBranch"}},
                "inputs": {"type": "array", "items": _text},
                "outputs": {"type": "array", "items": _text},
            },
            "allOf": [
                {"if": {"properties": {"type": {"const": "query"}}, "required": ["type"]},
                 "then": {"required": ["execution"],
                          "properties": {"execution": {"required": ["llmPrompt"]}}}},
                {"if": {"properties": {"type": {"const": "approval"}}, "required": ["type"]},
                 "then": {"required": ["approver"]}},
            ],
        },
        "notification": {
            "type": "object", **_closed,
            "required": ["type", "title", "recipients"],
            "properties": {
                "id": _id,
                "type": {"enum": NOTIFICATION_TYPES},
                "title": _nonempty,
                "message": _text,
                "recipients": {"type": "array", "minItems": 1, "items": _nonempty},
                "priority": {"enum": ["low", "normal", "high", "urgent"]},
                "condition": _nonempty,
                "actionTriggered": _nonempty,
                "schedule": {
                    "type": "object",
                    "properties": {"daysOverdue": {**_days, "minimum": 0},
                                   "daysUntilRenewal": _days},
                    "minProperties": 1,
                    "additionalProperties": False,
                },
                "metadata": {"type": "object", "description": "Free-form: any keys."},
            },
        },
        "chatBranch": {
            "type": "object", **_closed,
            "required": ["id", "label", "type"],
            "properties": {
                "id": _id,
                "label": _nonempty,
                "type": {"enum": BRANCH_TYPES},
                "userPrompts": {"type": "array", "items": _nonempty},
                "response": _text,
                "next": _id,
                "savedAction": _id,
                "allowOffScript": {"type": "boolean"},
                "returnToStep": _id,
                "triggersAction": _nonempty,
            },
            "allOf": [
                {"if": {"properties": {"type": {"const": "saved_action"}}, "required": ["type"]},
                 "then": {"required": ["savedAction"]}},
                {"if": {"properties": {"type": {"const": "fixed"}}, "required": ["type"]},
                 "then": {"required": ["userPrompts"]}},
            ],
        },
    },
}
