"""ReportWriter adapters: report text drafted from an analysis result."""

from adapters.reports.template_writer import DraftText, TemplateReportWriter

__all__ = ["DraftText", "TemplateReportWriter"]
