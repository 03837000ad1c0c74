"""Per-step statistics of memento.torch, readable and printable."""

from __future__ import annotations

from dataclasses import dataclass

from memento.bytes import format_bytes


@dataclass
class StepStats:
    """How one step ran (measured) and the plan memento holds for the next (predicted)."""

    step: int  #: 1-based, per Runtime
    phase: str  #: "observed" (watched, planned from) or "planned" (the plan applied)
    new_plan: bool  #: a plan was made at this step's end
    budget: int  #: bytes
    peak_bytes: int  #: measured peak (see Runtime.peak_source)
    seconds: float  #: wall time of the step, from its first forward to its end
    tracked: int  #: saved storages memento tracked
    tracked_bytes: int
    offloaded: int  #: storages copied to the pinned host pool in this step
    offloaded_bytes: int
    discarded: int  #: storages dropped to be recomputed
    recomputes: int  #: regions rerun
    recompute_seconds: float
    stall_seconds: float  #: time the step waited for copies back
    plan_fits: bool  #: the plan's predicted peak is within the budget
    plan_kept: int
    plan_offloaded: int
    plan_recomputed: int
    plan_offloaded_bytes: int
    plan_recomputed_bytes: int
    predicted_peak: int
    predicted_extra_seconds: float
    plan_cpu_seconds: float
    margin: float  #: the plan's margin below the budget (widened after a step went over)
    retained: int = 0  #: saved tensors that outlived the step (brought back at its end)

    def __str__(self) -> str:
        line = (
            f"step {self.step} ({self.phase}): peak {format_bytes(self.peak_bytes)} of "
            f"{format_bytes(self.budget)}, {self.seconds * 1e3:.1f} ms; tracked {self.tracked} "
            f"({format_bytes(self.tracked_bytes)}), offloaded {self.offloaded} "
            f"({format_bytes(self.offloaded_bytes)}), discarded {self.discarded}, "
            f"{self.recomputes} recomputes ({self.recompute_seconds * 1e3:.1f} ms), "
            f"stalls {self.stall_seconds * 1e3:.1f} ms"
        )
        if self.new_plan:
            line += (
                f"; new plan: keep {self.plan_kept}, offload {self.plan_offloaded} "
                f"({format_bytes(self.plan_offloaded_bytes)}), recompute {self.plan_recomputed} "
                f"({format_bytes(self.plan_recomputed_bytes)}), predicted peak "
                f"{format_bytes(self.predicted_peak)}, +{self.predicted_extra_seconds * 1e3:.1f} "
                f"ms, planned in {self.plan_cpu_seconds * 1e3:.1f} ms"
                + ("" if self.plan_fits else " (DOES NOT FIT)")
            )
        return line
