"""Shape measurement helpers behind ``domain.metrics`` that are not part of the IBSI definitions."""

from domain.morphology.surface_area import estimated_surface_area_mm2

__all__ = ["estimated_surface_area_mm2"]
