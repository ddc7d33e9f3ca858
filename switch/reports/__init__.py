"""Reports over a project's books: the daily CSV (issue 12 item 8), for the command line and the portal."""

from switch.reports.daily import COLUMNS, DailyReport, csv_text, daily_report, day_bounds, write_csv, zone

__all__ = ["COLUMNS", "DailyReport", "csv_text", "daily_report", "day_bounds", "write_csv", "zone"]
