"""The vLLM engine: generation on a vLLM server, users' adapters loaded at run time.

The server (OpenAI-compatible API, started with ``--enable-lora`` and
``VLLM_ALLOW_RUNTIME_LORA_UPDATING``) holds the base model and batches
concurrent requests over many LoRA adapters. This process loads no model, only
the tokenizer (for the context budget and usage counts):

- a promoted version's adapters are registered with
  ``POST /v1/load_lora_adapter`` under their unique names, and the replaced
  ones are unregistered with ``POST /v1/unload_lora_adapter`` once no request
  in flight uses them (so a swap fails no request);
- each request names its adapter (or the base model) as its ``model`` and sends
  the prompt as token ids, built with the same chat template as the local engine;
- an adapter the server does not know (it restarted, or another web replica
  unloaded it) is registered again and the request retried once;
- a request whose client went away is closed, and vLLM aborts it.

``sealchat run`` starts and supervises the server (``server_command``) unless
``SEALCHAT_VLLM_URL`` names an external one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from app.adapters.service import AdapterRef
from app.errors import Unavailable
from app.serving.adapters import AdapterRoutes, chosen_adapter
from app.settings import Settings
from training.chat import ChatMessage, encode_prompt
from training.model import prepare_base_model
from training.routing.router import Router

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
# scripts/setup_vllm.sh installs the server here (vLLM pins its own transformers).
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
SERVED_BASE = "base"
READY_TIMEOUT_S = 600.0
# Adapters whose weights the server keeps in memory (beyond them it reads the folder again).
SERVER_CPU_LORAS = 16
# Distinct adapters in one batch.
SERVER_BATCH_LORAS = 4
SERVER_ENV = {
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; plenty for a 2,048-token context at this model size
}
NOT_ANSWERING = "the model server is not answering; try again shortly"


def server_command(
    model_folder: Path, port: int, context_tokens: int, lora_rank: int, dtype: str = "float32"
) -> list[str]:
    """The command that starts a vLLM server for ``model_folder`` on 127.0.0.1:``port``
    (``dtype``: float32 on a CPU, as the local engine computes; "auto" on a GPU)."""
    if not VLLM_PYTHON.is_file():
        raise RuntimeError(f"SEALCHAT_ENGINE=vllm: vLLM is not installed ({VLLM_PYTHON}); run scripts/setup_vllm.sh")
    return [
        str(VLLM_PYTHON),
        # The `vllm` console script looks up a distribution named "vllm" and fails with vllm-cpu.
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_folder),
        "--served-model-name",
        SERVED_BASE,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enable-lora",
        "--max-lora-rank",
        str(lora_rank),
        "--max-loras",
        str(SERVER_BATCH_LORAS),
        "--max-cpu-loras",
        str(SERVER_CPU_LORAS),
        "--max-model-len",
        str(context_tokens),
        "--dtype",
        dtype,
    ]


class AdapterMissing(Exception):
    """The server does not know the adapter a request named."""


class VLLMEngine(AdapterRoutes):
    def __init__(self, settings: Settings, url: str | None = None) -> None:
        super().__init__(settings.max_resident_adapters)
        self.settings = settings
        self.url = (url or settings.vllm_url or "").rstrip("/")
        self.router: Router | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._base = SERVED_BASE
        self._lock = threading.Lock()  # guards the routes and the registry below (never held while generating)
        self._on_server: set[str] = set()  # adapters registered on the server by this process
        self._in_flight: Counter[str] = Counter()  # adapter -> requests using it now
        self._unload_later: set[str] = set()  # replaced, unregistered when their last request ends
        # Many requests at once share one connection pool; reads wait as long as a reply may take.
        self._http = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(30.0, read=300.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    # --- start -------------------------------------------------------------------

    def start(self) -> None:
        if not self.url:
            raise RuntimeError("SEALCHAT_ENGINE=vllm needs SEALCHAT_VLLM_URL (`sealchat run` sets it for its server)")
        folder = prepare_base_model(self.settings.base_model, self.settings.models_dir)
        self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.wait_until_ready()
        models = self._http.get("/v1/models").json()["data"]
        bases = [m["id"] for m in models if not m.get("parent")]
        self._base = SERVED_BASE if SERVED_BASE in bases else bases[0]
        log.info("serving through vLLM at %s (base model %r)", self.url, self._base)

    def wait_until_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self._http.get("/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no vLLM server answered at {self.url} within {timeout_s:.0f} s")
            time.sleep(1.0)

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        if self._tokenizer is None:
            raise Unavailable(NOT_ANSWERING)
        return self._tokenizer

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(encode_prompt(self.tokenizer, messages))

    # --- adapters on the server ----------------------------------------------------

    def _load_adapter(self, name: str, path: Path) -> None:
        if name in self._unload_later:  # replaced but still registered: keep it
            self._unload_later.discard(name)
            self._on_server.add(name)
            return
        response = self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
        if response.status_code != 200 and "already" not in response.text:
            raise RuntimeError(f"vLLM refused adapter {name} ({path}): {response.status_code} {response.text[:300]}")
        self._on_server.add(name)

    def _unload_adapter(self, name: str) -> None:
        self._on_server.discard(name)
        if self._in_flight[name]:
            self._unload_later.add(name)
        else:
            self._unregister(name)

    def _has_adapter(self, name: str) -> bool:
        return name in self._on_server

    def _unregister(self, name: str) -> None:
        response = self._post("/v1/unload_lora_adapter", {"lora_name": name})
        if response.status_code != 200:  # already gone (a restart, another replica): nothing to free
            log.info("vLLM had no adapter %s to unload: %s", name, response.text[:200])

    def _post(self, path: str, body: dict) -> httpx.Response:
        try:
            return self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise Unavailable(NOT_ANSWERING) from exc

    def preload(self, user_id: int, ref: AdapterRef | None) -> None:
        with self._lock:
            self._route_locked(user_id, ref)

    def _acquire(self, user_id: int, ref: AdapterRef | None, name: str | None) -> None:
        with self._lock:
            self._route_locked(user_id, ref)
            if name:
                self._in_flight[name] += 1

    def _release(self, name: str | None) -> None:
        if not name:
            return
        with self._lock:
            self._in_flight[name] -= 1
            if not self._in_flight[name]:
                del self._in_flight[name]
                if name in self._unload_later:
                    self._unload_later.discard(name)
                    self._unregister(name)

    def _lost(self, name: str) -> None:
        """The server does not know ``name``: register it again on the next route."""
        with self._lock:
            self._on_server.discard(name)

    # --- generation ------------------------------------------------------------------

    def stream(
        self,
        user_id: int,
        ref: AdapterRef | None,
        messages: Sequence[ChatMessage],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 0.95,
        cancel: threading.Event | None = None,
        use_adapter: bool = True,
        adapter: str | None = None,
    ) -> Iterator[str]:
        """Stream a reply for ``user_id`` from the server: one of ``ref``'s adapters
        (``adapter``, the router's group) or the base model (``use_adapter`` False)."""
        name = chosen_adapter(ref, adapter, use_adapter)
        cancel = cancel or threading.Event()
        body = {
            "model": name or self._base,
            "prompt": encode_prompt(self.tokenizer, messages),
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "stream": True,
        }
        if temperature > 0:
            body["top_p"] = top_p
        for attempt in range(2):
            self._acquire(user_id, ref, name)
            try:
                yield from self._completion(body, cancel)
                return
            except AdapterMissing:
                if attempt:
                    raise Unavailable(NOT_ANSWERING) from None
                log.warning("vLLM lost adapter %s (restarted?); registering it again", name)
                self._lost(name)
            finally:
                self._release(name)

    def _completion(self, body: dict, cancel: threading.Event) -> Iterator[str]:
        try:
            with self._http.stream("POST", "/v1/completions", json=body) as response:
                if response.status_code == 404:
                    raise AdapterMissing(body["model"])
                if response.status_code != 200:
                    response.read()
                    log.error("vLLM answered %s: %s", response.status_code, response.text[:500])
                    raise Unavailable(NOT_ANSWERING)
                # Closing the response from here on tells vLLM to abort the request.
                watcher = threading.Thread(target=_close_when_set, args=(cancel, response), daemon=True)
                watcher.start()
                try:
                    for line in response.iter_lines():
                        if cancel.is_set():
                            return
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        piece = json.loads(line[6:])["choices"][0].get("text") or ""
                        if piece:
                            yield piece
                finally:
                    cancel.set()
        except (httpx.HTTPError, httpx.StreamError) as exc:
            if cancel.is_set():
                return  # closed on purpose
            raise Unavailable(NOT_ANSWERING) from exc


def _close_when_set(cancel: threading.Event, response: httpx.Response) -> None:
    cancel.wait()
    response.close()
