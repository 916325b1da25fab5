"""Targeted data selection: pick pool examples that help a few target tasks (LESS, GIST, BIDS, TAROT), learned
influence predictors that stand in for an expensive oracle (MATES, NN-CIFT), and budgeted subset selectors
(DEALRec, IDEAL). Scorers return a train x target ``TargetedScores``; its ``to_frame`` feeds the budget Selector."""
