"""The KULLM (Alpaca-style, Korean) prompt for answering from retrieved passages.

The question always goes in the instruction slot (명령어) and the numbered passages with their sources in
the input slot (입력), in training and in serving alike. Passages are cut to a token budget so the prompt
fits the model: whole passages while they fit, then the remainder of the budget for the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

TEMPLATE = (
    "아래는 작업을 설명하는 명령어와 추가 컨텍스트를 제공하는 입력이 짝을 이루는 예제입니다. "
    "요청을 적절히 완료하는 응답을 작성하세요.\n\n### 명령어:\n{instruction}\n\n### 입력:\n{input}\n\n### 응답:\n"
)
NO_ANSWER = "제공된 문서에서 질문과 관련된 내용을 찾지 못했습니다."
MIN_PASSAGE_TOKENS = 16  # a shorter remainder is left out rather than given as a fragment


@dataclass(frozen=True)
class Context:
    text: str
    source: str | None = None


class QAPrompter:
    def __init__(self, tokenizer, max_context_tokens: int = 768):
        self.tokenizer, self.max_context_tokens = tokenizer, max_context_tokens

    def context(self, passages: list[Context]) -> tuple[str, int]:
        """The input slot and how many passages it holds."""
        parts, left = [], self.max_context_tokens
        for n, passage in enumerate(passages, start=1):
            header = f"[{n}] " + (f"(출처: {passage.source}) " if passage.source else "")
            ids = self.tokenizer.encode(header + passage.text, add_special_tokens=False)
            if len(ids) > left:
                if left < MIN_PASSAGE_TOKENS and parts:
                    break
                ids = ids[:left]
            parts.append(self.tokenizer.decode(ids).strip())
            left -= len(ids)
            if left <= 0:
                break
        return "\n\n".join(parts), len(parts)

    def prompt(self, question: str, passages: list[Context]) -> tuple[str, int]:
        text, used = self.context(passages)
        return TEMPLATE.format(instruction=question.strip(), input=text), used

    def prompt_ids(self, question: str, passages: list[Context]) -> tuple[list[int], int]:
        text, used = self.prompt(question, passages)
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return bos + self.tokenizer.encode(text, add_special_tokens=False), used

    def training_ids(self, question: str, passages: list[Context], answer: str) -> tuple[list[int], list[int]]:
        """Input ids and labels: the loss is on the answer and the end token only."""
        prompt, _ = self.prompt_ids(question, passages)
        target = self.tokenizer.encode(answer.strip(), add_special_tokens=False) + [self.tokenizer.eos_token_id]
        return prompt + target, [-100] * len(prompt) + target
