"""Unlearning: deletion requests, unlearning operators, verification that deleted data was forgotten, and
worst-case forget sets.

``requests`` validates a forget request against the training table; ``operators`` produces an unlearned model
(exact retrain, gradient ascent / difference, IAU); ``verify`` holds the ``UnlearningCheck`` (MIA AUC vs holdout,
PrivLeak, KS forget quality, utility, REMIND) with its thresholds; ``worst_case`` finds the hardest forget set for
an operator (Challenging Forgets).
"""
