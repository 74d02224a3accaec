"""The answer guard: markers checked as they stream, loops cut, abstention recognised."""

from __future__ import annotations

import pytest

from agentrag.nodes.generate import (
    ABSTAIN,
    AnswerGuard,
    attribute_uncited,
    drop_abstention,
    is_abstention,
    last_complete_sentence,
    repetition_start,
)
from agentrag.types import Evidence


def stream(guard: AnswerGuard, text: str, step: int = 3) -> str:
    shown = ""
    for i in range(0, len(text), step):
        shown += guard.feed(text[i : i + step])
        if guard.looping:
            break
    return shown + guard.finish()


def test_markers_beyond_the_passages_are_never_shown() -> None:
    guard = AnswerGuard(3)
    shown = stream(guard, "Two years [1]. Defects [2, 9]. Also [6] [7] [8] [9].")
    assert shown == guard.text == "Two years [1]. Defects [2]. Also    ."
    assert "[6]" not in shown and "9" not in shown


def test_brackets_that_are_not_markers_pass() -> None:
    guard = AnswerGuard(2)
    assert stream(guard, "Use [Ctrl] and [a long bracketed note that runs on] now [2].") == (
        "Use [Ctrl] and [a long bracketed note that runs on] now [2]."
    )


def test_a_repeated_sentence_stops_the_stream() -> None:
    guard = AnswerGuard(2)
    text = "It lasts two years [1]. It covers defects [2]. It covers defects [2]. It covers defects [2]."
    stream(guard, text)
    assert guard.looping
    assert guard.text == "It lasts two years [1]. It covers defects [2]."


def test_a_marker_loop_stops_the_stream() -> None:
    guard = AnswerGuard(4)
    stream(guard, "Two years [1] " + "[1][2][3][4] " * 10)
    assert guard.looping and guard.text.count("[1][2][3][4]") <= 2


def test_no_false_loop_on_ordinary_text() -> None:
    for text in [
        "The population is 1,000,000,000 people [1].",
        "Yes. Yes. Yes.",
        "The K2 has a two-year warranty [1]. The K2 Pro has a three-year warranty [2].",
    ]:
        assert repetition_start(text) is None, text


def test_cut_answers_end_at_a_sentence() -> None:
    assert last_complete_sentence("Two years [1]. It covers manufact") == "Two years [1]."
    assert last_complete_sentence("Paris [1]") == "Paris [1]"


def test_abstention() -> None:
    assert is_abstention(ABSTAIN) and is_abstention("") and is_abstention(f"{ABSTAIN} [1]")
    assert not is_abstention("Two years [1].")
    assert drop_abstention(f"Two years [1]. {ABSTAIN}") == "Two years [1]."


def test_uncited_sentences_get_the_marker_of_their_passage() -> None:
    context = [
        Evidence(
            passage_id="a", title="Animorphs", text="Animorphs is a science fantasy series for young adults."
        ),
        Evidence(passage_id="b", text="The Hork-Bajir Chronicles is a companion book."),
    ]
    text, added = attribute_uncited(
        "Animorphs is a science fantasy young adult series. It is a companion book [2]. Yes.", context
    )
    assert text == "Animorphs is a science fantasy young adult series [1]. It is a companion book [2]. Yes."
    assert added == 1
    # Too little overlap: left uncited rather than guessed.
    assert attribute_uncited("Paris is the capital of France.", context) == (
        "Paris is the capital of France.",
        0,
    )
    assert attribute_uncited("The Hork-Bajir Chronicles", context)[0] == "The Hork-Bajir Chronicles [2]"


@pytest.mark.vllm
async def test_a_stream_closed_early_is_still_counted(llm) -> None:
    # The repetition guard closes the stream mid-answer; the call must stay on the books.
    stream = llm.stream([{"role": "user", "content": "Count from 1 to 50."}], max_tokens=40)
    async for _ in stream:
        break
    await stream.aclose()
    assert llm.usage.calls == 1 and llm.usage.completion_tokens >= 1
