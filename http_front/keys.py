"""Typed state of the front's application and requests (``web.AppKey`` / ``web.RequestKey``)."""

from __future__ import annotations

from aiohttp import web

from http_front.config import FrontConfig
from http_front.ports import RuntimePort
from http_front.rates import ExchangeRates
from http_front.validation import RequestSchemas
from switch.store.projects import Project

__all__ = ["CONFIG", "PROJECT", "RATES", "RUNTIME", "SCHEMAS"]

RUNTIME = web.AppKey("runtime", RuntimePort)
CONFIG = web.AppKey("config", FrontConfig)
SCHEMAS = web.AppKey("schemas", RequestSchemas)
RATES = web.AppKey("rates", ExchangeRates)
#: The authenticated project of the request.
PROJECT = web.RequestKey("project", Project)
