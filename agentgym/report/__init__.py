"""Views of a run after the fact: terminal tables (``agentgym inspect``) and the self-contained
HTML report (``agentgym view``). :mod:`agentgym.report.model` computes what both show."""

from agentgym.report.html import write_report
from agentgym.report.model import Entry, GroupCredit, group_credits, read_entries

__all__ = ["Entry", "GroupCredit", "group_credits", "read_entries", "write_report"]
