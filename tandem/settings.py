"""All infrastructure configuration in one pydantic-settings object.

Values come from `TANDEM_*` environment variables (and an optional `.env`);
`DATABASE_URL` is read without the prefix because every tool knows that name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from models.lora import LoRAShape
from models.verbalizer.prompts import VerbalizerConfig
from tandem.access_and_limits import AccessAndLimits
from tandem.artifact_settings import ArtifactSettings
from tandem.training_settings import TrainingSettings

SMALL_MODEL_GPUS = "GPU share per replica on cuda (e.g. 0.1 beside an LLM at 0.7 on one card); 0 keeps it on the CPU."
# The deployments whose replicas the settings size: `<name>_replicas`, `<name>_max_replicas`, ….
DEPLOYMENTS = ("ingress", "llm", "candidates", "retriever", "keywords")

# Where a checkout keeps its generated state; a fresh clone has `../shared/data` beside it.
_DEFAULT_VAR = Path("var")
_DEFAULT_DATA = Path("../shared/data")


class Settings(AccessAndLimits, ArtifactSettings, TrainingSettings):
    model_config = SettingsConfigDict(env_prefix="TANDEM_", env_file=".env", extra="ignore", populate_by_name=True)

    # --- storage -------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "TANDEM_DATABASE_URL"),
        description="PostgreSQL URL; unset means the embedded server with its data under var/pgdata.",
    )
    db_pool_min_size: int = Field(default=1, ge=0)
    db_pool_max_size: int = Field(default=8, ge=1)
    max_body_mib: float = Field(default=16.0, gt=0, description="Larger request bodies are refused with 413.")
    var_dir: Path = Field(default=_DEFAULT_VAR, description="Generated state: models, artifacts, pgdata, logs.")
    data_dir: Path = Field(default=_DEFAULT_DATA, description="Read-only real datasets (MovieLens, KorQuAD, books).")
    bootstrap: Literal["auto", "off"] = Field(
        default="auto", description="auto: a database that holds no data gets the data of data_dir and quick models "
        "of every pipeline at start-up (resumed after a restart); off: never.")
    bootstrap_options: dict = Field(default={}, description="POST /v1/train options over the quick preset, as JSON.")

    # --- serving -------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    metrics_port: int = Field(default=8080, ge=1, le=65535, description="Ray's Prometheus export port.")
    device: Literal["cpu", "cuda"] = "cpu"
    ingress_replicas: int = Field(default=1, ge=1)
    llm_replicas: int = Field(default=1, ge=1)
    # Autoscaling: a deployment whose `<name>_max_replicas` is above its `<name>_replicas` is scaled by Serve
    # between the two, aiming at `<name>_target_ongoing_requests` per replica; unset, it keeps `<name>_replicas`.
    ingress_max_replicas: int | None = Field(default=None, ge=1)
    ingress_target_ongoing_requests: float = Field(default=32.0, gt=0, description="Routing only: many at once.")
    llm_max_replicas: int | None = Field(default=None, ge=1)
    llm_target_ongoing_requests: float = Field(default=16.0, gt=0, description="vLLM batches continuously.")
    autoscale_upscale_delay_s: float = Field(default=30.0, ge=0, description="Load held this long adds replicas.")
    autoscale_downscale_delay_s: float = Field(default=120.0, ge=0, description="Idle this long removes them.")
    log_level: str = Field(default="WARNING", description="Quiet by default; INFO or DEBUG when investigating.")

    # --- candidates (LRURec) -------------------------------------------------
    candidates_replicas: int = Field(default=1, ge=1)
    candidates_max_replicas: int | None = Field(default=None, ge=1)
    candidates_target_ongoing_requests: float = Field(default=8.0, gt=0, description="A few batches' worth.")
    # Logical CPUs Ray reserves per replica. On 2 cores the LLM takes 1, and the small models and a training
    # task share the other; the reservation places replicas, it does not cap their threads.
    candidates_num_cpus: float = Field(default=0.25, ge=0)
    candidates_num_gpus: float = Field(default=0.0, ge=0, le=1, description=SMALL_MODEL_GPUS)
    candidates_max_batch_size: int = Field(default=32, ge=1, description="Requests scored in one forward pass.")
    candidates_batch_wait_ms: float = Field(default=10.0, ge=0, description="How long a batch waits to fill "
                                            "(docs/benchmarks.md, issue 18: the wait against the load).")
    candidates_cache_users: int = Field(
        default=10_000, ge=0, description="Users whose recent history a replica keeps in memory (0: read each time).",
    )
    candidates_cache_titles: int = Field(default=100_000, ge=0, description="Item titles a replica keeps in memory.")
    model_poll_s: float = Field(default=10.0, gt=0, description="Active-version check when no NOTIFY arrives.")

    # --- LLM (vLLM) ----------------------------------------------------------
    llm_model: str = Field(
        default="",
        description="HF id or folder of the base LLM; empty means the local SmolLM2 built by `tandem assets build`.",
    )
    llm_served_name: str = Field(default="", description="Name clients pass as `model`; defaults to the folder name.")
    llm_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    llm_max_model_len: int = Field(default=4096, ge=16)
    llm_kv_cache_gib: float = Field(default=1.0, gt=0, description="CPU KV-cache space per engine.")
    llm_enforce_eager: bool | None = Field(default=None, description="Skip CUDA graph capture; unset: on CPU only.")
    llm_gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    llm_num_cpus: float = Field(default=1.0, ge=0, description="Logical CPUs Ray reserves per LLM replica.")
    # vLLM-CPU runs one OpenMP thread per core it is given. Left to itself ("auto") it keeps one core of each
    # NUMA node back for its scheduler, which on a 2-core node halves the model's compute (docs/benchmarks.md).
    llm_cpu_cores: str = Field(
        default="all", pattern=r"^(all|auto|\d+(-\d+)?(,\d+(-\d+)?)*)$",
        description="CPU cores the LLM engine computes on (device cpu): 'all' = every core the replica may use; "
        "a list such as '0-3' or '0,2' keeps other work off the rest; 'auto' = vLLM's own choice.",
    )
    llm_max_num_batched_tokens: int | None = Field(
        default=None, ge=16, description="Tokens one engine step computes (a prefill longer than this is chunked); "
        "unset: vLLM's default.",
    )
    llm_enable_prefix_caching: bool = Field(
        default=True, description="Reuse the KV cache of prompt prefixes already computed (the shared instruction).",
    )
    llm_num_gpus: float = Field(
        default=1.0, gt=0, description="GPU share per LLM replica on cuda; fractions share a card."
    )
    llm_max_loras: int = Field(default=4, ge=1)
    llm_max_lora_rank: int = Field(default=16, ge=1)
    llm_merged_adapters: list[str] | None = Field(
        default=None, description="Adapters also served merged into their own copy of the base model, in an engine "
        "without LoRA; unset: the ranker on CPU (vLLM-CPU's LoRA path ranks 4x slower alone, 6x batched), none on GPU.",
    )
    llm_merged_int8: bool = Field(default=True, description="Merged copies as int8 weights and activations (W8A8): "
                                  "~1.36x the rankings/s on AVX-512 VNNI CPUs, NDCG@10 within noise.")
    llm_merged_compiled: bool = Field(default=True, description="Merged engines compile their forward pass "
                                      "(torch.compile, ~2 min per version, in the background): ~1.15x on CPU.")

    # --- ranker (verbalizer + LoRA) ------------------------------------------
    verbalizer_template: Literal["llamarec", "gemmarec"] = Field(
        default="llamarec", description="LlamaRec's prompt, or GemmaRecAPI's with the survey profile and comments."
    )
    # `compact` by measurement (docs/benchmarks.md); the model's own default stays LlamaRec's, which is what an
    # adapter saved before layouts existed was trained on.
    verbalizer_layout: Literal["llamarec", "compact"] = Field(
        default="compact", description="How items are written in the prompt of a ranker trained from now on; "
        "each adapter is served with the layout it was trained on.",
    )
    verbalizer_max_history: int = Field(default=10, ge=1, description="History items in the prompt.")
    verbalizer_max_title_tokens: int = Field(default=24, ge=1)
    verbalizer_max_prompt_tokens: int = Field(default=1024, ge=64)
    ranker_candidates: int = Field(default=20, ge=2, le=26, description="LRURec candidates the LLM reorders.")
    ranker_timeout_s: float = Field(default=10.0, gt=0, description="Past this, LRURec's order is returned.")
    # The shape of every LoRA adapter trained here (ranker, qa); serving needs llm_max_lora_rank >= lora_r.
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    lora_target_modules: list[str] = Field(default=["q_proj", "k_proj", "v_proj", "o_proj"])

    # --- encoders ------------------------------------------------------------
    bert_model: str = Field(default="", description="HF id or folder; empty: the local small BERT (prod: "
                            "klue/bert-base).")
    bart_model: str = Field(default="", description="HF id or folder; empty: the local small BART (prod: "
                            "gogamza/kobart-base-v1).")

    # --- retrieval (DPR + FAISS + BM25) -----------------------------------------
    chunk_tokens: int = Field(default=100, ge=8, description="Encoder tokens per indexed chunk of a passage.")
    dpr_max_question_tokens: int = Field(default=64, ge=8)
    dpr_max_passage_tokens: int = Field(default=128, ge=8, description="Covers a chunk plus special tokens.")
    dpr_pooling: Literal["cls", "mean"] = Field(
        default="mean", description="cls as in DPR for a pretrained BERT; mean for the small one trained from scratch."
    )
    dpr_lr: float = Field(default=3e-4, gt=0, description="3e-4 for the small local BERT; 2e-5 for klue/bert-base.")
    index_kind: Literal["flat", "hnsw", "ivfpq"] = Field(
        default="flat", description="Exact inner product for small collections; hnsw or ivfpq for large ones.")
    index_hnsw_m: int = Field(default=32, ge=4)
    index_hnsw_ef_search: int = Field(default=64, ge=1)
    index_ivf_lists: int = Field(default=1024, ge=1)
    index_ivf_probe: int = Field(default=16, ge=1)
    index_pq_subquantizers: int = Field(default=16, ge=1)
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal-rank fusion constant.")
    # Tuned on KorQuAD's dev slice for the small local encoder against BM25 (docs/benchmarks.md); a pretrained
    # encoder (klue/bert-base) earns a larger weight: tune it with `tandem eval retrieval --dense-weights`.
    hybrid_fusion: Literal["rrf", "score"] = Field(
        default="score", description="rrf: reciprocal ranks; score: min-max scaled scores, weighted and summed.")
    hybrid_dense_weight: float = Field(default=0.1, ge=0, description="The dense ranking's weight in hybrid "
                                       "fusion, BM25's being 1.")
    retriever_replicas: int = Field(default=1, ge=1)
    retriever_max_replicas: int | None = Field(default=None, ge=1)
    retriever_target_ongoing_requests: float = Field(default=8.0, gt=0, description="A few batches' worth.")
    retriever_num_cpus: float = Field(default=0.25, ge=0)
    retriever_num_gpus: float = Field(default=0.0, ge=0, le=1, description=SMALL_MODEL_GPUS)
    retriever_max_batch_size: int = Field(default=32, ge=1, description="Questions encoded in one forward pass.")
    retriever_batch_wait_ms: float = Field(default=10.0, ge=0, description="As candidates_batch_wait_ms.")

    # --- keywords (KoBART) ----------------------------------------------------
    keywords_replicas: int = Field(default=1, ge=1)
    keywords_max_replicas: int | None = Field(default=None, ge=1)
    keywords_target_ongoing_requests: float = Field(default=8.0, gt=0, description="A few batches' worth.")
    keywords_num_cpus: float = Field(default=0.25, ge=0)
    keywords_num_gpus: float = Field(default=0.0, ge=0, le=1, description=SMALL_MODEL_GPUS)
    keywords_max_batch_size: int = Field(default=32, ge=1, description="Texts in one batched generate.")
    keywords_batch_wait_ms: float = Field(default=5.0, ge=0)
    keywords_num_beams: int = Field(default=4, ge=1)
    keywords_max_new_tokens: int = Field(default=32, ge=1)
    keywords_max_input_tokens: int = Field(default=128, ge=8, description="Longer texts are refused with 422.")
    keywords_lr: float = Field(default=1e-3, gt=0, description="1e-3 for the small local BART; 5e-5 for KoBART.")

    # --- question answering (retrieval + the qa adapter) ------------------------
    qa_top_k: int = Field(default=3, ge=1, le=10, description="Passages put in the prompt.")
    qa_max_context_tokens: int = Field(default=768, ge=32, description="LLM tokens the passages may take.")
    qa_min_dense_score: float | None = Field(
        default=None, description="A passage sharing no term with the question counts as relevant only at or "
        "above this dense score; unset, only passages that share a term do.",
    )
    qa_timeout_s: float = Field(default=120.0, gt=0)

    # --- book recommendation (catalogue search + the books adapter) ---------------
    books_candidates: int = Field(default=8, ge=1, le=50, description="Catalogue books the LLM chooses from.")
    books_mode: Literal["dense", "sparse", "hybrid"] = "hybrid"
    # The answer's JSON takes the context the prompt leaves: up to ~3 tokens per Korean character of a reason
    # with SmolLM2's English tokenizer, far fewer with Gemma's.
    books_max_prompt_tokens: int = Field(default=2048, ge=128, description="The choice prompt's token budget; "
                                         "candidates that do not fit are left out.")
    books_intro_chars: int = Field(default=60, ge=0, description="Characters of each introduction in prompts.")
    books_reason_chars: int = Field(default=60, ge=10, description="Longest reason the JSON schema allows.")
    books_history_k: int = Field(default=3, ge=0, description="Books read that the rag method uses.")
    books_timeout_s: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _replica_ranges(self) -> Settings:
        for name in DEPLOYMENTS:
            low, high = getattr(self, f"{name}_replicas"), getattr(self, f"{name}_max_replicas")
            if high is not None and high < low:
                raise ValueError(f"{name}_max_replicas ({high}) is below {name}_replicas ({low})")
        return self

    @field_validator("var_dir", "data_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        # Ray Serve replicas run with another working directory, so paths are fixed at load time.
        return path.expanduser().resolve()

    # --- derived paths -------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self.var_dir / "models"

    @property
    def artifacts_dir(self) -> Path:
        return self.var_dir / "artifacts"

    @property
    def pgdata_dir(self) -> Path:
        return self.var_dir / "pgdata"

    @property
    def llm_path(self) -> str:
        return self.llm_model or str(self.models_dir / "smollm2-135m-instruct")

    @property
    def llm_name(self) -> str:
        return self.llm_served_name or Path(self.llm_path).name

    @property
    def verbalizer(self) -> VerbalizerConfig:
        return VerbalizerConfig(
            template=self.verbalizer_template, layout=self.verbalizer_layout, max_history=self.verbalizer_max_history,
            max_title_tokens=self.verbalizer_max_title_tokens, max_prompt_tokens=self.verbalizer_max_prompt_tokens,
            num_candidates=self.ranker_candidates,
        )

    @property
    def retriever_fusion(self) -> dict:
        """How a `Retriever` fuses dense and sparse rankings: its keyword arguments."""
        return {"rrf_k": self.rrf_k, "dense_weight": self.hybrid_dense_weight, "fusion": self.hybrid_fusion}

    @property
    def index_config(self):
        from models.dpr.dense_index import IndexConfig  # FAISS: loaded only where an index is built

        return IndexConfig(kind=self.index_kind, hnsw_m=self.index_hnsw_m, ivf_lists=self.index_ivf_lists,
                           pq_subquantizers=self.index_pq_subquantizers, ivf_probe=self.index_ivf_probe,
                           hnsw_ef_search=self.index_hnsw_ef_search)

    @property
    def keywords_generation(self):
        from models.kobart.model import GenerationConfig

        return GenerationConfig(num_beams=self.keywords_num_beams, max_new_tokens=self.keywords_max_new_tokens,
                                max_input_tokens=self.keywords_max_input_tokens)

    @property
    def merged_adapters(self) -> list[str]:
        if self.llm_merged_adapters is not None:
            return self.llm_merged_adapters
        return ["ranker"] if self.device == "cpu" else []

    def model_device(self, name: str) -> str:
        """Where deployment `name` runs its model: on the GPU only when it asks Ray for a share of one."""
        return "cuda" if self.device == "cuda" and getattr(self, f"{name}_num_gpus") > 0 else "cpu"

    @property
    def lora_shape(self) -> LoRAShape:
        """The shape of every adapter trained here, so training and serving agree on it."""
        return LoRAShape(r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout,
                         target_modules=list(self.lora_target_modules))

    @property
    def bert_path(self) -> str:
        return self.bert_model or str(self.models_dir / "bert-small")

    @property
    def bart_path(self) -> str:
        return self.bart_model or str(self.models_dir / "bart-small")
