"""Reports: the comparison table, figures, report.md and a self-contained report.html."""

from .render import write_report
from .table import format_table, markdown_table

__all__ = ["format_table", "markdown_table", "write_report"]
