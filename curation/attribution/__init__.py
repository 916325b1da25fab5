"""Training-data attribution: scorers (TracIn, influence functions up to EK-FAC, TRAK) over any ModelAdapter."""
