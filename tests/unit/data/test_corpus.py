"""The demo corpus built from this environment: unique ids even when a distribution lists a file twice."""

from curation.data import corpus
from curation.data.corpus import CorpusConfig, build_corpus


def test_a_source_listed_twice_gives_one_set_of_passages(monkeypatch) -> None:
    text = "Permission is hereby granted, free of charge, to any person obtaining a copy. " * 4
    monkeypatch.setitem(corpus.SOURCES, "licenses", lambda: iter([("ray:licenses/LICENSE", text)] * 2))
    frame = build_corpus(CorpusConfig(domains=("licenses",), passage_chars=64))
    assert frame.height == len(corpus.passages(text, 64))
    assert frame["example_id"].is_unique().all()


def test_corpus_of_this_environment_passes_its_own_uniqueness_contract() -> None:
    frame = build_corpus(CorpusConfig(max_passages_per_domain=10**6))
    assert frame["example_id"].is_unique().all() and frame.height > 0
