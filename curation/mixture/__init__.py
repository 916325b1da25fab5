"""Domain mixtures: TiKMiX group influence per (validation task, domain), TiKMiX-D, TiKMiX-M and a RegMix baseline.

Sign convention everywhere in this package: an influence ``S[i, j] > 0`` means up-weighting domain ``j`` is
predicted to *lower* validation task ``i``'s loss (a helpful domain); larger is better.
"""
