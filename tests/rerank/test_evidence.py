"""Parsing Prism-style answers and locating evidence in passages (pure functions)."""

from __future__ import annotations

import pytest

from agentrag.rerank.evidence import locate_span, parse_prism_output


def test_well_formed_yes() -> None:
    out = parse_prism_output(
        "yes\n<contribution>Names the author.</contribution>\n<evidence>Shakespeare wrote it.</evidence>"
    )
    assert out.verdict == "yes" and out.usable and not out.problems
    assert out.contribution == "Names the author." and out.evidence == "Shakespeare wrote it."


def test_plain_no() -> None:
    out = parse_prism_output("no")
    assert out.verdict == "no" and not out.usable and out.evidence == ""


def test_stop_string_removed_closing_tag_is_fine() -> None:
    # The server stopped on "</evidence>" and does not echo it.
    out = parse_prism_output("yes\n<contribution>C.</contribution>\n<evidence>E text", finished=True)
    assert out.usable and out.evidence == "E text" and not out.truncated


def test_cut_off_at_max_tokens_is_not_usable() -> None:
    out = parse_prism_output("yes\n<contribution>C.</contribution>\n<evidence>E te", finished=False)
    assert out.truncated and not out.usable and "cut off" in " ".join(out.problems)
    out = parse_prism_output("yes\n<contribution>still going", finished=False)
    assert out.truncated and out.evidence == ""


def test_missing_evidence_block() -> None:
    out = parse_prism_output("yes\n<contribution>Only this.</contribution>")
    assert not out.usable and "no <evidence> block" in out.problems


def test_missing_closing_contribution_stops_at_the_next_tag() -> None:
    out = parse_prism_output("yes\n<contribution>C without end\n<evidence>E.</evidence>")
    assert out.contribution == "C without end" and out.evidence == "E." and out.usable


def test_extra_blocks_are_joined_and_reported() -> None:
    out = parse_prism_output(
        "yes\n<evidence>A.</evidence>\n<evidence>B.</evidence>\n<contribution>C</contribution>"
    )
    assert out.evidence == "A.\nB." and out.contribution == "C"
    assert "2 evidence blocks" in out.problems


def test_think_block_prose_and_case_are_tolerated() -> None:
    text = (
        "<think>\nlet me see\n</think>\n\n**Yes**\n"
        "<Contribution>C.</Contribution> <EVIDENCE>E.</EVIDENCE> trailing"
    )
    out = parse_prism_output(text)
    assert out.verdict == "yes" and out.contribution == "C." and out.evidence == "E."


def test_no_verdict_but_evidence_is_still_read() -> None:
    out = parse_prism_output("Sure! <evidence>E.</evidence>")
    assert out.verdict is None and out.usable and "no leading yes/no" in out.problems


def test_no_with_evidence_is_contradictory() -> None:
    out = parse_prism_output("no\n<evidence>E.</evidence>")
    assert not out.usable and 'evidence after a "no"' in out.problems


def test_end_of_turn_marker_ends_an_unclosed_block() -> None:
    out = parse_prism_output("yes\n<contribution>C</contribution><evidence>E.<|im_end|>junk")
    assert out.evidence == "E."


def test_empty_and_garbage() -> None:
    assert not parse_prism_output("").usable
    assert not parse_prism_output("<evidence>   </evidence>").usable
    assert parse_prism_output("yesterday <evidence>x</evidence>").verdict is None


@pytest.mark.parametrize(
    ("needle", "hay", "span"),
    [
        ("quick brown", "The quick brown fox.", (4, 15)),
        ("quick  brown\nfox", "The quick brown fox.", (4, 19)),
        ("quick brown fox", "The quick\n   brown\tfox.", (4, 22)),
        ("  fox.  ", "The quick brown fox.", (16, 20)),
        ("purple", "The quick brown fox.", None),
        ("", "anything", None),
        ("Quick brown", "The quick brown fox.", None),  # case matters: evidence must be the text itself
    ],
)
def test_locate_span(needle: str, hay: str, span: tuple[int, int] | None) -> None:
    got = locate_span(needle, hay)
    assert got == span
    if got is not None:
        assert " ".join(hay[got[0] : got[1]].split()) == " ".join(needle.split())
