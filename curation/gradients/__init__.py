"""Per-example gradient features (torch.func), random projections and the resumable GradientStore."""

from curation.gradients.per_example import per_example_gradients, tracked_parameters

__all__ = ["per_example_gradients", "tracked_parameters"]
