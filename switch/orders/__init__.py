"""The orders domain of seeds/003: orders, operations, their statuses, cash flow.

Callers use :class:`OrdersService` with the typed requests of
:mod:`switch.orders.requests` and catch the errors of
:mod:`switch.orders.errors`; the REST front's parsing and views live in
``http_front.orders``. Everything else is reached through its module.
"""

from switch.orders.cashflow import Rates
from switch.orders.errors import (
    Declined,
    FailureType,
    Fraud,
    InvalidInput,
    IssuerError,
    OrderError,
    OrderNotFound,
    Problem,
    Rejected,
)
from switch.orders.model import Cashflow, Operation, OperationStatus, OperationType, Order, OrderStatus, Source
from switch.orders.service import OrdersService, Page

__all__ = [
    "Cashflow",
    "Declined",
    "FailureType",
    "Fraud",
    "InvalidInput",
    "IssuerError",
    "Operation",
    "OperationStatus",
    "OperationType",
    "Order",
    "OrderError",
    "OrderNotFound",
    "OrderStatus",
    "OrdersService",
    "Page",
    "Problem",
    "Rates",
    "Rejected",
    "Source",
]
