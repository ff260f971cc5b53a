"""Meta-learners on functional parameters, created by name.

>>> from core.meta import create_learner, list_learners, Task
>>> learner = create_learner("maml", model, n_way=5, inner_lr=0.4, inner_steps=1)
>>> loss, metrics = learner.meta_loss([Task(support_x, support_y, query_x, query_y)])
>>> adapted = learner.adapt(support_x, support_y, steps=10)
>>> probs = adapted.predict_proba(query_x)  # (B, N), rows sum to 1
"""

# Explicit imports register every learner family: a frozen bundle sees exactly these modules, so the
# installed app knows the same learners as the source tree.
from core.meta import finetune, incontext, maml, protonet  # noqa: F401
from core.meta.base import AdaptedClassifier, MetaLearner, Task
from core.meta.registry import create_learner, list_learners, register_learner


def learner_from_config(config: dict, model: "object") -> MetaLearner:
    """Rebuild a learner from :meth:`MetaLearner.config` output around ``model``."""
    options = dict(config)
    name = options.pop("name")
    return create_learner(name, model, **options)  # type: ignore[arg-type]


__all__ = [
    "AdaptedClassifier",
    "MetaLearner",
    "Task",
    "create_learner",
    "learner_from_config",
    "list_learners",
    "register_learner",
]
