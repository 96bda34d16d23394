"""PyTorch reference for `kesu score` throughput (issue 5): HF transformers, fp32,
the same dequantised weights (`kesu export-model`) and the same texts, 2 threads,
length-sorted batches of 32, "query: " prefix, truncation at 512, mean pooling.
Forward passes and tokenization are timed; nothing else (no heads, no rules).

    python bench_pytorch.py MODEL_DIR TEXTS.jsonl
Prints one JSON line.
"""
import json
import sys
import time

import torch
from transformers import BertModel, PreTrainedTokenizerFast


def main() -> None:
    model_dir, texts_path = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    texts = [json.loads(line)["text"] for line in open(texts_path, encoding="utf-8") if line.strip()]
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{model_dir}/tokenizer.json")
    tok.pad_token, tok.pad_token_id = "<pad>", 1
    model = BertModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()

    started = time.perf_counter()
    enc = tok(["query: " + t for t in texts], truncation=True, max_length=512)
    tokenize_s = time.perf_counter() - started
    order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
    forward_s = 0.0
    with torch.inference_mode():
        for b in range(0, len(order), 32):
            idx = order[b : b + 32]
            batch = tok.pad({"input_ids": [enc["input_ids"][i] for i in idx]}, return_tensors="pt")
            t0 = time.perf_counter()
            hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            forward_s += time.perf_counter() - t0
    total = time.perf_counter() - started
    print(json.dumps({
        "runtime": f"pytorch {torch.__version__} fp32, 2 threads",
        "complaints": len(texts),
        "tokenize_s": round(tokenize_s, 2),
        "forward_s": round(forward_s, 2),
        "total_s": round(total, 2),
        "per_second": round(len(texts) / total, 1),
        "dim": int(pooled.shape[-1]),
    }))


if __name__ == "__main__":
    main()
