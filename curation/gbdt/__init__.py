"""Influence for gradient-boosted trees: BoostIn, TREX and LeafInfluence over a library-neutral ``TreeEnsemble``
(LightGBM adapter, text-format persistence, MLflow LightGBM flavour), scored through ``curation.tree_scorers``."""
