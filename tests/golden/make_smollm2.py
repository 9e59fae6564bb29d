"""Reference data for the real default model, SmolLM2-135M-Instruct Q4_1 (tools/default-model.sh):
tests/fixtures/gguf/smollm2.json and smollm2_ref.npy.

For each factual question: the chat prompt as llama.cpp tokenises the GGUF's own chat template
rendered by jinja2, and llama.cpp's greedy continuation (llama-cpp-python 0.3.36, F32 KV cache,
its default CPU arithmetic), with the first step of it that is a near-tie: where llama.cpp's own
logits (one batch over prompt and continuation) put the top two within 2% of the largest
logit: 8-bit activations move logits by about that much (2% at the median position on the
GGUF fixtures), so summation order alone can decide there (llama.cpp's batched and token-by-token
paths can then pick differently). For the first prompt, float64 reference logits at a few
positions from gguf_reference.py (numpy on the gguf package's dequantisation).

    python tests/golden/make_smollm2.py ~/.cache/seekd/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import json
import pathlib
import sys

import jinja2
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import gguf_reference  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "gguf"
QUESTIONS = [  # question, a word a correct answer holds
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the chemical symbol for gold?", "Au"),
    ("What is the largest ocean on Earth?", "Pacific"),
    ("What language is spoken in Brazil?", "Portuguese"),
    ("What is the boiling point of water in Celsius?", "100"),
]
N_GREEDY = 32
REF_POSITIONS = [0, 10, -2, -1]


def main():
    import llama_cpp.llama_cpp as C
    from llama_cpp import Llama
    orig = C.llama_model_default_params

    def params():  # no AMX / repacked buffers (they crash on some AMX machines)
        p = orig()
        p.use_extra_bufts = False
        return p

    C.llama_model_default_params = params
    path = sys.argv[1]
    llm = Llama(model_path=path, n_ctx=512, n_threads=2, type_k=0, type_v=0, logits_all=True,
                verbose=False)
    template = llm.metadata["tokenizer.chat_template"]
    eos = int(llm.metadata["tokenizer.ggml.eos_token_id"])
    cases = []
    for question, word in QUESTIONS:
        text = jinja2.Environment().from_string(template).render(
            messages=[{"role": "user", "content": question}], add_generation_prompt=True)
        prompt = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.reset()
        out = []
        for t in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
            if t == eos or len(out) == N_GREEDY:
                break
            out.append(t)
        llm.reset()
        llm.eval(prompt + out)
        scores = np.array(llm.scores[len(prompt) - 1:len(prompt) + len(out) - 1])
        top2 = np.sort(scores, -1)[:, -2:]
        ties = np.nonzero(top2[:, 1] - top2[:, 0] < 2e-2 * np.abs(scores).max(-1))[0]
        cases.append({"question": question, "expect": word, "prompt": prompt, "llama_cpp_greedy": out,
                      "llama_cpp_text": llm.detokenize(out).decode(errors="replace"),
                      "first_near_tie": int(ties[0]) if len(ties) else None})
        print(question, "->", cases[-1]["llama_cpp_text"], file=sys.stderr)
    logits, _ = gguf_reference.forward(gguf_reference.Model(path), cases[0]["prompt"])
    n = len(cases[0]["prompt"])
    positions = [p % n for p in REF_POSITIONS]
    np.save(OUT / "smollm2_ref.npy", logits[positions].astype(np.float32))
    golden = {"model": "SmolLM2-135M-Instruct.Q4_1.gguf",
              "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
              "llama_cpp_python": "0.3.36", "ref_positions": positions, "cases": cases}
    (OUT / "smollm2.json").write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
