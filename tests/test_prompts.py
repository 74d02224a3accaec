"""The prompt loader: discovery, header checks, strict rendering, chat splitting, shipped templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrag.errors import PromptError
from agentrag.prompts import PROMPTS_ENV, load_prompt, prompt_dirs

REPO_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
SHIPPED = sorted(p.stem for p in REPO_PROMPTS.glob("*.jinja"))


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.jinja"
    path.write_text(text)
    return path


# Values shaped like what the nodes pass, so a template that walks a structure is exercised.
_HIT = {"id": "d1#0", "title": "Aspirin", "text": "Aspirin lowers fever. " * 40}
SAMPLES: dict[str, object] = {
    "passages": ["first passage", "second passage"],
    "hits": [_HIT, {**_HIT, "title": ""}],
    "evidence": [_HIT],
    "history": [{"question": "What is aspirin?", "answer": "A drug [1]."}],
    "queries": ["aspirin fever", "salicylate"],
    "previous": ["aspirin"],
    "tried": ["aspirin"],
    "examples": [{"query": "q", "document": "d", "answer": "yes"}],
    "variants": 2,
    "max_queries": 3,
}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_template_loads_and_renders(name: str) -> None:
    tpl = load_prompt(name)
    assert tpl.path.parent == REPO_PROMPTS
    values = {v: SAMPLES.get(v, "x") for v in tpl.required}
    text = tpl.render(**values)
    assert text.strip()
    if tpl.kind == "chat":
        roles = [m["role"] for m in tpl.messages(**values)]
        assert roles[0] == "system" and "user" in roles


def test_shipped_set_covers_the_roles() -> None:
    assert {
        "rerank_prism",
        "udcg_abstain",
        "answer_from_context",
        "judge_relevance",
        "judge_correctness",
    } <= set(SHIPPED)


def test_prism_prompt_has_the_exact_format_and_a_shared_prefix() -> None:
    tpl = load_prompt("rerank_prism")
    a = tpl.render(query="Q1?", document="first doc")
    b = tpl.render(query="Q1?", document="second doc")
    assert a.startswith("<|im_start|>system\n")
    assert a.endswith(
        "<Query>: Q1?\n<Document>: first doc<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert a.count("<Instruct>: ") == 1
    # Everything up to the document is shared between candidates of one query (prefix cache).
    shared = a[: a.index("<Document>: ") + len("<Document>: ")]
    assert b.startswith(shared)
    # The instruction is ours, overridable, and the think block can be changed.
    c = tpl.render(query="Q", document="D", instruction="Custom rule.", think="<think>\n\n</think>\n")
    assert "<Instruct>: Custom rule.\n<Query>: Q\n" in c and c.endswith("</think>\n")


def test_prism_examples_become_earlier_turns() -> None:
    tpl = load_prompt("rerank_prism")
    text = tpl.render(query="Q", document="D", examples=[{"query": "eq", "document": "ed", "answer": "no"}])
    assert text.count("<|im_start|>user\n<Instruct>: ") == 2
    assert (
        "<Query>: eq\n<Document>: ed<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nno<|im_end|>\n"
        in text
    )
    assert text.index("<Query>: eq") < text.index("<Query>: Q\n")


def test_missing_and_unknown_variables_are_errors() -> None:
    tpl = load_prompt("udcg_abstain")
    with pytest.raises(PromptError, match="needs"):
        tpl.render(question="q")
    with pytest.raises(PromptError, match="does not declare"):
        tpl.render(question="q", passage="p", pasage="typo")


def test_optional_defaults_apply(tmp_path: Path) -> None:
    write(
        tmp_path,
        "greet",
        '{#-\nrequired: [name]\noptional: {greeting: "Hello"}\n-#}\n{{ greeting }}, {{ name }}!',
    )
    tpl = load_prompt("greet", dirs=[tmp_path])
    assert tpl.render(name="Ada") == "Hello, Ada!"
    assert tpl.render(name="Ada", greeting="Hi") == "Hi, Ada!"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hello {{ name }}", "no header"),
        ("{#-\nrequired: [name]\n-#}\nHello {{ nme }}", "undeclared"),
        ("{#-\nrequired: [name, unused]\n-#}\nHello {{ name }}", "never uses"),
        ("{#-\nrequired: [name]\nkind: weird\n-#}\n{{ name }}", "raw or chat"),
        ("{#-\nrequired: [name\n-#}\n{{ name }}", "not valid YAML"),
        ("{#-\nrequired: [name]\n-#}\n{{ name ", "line"),
        ("{#-\nrequired: [a]\noptional: {a: 1}\n-#}\n{{ a }}", "both required and optional"),
    ],
)
def test_bad_templates_fail_at_load(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "bad", text)
    with pytest.raises(PromptError, match=message):
        load_prompt("bad", dirs=[tmp_path])


def test_strict_undefined_catches_missing_attributes(tmp_path: Path) -> None:
    write(tmp_path, "attr", "{#-\nrequired: [item]\n-#}\n{{ item.title }}")
    with pytest.raises(PromptError, match="rendering"):
        load_prompt("attr", dirs=[tmp_path]).render(item={"name": "x"})


def test_not_found_names_the_directories(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="no prompt template 'nope'") as info:
        load_prompt("nope", dirs=[tmp_path])
    assert "prompts/" in info.value.hint


def test_search_order_user_dirs_then_env_then_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine, env = tmp_path / "mine", tmp_path / "env"
    write(env, "udcg_abstain", "{#-\nrequired: [question]\n-#}\nenv {{ question }}")
    monkeypatch.setenv(PROMPTS_ENV, str(env))
    assert prompt_dirs()[0] == env
    assert load_prompt("udcg_abstain").render(question="q") == "env q"
    write(mine, "udcg_abstain", "{#-\nrequired: [question]\n-#}\nmine {{ question }}")
    assert load_prompt("udcg_abstain", dirs=[mine]).render(question="q") == "mine q"
    assert prompt_dirs([mine])[:2] == [mine, env]
    assert REPO_PROMPTS in prompt_dirs()


def test_chat_split(tmp_path: Path) -> None:
    write(
        tmp_path,
        "conv",
        "{#-\nkind: chat\nrequired: [q]\n-#}\n"
        "<<system>>\nBe brief.\n<<user>>\n{{ q }}\n\nThanks.\n<<assistant>>\nSure\n",
    )
    msgs = load_prompt("conv", dirs=[tmp_path]).messages(q="Why?")
    assert msgs == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why?\n\nThanks."},
        {"role": "assistant", "content": "Sure"},
    ]
    write(tmp_path, "raw", "{#-\nrequired: [q]\n-#}\n{{ q }}")
    with pytest.raises(PromptError, match="not chat"):
        load_prompt("raw", dirs=[tmp_path]).messages(q="x")
    write(tmp_path, "nochat", "{#-\nkind: chat\nrequired: [q]\n-#}\nstray {{ q }}\n<<user>>\nhi")
    with pytest.raises(PromptError, match="before its first"):
        load_prompt("nochat", dirs=[tmp_path]).messages(q="x")


def test_an_edited_template_is_reread(tmp_path: Path) -> None:
    path = write(tmp_path, "live", "{#-\nrequired: [q]\n-#}\nv1 {{ q }}")
    assert load_prompt("live", dirs=[tmp_path]).render(q="x") == "v1 x"
    path.write_text("{#-\nrequired: [q]\n-#}\nv2 {{ q }}")
    import os

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert load_prompt("live", dirs=[tmp_path]).render(q="x") == "v2 x"


def test_an_installed_wheel_finds_its_own_copy(tmp_path: Path) -> None:
    # The wheel carries prompts/ as agentrag/_data/prompts (pyproject force-include) and has no
    # repository around it: lay the package out that way and load from a fresh interpreter.
    import shutil
    import subprocess
    import sys

    package = REPO_PROMPTS.parent / "agentrag"
    site = tmp_path / "site"
    shutil.copytree(package, site / "agentrag", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_PROMPTS, site / "agentrag" / "_data" / "prompts")
    code = "from agentrag.prompts import load_prompt; print(load_prompt('udcg_abstain').path)"
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert Path(out.stdout.strip()) == site / "agentrag" / "_data" / "prompts" / "udcg_abstain.jinja"
