"""What the machine at hand runs well: bf16 on this CPU, and the cores this process may use. The
command line fits a config's ``trainer.precision`` and ``data.num_workers`` to them, saying so in
one line each, and the benchmark leaves out what the CPU would only emulate. No torch import at
module level (the dispatcher imports nothing heavy)."""

from __future__ import annotations

import os

# ELECTRA_CPU_BF16=1 keeps a config's bf16 on a CPU without native bf16 (emulated: several times
# slower than fp32); ELECTRA_CPU_BF16=0 treats any CPU as one without (fp32 on CPU).
BF16_ENV = "ELECTRA_CPU_BF16"
# the CPU flags Linux lists for native bf16 arithmetic: x86 AVX512-BF16 or AMX, Arm's BF16
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bf16 natively, from the flags in ``cpuinfo`` (x86 ``flags``,
    Arm ``Features``). Where they cannot be read (not Linux) it is taken as yes: nothing changes."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return True
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & NATIVE_BF16_FLAGS)


def bf16_is_emulated() -> bool:
    """bf16 on this CPU would be emulated (and ``ELECTRA_CPU_BF16`` does not insist on it)."""
    setting = os.environ.get(BF16_ENV, "").strip()
    if setting == "1":
        return False
    return setting == "0" or not cpu_has_native_bf16()


def runs_on_cpu(accelerator) -> bool:
    """A trainer's ``accelerator`` setting (a name or an instance) that trains on the CPU."""
    if accelerator is not None and not isinstance(accelerator, str):
        return type(accelerator).__name__ == "CPUAccelerator"
    if accelerator == "cpu":
        return True
    if accelerator not in (None, "auto"):
        return False
    import torch

    return not (torch.cuda.is_available() or torch.backends.mps.is_available())


def fit_precision(precision, accelerator) -> tuple[str, str] | None:
    """``("32-true", why)`` for a bf16 ``precision`` that would train on a CPU that only emulates
    bf16; None when the precision stays."""
    if not str(precision).startswith("bf16") or not runs_on_cpu(accelerator):
        return None
    if not bf16_is_emulated():
        return None
    return "32-true", (
        f"note: trainer.precision {precision} -> 32-true: {no_bf16_reason()}; "
        f"{BF16_ENV}=1 keeps {precision}"
    )


def no_bf16_reason() -> str:
    """Why bf16 is left out here, in words (for a note where ``bf16_is_emulated()``)."""
    if os.environ.get(BF16_ENV, "").strip() == "0":
        return f"{BF16_ENV}=0 is set"
    return (
        "this CPU has no native bf16 (no AVX512-BF16/AMX), so bf16 would be emulated, several "
        "times slower than fp32"
    )


def usable_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask: a container's or ``taskset``'s
    limit, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fit_workers(num_workers: int, field: str = "data.num_workers") -> tuple[int, str] | None:
    """``(cores, why)`` when ``num_workers`` DataLoader workers are more than the cores this
    process may use; None when they fit."""
    cores = usable_cpus()
    if num_workers <= cores:
        return None
    return cores, (
        f"note: {field} {num_workers} -> {cores}: this process may use {cores} CPU "
        f"core{'s' if cores > 1 else ''}, and "
        "more workers than cores only compete with training for them"
    )
