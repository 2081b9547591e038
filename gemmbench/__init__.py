"""gemmbench: which way of computing a bf16 x bf16 -> fp32 GEMM is right and fastest on this GPU.

The Python API, for notebooks and scripts (nothing here prints):

    import gemmbench
    run = gemmbench.sweep(presets=["deepseek-v3"], m=[1, 16, 128])   # a Run; saves nothing by default
    frame = run.to_frame()                                              # pandas, one row per (case, backend)
    saved = gemmbench.load_run("results/20261128T043913Z_nvidia-h200.json")
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from gemmbench.version import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from gemmbench.records import Run


def load_run(path: str | Path) -> Run:
    """A saved run file (JSON) or CSV export; `.to_frame()` gives its rows as a pandas DataFrame."""
    from gemmbench.records.runfile import load_run as load

    return load(path)


class _Sweep:
    """Run a sweep and return it, printing nothing. Takes the options of `gemmbench sweep`, by keyword:

    presets, configs, shapes ("MxNxK" strings), roles: what to run (default: the deepseek-v3 preset);
    m: a list of ints or a string such as "1:16384:x2"; backends: names (default: every real backend);
    device: "auto", "cuda" or "cpu"; hot; target_ci_pct; budget_ms; warmup_ms; seed; kernels (the
    profiler pass, default True); plugins: modules or .py files with backends of your own
    (docs/plugins.md); out_dir: save the run file there (default: not saved);
    remeasure_roofline; context: "none" (default), or one producer's name or several (a list, or a
    comma-separated string: "flashinfer_fused_add_rmsnorm_pdl", "norm", ...; `gemmbench list` names them)
    to time each GEMM in its layer too, right after the kernel that writes its input, each layer row
    holding the time per layer (docs/context.md); on_warning: called with each sweep-wide warning
    (default: warnings.warn).

    Bad options raise gemmbench.errors.GemmbenchError. A KeyboardInterrupt ends the sweep early: the
    run returned then holds the rows that finished.
    """

    def __call__(self, **options) -> Run:
        import warnings

        from gemmbench.errors import UsageError
        from gemmbench.measure.session import GPU_ONLY_OPTIONS, SweepCallbacks, ignored_here, plan_sweep, run_session

        signature = self.__signature__
        try:
            signature.bind(**options)
        except TypeError as exc:
            raise UsageError(f"gemmbench.sweep: {exc}", "see help(gemmbench.sweep) for its options") from None
        on_warning = options.pop("on_warning", None) or (lambda message: warnings.warn(message, stacklevel=2))
        plan = plan_sweep(**options)
        given = [  # of the options a GPU alone acts on (scalars all), those given another value than the default
            name for name in GPU_ONLY_OPTIONS if name in options and options[name] != signature.parameters[name].default
        ]
        for name, why in ignored_here(plan, given).items():
            on_warning(f"{name} has no effect on the CPU: {why}")
        return run_session(plan, SweepCallbacks(warn=on_warning)).run

    @property
    def __signature__(self) -> inspect.Signature:
        """plan_sweep's options, keyword only, and on_warning: completion and help in a notebook, with the
        defaults defined once (in plan_sweep), and torch imported only when asked."""
        from gemmbench.measure.session import plan_sweep

        options = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(plan_sweep).parameters.values()
            if p.name != "time_calls"  # `gemmbench kernels`' check-only pass, not the API's
        ]
        on_warning = inspect.Parameter("on_warning", inspect.Parameter.KEYWORD_ONLY, default=None)
        return inspect.Signature([*options, on_warning], return_annotation="Run")


sweep = _Sweep()


__all__ = ["__version__", "load_run", "sweep"]
