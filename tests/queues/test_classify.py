"""Failure-reason classification: default categories, configured rules first, rule parsing."""

from __future__ import annotations

import json

import pytest

from workermon_queues.classify import DEFAULT_RULES, FailureClassifier, parse_rules


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("TimeoutError: Navigation timeout of 30000 ms exceeded", "timeout"),
        ("Job timed out after 60s", "timeout"),
        ("connect ETIMEDOUT 10.0.0.1:443", "timeout"),
        ("context deadline exceeded", "timeout"),
        ("connect ECONNREFUSED 127.0.0.1:5432", "network"),
        ("read ECONNRESET", "network"),
        ("getaddrinfo ENOTFOUND api.example.com", "network"),
        ("socket hang up", "network"),
        ("net::ERR_NAME_NOT_RESOLVED at https://x", "network"),
        ("Request failed with status code 429", "rate_limit"),
        ("Rate limit exceeded, retry later", "rate_limit"),
        ("Too Many Requests", "rate_limit"),
        ("Request failed with status code 401", "auth"),
        ("403 Forbidden", "auth"),
        ("Unauthorized", "auth"),
        ("invalid token", "auth"),
        ("Request failed with status code 400", "validation"),
        ("HTTP 422 Unprocessable Entity", "validation"),
        ("ValidationError: email is required", "validation"),
        ("data does not match schema", "validation"),
        ("Invalid URL", "validation"),
        ("Protocol error (Target.createTarget): Target closed.", "browser"),
        ("Page crashed!", "browser"),
        ("Failed to launch the browser process", "browser"),
        ("playwright: chromium exited", "browser"),
        ("Cannot read properties of undefined (reading 'id')", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        ("runtime output was empty", "unknown"),  # "time out" only as words
        ("order 14290 not found", "unknown"),  # status codes only as whole numbers
    ],
)
def test_default_rules(reason: str | None, category: str) -> None:
    assert FailureClassifier().classify(reason) == category


def test_configured_rules_come_before_defaults() -> None:
    rules = parse_rules(
        json.dumps(
            [
                {"pattern": "stripe", "category": "payments"},
                {"pattern": r"status code 429", "category": "upstream_busy"},
            ]
        )
    )
    classifier = FailureClassifier(rules)
    assert classifier.classify("Stripe card_declined") == "payments"
    assert classifier.classify("Request failed with status code 429") == "upstream_busy"
    assert classifier.classify("socket hang up") == "network"
    assert classifier.categories[:2] == ["payments", "upstream_busy"]
    assert classifier.categories[-1] == "unknown"
    assert FailureClassifier(rules, defaults=False).classify("socket hang up") == "unknown"
    # Answers are cached; the cache must not change them.
    assert [classifier.classify("Stripe x") for _ in range(3)] == ["payments"] * 3


def test_every_default_category() -> None:
    assert {c for _, c in DEFAULT_RULES} == {
        "timeout",
        "network",
        "rate_limit",
        "auth",
        "validation",
        "browser",
    }


def test_parse_rules_accepts_blank_and_empty() -> None:
    assert parse_rules("") == []
    assert parse_rules("  ") == []
    assert parse_rules("[]") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"pattern": "x", "category": "y"}', "must be a JSON list"),
        ('[{"pattern": "x", "category": "ok"}, "nope"]', r"\[1\]: expected an object"),
        ('[{"pattern": "(", "category": "y"}]', r"\[0\]: invalid regex"),
        ('[{"pattern": "", "category": "y"}]', r"\[0\]: \"pattern\" must be a non-empty string"),
        ('[{"pattern": "x"}]', r"\[0\]: \"category\" must be a string"),
        ('[{"pattern": "x", "category": "has space"}]', r"\[0\]: category 'has space'"),
        ('[{"pattern": "x", "category": "y", "extra": 1}]', r"\[0\]: unexpected key"),
    ],
)
def test_parse_rules_names_the_bad_entry(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rules(text)


def test_classifier_rejects_bad_rules() -> None:
    with pytest.raises(ValueError, match="rule 0: invalid regex"):
        FailureClassifier([("(", "x")])
