"""IBSI morphological features of one lesion mask (the type; computation comes with analysis).

Feature definitions follow the IBSI reference manual (Zwanenburg et al., Radiology 2020;
arXiv 1612.07003). All lengths are in mm, areas in mm2 and volumes in mm3, computed in the
patient's physical space with the real (possibly anisotropic) voxel spacing.
"""

from __future__ import annotations

import msgspec


class TumorMetrics(msgspec.Struct, frozen=True, kw_only=True):
    volume_mesh_mm3: float
    """Morph.volume (RNU0): volume enclosed by the marching-cubes mesh."""
    volume_voxel_mm3: float
    """Morph.approx.volume (YEKZ): voxel count times voxel volume."""
    surface_area_mm2: float
    """Morph.area.mesh (C0JK)."""
    surface_to_volume_ratio: float
    """Morph.av (2PR5), in 1/mm."""
    compactness_1: float
    """Morph.comp.1 (SKGS)."""
    compactness_2: float
    """Morph.comp.2 (BQWJ)."""
    spherical_disproportion: float
    """Morph.sph.dispr (KRCK)."""
    sphericity: float
    """Morph.sphericity (QCFX)."""
    asphericity: float
    """Morph.asphericity (25C7)."""
    centre_of_mass_shift_mm: float
    """Morph.com (KLMA)."""
    maximum_3d_diameter_mm: float
    """Morph.diam (L0JK)."""
    major_axis_length_mm: float
    """Morph.pca.maj.axis (TDIC)."""
    minor_axis_length_mm: float
    """Morph.pca.min.axis (P9VJ)."""
    least_axis_length_mm: float
    """Morph.pca.least.axis (7J51)."""
    elongation: float
    """Morph.pca.elongation (Q3CK)."""
    flatness: float
    """Morph.pca.flatness (N17B)."""
    centre_of_mass_mm: tuple[float, float, float]
    """Intensity-free centre of mass of the mask in patient coordinates (x, y, z)."""

    # The seed systems' names, kept so their clients read our results unchanged.
    @property
    def volume_mm3(self) -> float:
        return self.volume_mesh_mm3

    @property
    def diameter_mm(self) -> float:
        return self.maximum_3d_diameter_mm

    @property
    def compactness(self) -> float:
        return self.compactness_2
