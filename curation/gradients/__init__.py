"""Per-example gradient features (torch.func), random projections and the resumable GradientStore."""

from curation.gradients.featurize import FeaturizeConfig, featurize, featurize_shard, open_store
from curation.gradients.per_example import per_example_gradients, tracked_parameters
from curation.gradients.projection import ProjectionConfig, Projector
from curation.gradients.store import GradientStore

__all__ = [
    "FeaturizeConfig",
    "GradientStore",
    "ProjectionConfig",
    "Projector",
    "featurize",
    "featurize_shard",
    "open_store",
    "per_example_gradients",
    "tracked_parameters",
]
