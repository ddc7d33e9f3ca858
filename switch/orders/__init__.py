"""The orders domain of seeds/003: orders, operations, their statuses, cash flow and JSON views.

The HTTP layer calls :class:`OrdersService` and the two views; everything
else is reached through its module.
"""

from switch.orders.cashflow import Rates
from switch.orders.errors import FailureType, OrderError, OrderNotFound
from switch.orders.model import Cashflow, Operation, OperationStatus, OperationType, Order, OrderStatus, Source
from switch.orders.service import OrdersService, Page
from switch.orders.views import FULL_EXPAND, OPERATION_EXPANDS, ORDER_EXPANDS, operation_view, order_view, parse_expand

__all__ = [
    "FULL_EXPAND",
    "OPERATION_EXPANDS",
    "ORDER_EXPANDS",
    "Cashflow",
    "FailureType",
    "Operation",
    "OperationStatus",
    "OperationType",
    "Order",
    "OrderError",
    "OrderNotFound",
    "OrderStatus",
    "OrdersService",
    "Page",
    "Rates",
    "Source",
    "operation_view",
    "order_view",
    "parse_expand",
]
