"""The OpenAI API as the official `openai` client sees it (sync, async, streaming): models, completions and chat
completions, served through vLLM's own serving layer (embeddings, from the DPR encoders: test_rag_http.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import openai
import pytest

from tandem.settings import Settings
from tests.conftest import ADMIN_KEY

FRANCE = "The capital of France is"
# A question whose first token the model does not find close to a tie: vLLM computes in bf16.
ASK_PARIS = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def client(serve_app: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{serve_app}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def model(settings: Settings) -> str:
    return settings.llm_name


def test_models_list_the_base_model(client: openai.OpenAI, model: str) -> None:
    models = client.models.list().data
    assert models[0].id == model and models[0].created > 0
    assert all(m.id.startswith(f"{model}:") and m.parent == model for m in models[1:])


def test_a_completion_knows_a_fact_and_counts_its_tokens(client: openai.OpenAI, model: str) -> None:
    # Garbage weights (a botched GGUF conversion) would not continue this with Paris.
    done = client.completions.create(model=model, prompt=FRANCE, max_tokens=8, temperature=0)
    assert done.object == "text_completion" and done.model == model and "Paris" in done.choices[0].text
    assert done.usage.prompt_tokens == 5 and 1 <= done.usage.completion_tokens <= 8
    assert done.choices[0].finish_reason in ("length", "stop")


def test_prompts_n_seed_and_logprobs(client: openai.OpenAI, model: str) -> None:
    done = client.completions.create(model=model, prompt=["One, two, three,", "Monday, Tuesday,"], max_tokens=3,
                                     n=2, temperature=0.7, seed=1, logprobs=2)
    assert sorted(c.index for c in done.choices) == [0, 1, 2, 3]
    for c in done.choices:
        assert len(c.logprobs.tokens) == len(c.logprobs.token_logprobs) == len(c.logprobs.top_logprobs) >= 1
        assert all(lp <= 0 for lp in c.logprobs.token_logprobs)
        assert all(1 <= len(top) <= 3 for top in c.logprobs.top_logprobs)  # top 2, and the chosen token
    again = client.completions.create(model=model, prompt=["One, two, three,", "Monday, Tuesday,"], max_tokens=3,
                                      n=2, temperature=0.7, seed=1)
    assert [c.text for c in again.choices] == [c.text for c in done.choices]


def test_stop_ends_the_text_before_the_stop_string(client: openai.OpenAI, model: str) -> None:
    done = client.completions.create(model=model, prompt="1, 2, 3, 4, 5,", max_tokens=30, temperature=0,
                                     stop=[" 8"])
    assert done.choices[0].finish_reason == "stop" and " 7," in done.choices[0].text
    assert "8" not in done.choices[0].text


def test_a_stream_is_the_same_text_and_ends_with_usage_when_asked(client: openai.OpenAI, model: str) -> None:
    whole = client.completions.create(model=model, prompt=FRANCE, max_tokens=8, temperature=0)
    chunks = list(client.completions.create(model=model, prompt=FRANCE, max_tokens=8, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert len(chunks) > 2 and text == whole.choices[0].text
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_chat_streamed_and_not(client: openai.OpenAI, model: str) -> None:
    whole = client.chat.completions.create(model=model, messages=ASK_PARIS, max_tokens=12, temperature=0)
    message = whole.choices[0].message
    assert whole.object == "chat.completion" and message.role == "assistant" and "Paris" in message.content
    chunks = list(client.chat.completions.create(model=model, messages=ASK_PARIS, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == message.content
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_chat_takes_content_parts_and_system_and_developer_roles(client: openai.OpenAI, model: str) -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"},
                                          {"type": "text", "text": "Answer in one word."}]}]
    assert "Paris" in client.chat.completions.create(model=model, messages=parts, max_tokens=12,
                                                     temperature=0).choices[0].message.content
    for role in ("system", "developer"):
        instructed = [{"role": role, "content": "You answer in one word."}, *ASK_PARIS]
        done = client.chat.completions.create(model=model, messages=instructed, max_tokens=12, temperature=0)
        # The instruction is in the prompt: more prompt tokens than the question alone with the default system.
        assert done.usage.prompt_tokens > 0 and "Paris" in done.choices[0].message.content


def test_max_completion_tokens_bounds_the_answer(client: openai.OpenAI, model: str) -> None:
    story = [{"role": "user", "content": "Tell me a long story about a customs officer."}]
    done = client.chat.completions.create(model=model, messages=story, max_completion_tokens=5, temperature=0)
    assert done.usage.completion_tokens == 5 and done.choices[0].finish_reason == "length"


def test_chat_logprobs_and_top_logprobs(client: openai.OpenAI, model: str) -> None:
    done = client.chat.completions.create(model=model, messages=ASK_PARIS, max_tokens=4, temperature=0,
                                          logprobs=True, top_logprobs=3)
    steps = done.choices[0].logprobs.content
    assert len(steps) == done.usage.completion_tokens
    assert all(len(s.top_logprobs) == 3 and s.logprob <= 0 for s in steps)
    assert steps[0].token == steps[0].top_logprobs[0].token  # greedy: the chosen token is the likeliest


def test_response_format_json_object_and_json_schema(client: openai.OpenAI, model: str) -> None:
    ask = [{"role": "user", "content": "Give the capital of France as JSON."}]
    anything = client.chat.completions.create(model=model, messages=ask, max_tokens=40, temperature=0,
                                              response_format={"type": "json_object"})
    assert isinstance(json.loads(anything.choices[0].message.content), dict)
    # Bounded strings: a small model may otherwise go on writing one value until max_tokens cuts the JSON.
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                               "country": {"type": "string", "maxLength": 20}},
              "required": ["city", "country"], "additionalProperties": False}
    shaped = client.chat.completions.create(
        model=model, messages=ask, max_tokens=60, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": schema}})
    answer = json.loads(shaped.choices[0].message.content)
    assert set(answer) == {"city", "country"} and all(len(v) <= 20 for v in answer.values())


def test_tools_are_refused_where_the_chat_template_has_none(client: openai.OpenAI, model: str) -> None:
    weather = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}}}}}
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=ASK_PARIS, tools=[weather], max_tokens=4)
    assert refused.value.status_code == 400 and "tools" in refused.value.message


@pytest.mark.parametrize(("call", "error", "says"), [
    ({"model": "gpt-4", "prompt": "hi"}, openai.NotFoundError, "gpt-4"),
    ({"prompt": "hi", "max_tokens": -1}, openai.BadRequestError, "max_tokens"),
    ({"prompt": "word " * 5000, "max_tokens": 4}, openai.BadRequestError, "context"),
    ({"prompt": "hi", "n": 1000, "max_tokens": 1}, openai.BadRequestError, "n"),
])
def test_bad_requests_get_openai_errors(client: openai.OpenAI, model: str, call: dict, error: type,
                                        says: str) -> None:
    with pytest.raises(error) as raised:
        client.completions.create(**{"model": model, **call})
    assert says in raised.value.message and raised.value.body["type"] in ("invalid_request_error", "not_found_error")
    with pytest.raises(error):  # streamed, the refusal comes before any event
        client.completions.create(**{"model": model, **call, "stream": True})


def decided_prefix(logprobs, margin: float = 0.5) -> str:
    """The greedy tokens up to the first near tie: in bf16, which of two near-equal tokens wins depends on what
    else is in the engine's batch, so a streamed and a whole answer may part there and nowhere earlier."""
    prefix = ""
    for token, top in zip(logprobs.tokens, logprobs.top_logprobs, strict=True):
        best, second = sorted(top.values(), reverse=True)[:2] if len(top) > 1 else (0.0, float("-inf"))
        if best - second < margin:
            break
        prefix += token
    return prefix


def test_the_async_client_streams_several_at_once(serve_app: str, model: str) -> None:
    async def run() -> list[str]:
        async with openai.AsyncOpenAI(base_url=f"{serve_app}/v1", api_key=ADMIN_KEY, max_retries=0) as aclient:
            async def one(prompt: str) -> str:
                stream = await aclient.completions.create(model=model, prompt=prompt, max_tokens=6, temperature=0,
                                                          stream=True)
                return "".join([c.choices[0].text async for c in stream if c.choices])

            prompts = [FRANCE, "One, two, three,", "Monday, Tuesday,"]
            streamed = await asyncio.gather(*(one(p) for p in prompts))
            whole = await asyncio.gather(*(aclient.completions.create(model=model, prompt=p, max_tokens=6,
                                                                      temperature=0, logprobs=2) for p in prompts))
            for text, answer in zip(streamed, whole, strict=True):
                assert text.startswith(decided_prefix(answer.choices[0].logprobs)), (text, answer.choices[0].text)
            return streamed

    assert "Paris" in asyncio.run(run())[0]
