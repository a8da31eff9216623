"""Teacher backends that turn prompts into generations and count the tokens each one cost.

- ``transformers``: local `generate`, batched (CPU or GPU).
- ``vllm``: vLLM's offline engine, when installed (``pip install 'annealscope[vllm]'``).
- ``openai``: any OpenAI-compatible HTTP endpoint (``/v1/chat/completions``); the key is read from the
  environment variable named by ``api_key_env`` and never written anywhere.

Every backend applies the model's chat template (the endpoint does it for ``openai``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from annealscope.core.corpora import resolve_path
from annealscope.core.flops import decoder_parameters


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int


class Teacher(Protocol):
    parameters: int

    def generate(self, prompts: list[str], seed: int) -> list[Generation]: ...


class TeacherError(RuntimeError):
    """The teacher could not be loaded or did not answer."""


class TransformersTeacher:
    def __init__(self, settings: dict):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        location = str(resolve_path(settings["model"]))
        trust = settings["trust_remote_code"]
        extra = {"gguf_file": settings["gguf_file"]} if settings.get("gguf_file") else {}
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        with gguf_parsed_once() if extra else contextlib.nullcontext():
            self.tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust, **extra)
            self.model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, trust_remote_code=trust, **extra)
        self.model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.parameters = sum(parameter.numel() for parameter in self.model.parameters())
        self.settings = settings

    def generate(self, prompts: list[str], seed: int) -> list[Generation]:
        import torch

        tokenizer, settings = self.tokenizer, self.settings
        if tokenizer.chat_template:
            prompts = [tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                     add_generation_prompt=True) for prompt in prompts]
        torch.manual_seed(seed)
        generations = []
        for start in range(0, len(prompts), settings["batch_size"]):
            encoded = tokenizer(prompts[start:start + settings["batch_size"]], return_tensors="pt", padding=True,
                                add_special_tokens=False).to(self.model.device)
            with torch.no_grad():
                output = self.model.generate(**encoded, max_new_tokens=settings["max_new_tokens"], do_sample=True,
                                             temperature=settings["temperature"], top_p=settings["top_p"],
                                             repetition_penalty=settings["repetition_penalty"],
                                             pad_token_id=tokenizer.pad_token_id)
            prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
            for row, prompt_tokens in zip(output[:, encoded["input_ids"].shape[1]:].tolist(), prompt_lengths,
                                          strict=True):
                ids = [token for token in row if token != tokenizer.pad_token_id]
                generations.append(Generation(tokenizer.decode(ids, skip_special_tokens=True).strip(),
                                              int(prompt_tokens), len(ids)))
        return generations


@contextlib.contextmanager
def gguf_parsed_once() -> Iterator[None]:
    """Within this, transformers reads each GGUF file once and builds gguf's tensor-name map once per
    (architecture, layers). Alone it parses the file anew for the tokenizer, the config and the weights, and
    rebuilds the map for every module: most of a GGUF teacher's load, which every generation job pays
    (benchmarks/teacher_load.py). Both are only read, so sharing them changes no weight."""
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.cache(reader)
    gguf.get_tensor_name_map = functools.cache(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


class VLLMTeacher:
    def __init__(self, settings: dict):
        try:
            from vllm import LLM
        except ImportError as error:
            raise TeacherError("generator.backend: vllm is not installed; `pip install 'annealscope[vllm]'` on a "
                               "GPU machine, or use backend: transformers") from error
        self.engine = LLM(model=str(resolve_path(settings["model"])), seed=settings["seed"],
                          trust_remote_code=settings["trust_remote_code"])
        config = self.engine.llm_engine.model_config.hf_config
        self.parameters = settings.get("parameters") or _dense_parameters(config)
        self.settings = settings

    def generate(self, prompts: list[str], seed: int) -> list[Generation]:
        from vllm import SamplingParams

        settings = self.settings
        sampling = SamplingParams(max_tokens=settings["max_new_tokens"], temperature=settings["temperature"],
                                  top_p=settings["top_p"], repetition_penalty=settings["repetition_penalty"], seed=seed)
        outputs = self.engine.chat([[{"role": "user", "content": prompt}] for prompt in prompts], sampling,
                                   use_tqdm=False)
        return [Generation(output.outputs[0].text.strip(), len(output.prompt_token_ids),
                           len(output.outputs[0].token_ids)) for output in outputs]


def _dense_parameters(config) -> int:
    """A dense decoder's parameter count from its Hugging Face config, for FLOPs (core.flops)."""
    hidden, heads = config.hidden_size, config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return decoder_parameters(config.vocab_size, hidden, config.num_hidden_layers,
                              getattr(config, "intermediate_size", 4 * hidden), hidden * kv_heads // heads,
                              bool(getattr(config, "tie_word_embeddings", False)))


class OpenAITeacher:
    """Chat completions from an OpenAI-compatible server, `concurrency` requests at a time."""

    def __init__(self, settings: dict):
        if not settings.get("parameters"):
            raise TeacherError("generator.parameters: an openai backend needs the teacher's parameter count to "
                               "charge 2·N FLOPs per token; set it (e.g. 7.6e9)")
        self.parameters = int(settings["parameters"])
        self.url = settings["base_url"].rstrip("/") + "/chat/completions"
        key = os.environ.get(settings["api_key_env"], "") if settings.get("api_key_env") else ""
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        self.settings = settings

    def _complete(self, prompt: str, seed: int) -> Generation:
        settings = self.settings
        body = {"model": settings["model"], "messages": [{"role": "user", "content": prompt}],
                "max_tokens": settings["max_new_tokens"], "temperature": settings["temperature"],
                "top_p": settings["top_p"], "seed": seed}
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=settings["timeout"]) as response:
                answer = json.loads(response.read())
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as error:
            raise TeacherError(f"teacher endpoint {self.url} failed: {error}") from error
        try:
            usage = answer["usage"]
            return Generation(answer["choices"][0]["message"]["content"].strip(), int(usage["prompt_tokens"]),
                              int(usage["completion_tokens"]))
        except (KeyError, IndexError, TypeError) as error:
            raise TeacherError(f"teacher endpoint {self.url} answered without choices/usage: {error}") from error

    def generate(self, prompts: list[str], seed: int) -> list[Generation]:
        with ThreadPoolExecutor(self.settings["concurrency"]) as pool:
            return list(pool.map(self._complete, prompts, [seed + index for index in range(len(prompts))]))


BACKENDS = {"transformers": TransformersTeacher, "vllm": VLLMTeacher, "openai": OpenAITeacher}


def load_teacher(settings: dict) -> Teacher:
    return BACKENDS[settings["backend"]](settings)
