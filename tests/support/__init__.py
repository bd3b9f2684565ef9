"""Helpers and rigs shared by several test modules (plain functions and classes, no fixtures).

The names most tests import are re-exported here; the rigs (:mod:`tests.support.faults`,
:mod:`tests.support.hygiene` and :mod:`tests.support.hygiene_stack`, :mod:`tests.support.s3_notifications`) are
imported from their own modules, so a test pays only for the rig it uses.
"""

from __future__ import annotations

from tests.support.clock import Clock
from tests.support.gateway import api_gateway, app_routes, gateway_event, proxy_post, proxy_routes
from tests.support.iam import existing_role, existing_user

__all__ = [
    "Clock",
    "api_gateway",
    "app_routes",
    "existing_role",
    "existing_user",
    "gateway_event",
    "proxy_post",
    "proxy_routes",
]
