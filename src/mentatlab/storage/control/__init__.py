"""The control store: orgs, projects, API keys, pricing and alerting (SQLAlchemy, Alembic)."""

from __future__ import annotations

from mentatlab.storage.control.alerts import (
    AlertDeliveryInfo,
    AlertInfo,
    AlertRecords,
    AlertRuleInfo,
    AlertRuleSpec,
    DueDelivery,
    NewAlert,
)
from mentatlab.storage.control.identity import Identities, MemberInfo, SessionInfo, UserInfo
from mentatlab.storage.control.migrate import migrate_control_store
from mentatlab.storage.control.store import (
    ApiKeyInfo,
    ApiKeyScope,
    ControlStore,
    IssuedApiKey,
    OrgInfo,
    ProjectInfo,
    hash_api_key,
)
from mentatlab.storage.control.watermarks import NodeWatermarks

__all__ = [
    "AlertDeliveryInfo",
    "AlertInfo",
    "AlertRecords",
    "AlertRuleInfo",
    "AlertRuleSpec",
    "Identities",
    "MemberInfo",
    "SessionInfo",
    "UserInfo",
    "DueDelivery",
    "NewAlert",
    "NodeWatermarks",
    "ApiKeyInfo",
    "ApiKeyScope",
    "ControlStore",
    "IssuedApiKey",
    "OrgInfo",
    "ProjectInfo",
    "hash_api_key",
    "migrate_control_store",
]
