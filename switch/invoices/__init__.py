"""Invoices of seeds/002 (issue 12): payment services as data, invoices paid through an order on the hosted page."""
