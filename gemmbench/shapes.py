"""Former home of the spec (`gemmbench.spec`), kept so that plugins' `from gemmbench.shapes import Case` works.

New code imports from `gemmbench.spec` (docs/plugins.md).
"""

from gemmbench.spec.cases import Case, GemmSpec, GroupMember, GroupSpec
from gemmbench.spec.parse import DEFAULT_M, build_cases, parse_m_list, parse_shape
from gemmbench.spec.presets import DEFAULT_PRESET, Preset, load_config, load_preset, preset_names, select_gemms

__all__ = [
    "DEFAULT_M",
    "DEFAULT_PRESET",
    "Case",
    "GemmSpec",
    "GroupMember",
    "GroupSpec",
    "Preset",
    "build_cases",
    "load_config",
    "load_preset",
    "parse_m_list",
    "parse_shape",
    "preset_names",
    "select_gemms",
]
