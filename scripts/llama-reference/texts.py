"""Texts the engine's reference tests are recorded on, written
deterministically (fixed seed) so a rerun records the same inputs.

  texts.py tokenizer   # >= 1,000 strings: unicode, whitespace runs, digits, code, byte fallback
  texts.py logits      # long passages for teacher-forced logits (one past a 512 window)
  texts.py greedy      # 24 chat prompts (the family's template is passed as --chat)

Each line of output is one text, hex-encoded UTF-8.
"""
import random
import sys

SEED = 20261207

WORDS = """the of and to in is you that it he was for on are as with his they I at be this have from
or one had by word but not what all were we when your can said there use an each which she do how their
if will up other about out many then them these so some her would make like him into time has look two more
write go see number no way could people my than first water been call who oil its now find long down day did
get come made may part river mountain Paris London Tokyo Zürich naïve café résumé über Ελλάδα Москва 北京 東京
한국어 नमस्ते مرحبا שלום""".split()

PIECES = [
    "Hello world", " leading space", "trailing space ", "  two leading", "tabs\tinside\t\t",
    "new\nline", "\n\n\nthree newlines", "\r\nwindows line", "mixed \t \n whitespace", " " * 17,
    "\t" * 9, "\n" * 33, "1234567890", "3.14159", "-42", "1,000,000", "0x1F", "2026-12-07", "12:30:45",
    "def f(x):\n    return x * 2\n", "fn main() { println!(\"hi\"); }", "for (int i = 0; i < n; ++i) {}",
    "<div class=\"a\">text</div>", "{\"key\": [1, 2, {\"b\": null}]}", "SELECT * FROM t WHERE a = 'b';",
    "emoji 🦀🚀👩‍👩‍👧", "🙂", "日本語のテキスト", "中文字符", "Ünïcödé", "ﬁ ligature", "e\u0301 combining",
    "\u200b zero width", "\u00a0nbsp", "\x01\x02 control", "\x7f", "ÿþ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ᚠᛇᚻ runes", "◌̈",
    "I'm", "don't", "they'll", "WE'VE", "it's", "A", "a", "", " ", "x" * 200, "ab" * 50,
    "camelCaseIdentifier", "snake_case_name", "SCREAMING_CASE", "kebab-case-word", "path/to/file.rs",
    "https://example.com/a?b=c&d=e", "user@example.com", "$100.00", "50%", "#hashtag", "@mention",
    "<start_of_turn>user\nHi<end_of_turn>\n", "<|im_start|>user\nhello<|im_end|>", "<bos>text",
    "<|user|>\nquestion<|end|>\n<|assistant|>", "[INST] hi [/INST]", "</s>", "<unk>", "<0x41>",
]


def tokenizer_texts():
    rng = random.Random(SEED)
    texts = list(PIECES)
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + list("äöüßéèêñçøåæœ€£¥©®°±µ¶·¿¡") + \
        list("αβγδεζηθλμπσφψωабвгдежзийклмнопрст") + list("一二三四五六七八九十人大中国日本") + \
        ["\n", "\t", " ", "  ", "\u3000", "🦀", "😀", "👍🏽", "\u0301", "\u200d"]
    while len(texts) < 1100:
        kind = rng.randrange(6)
        if kind == 0:  # prose
            texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))))
        elif kind == 1:  # random characters
            texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
        elif kind == 2:  # digits and numbers
            texts.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 12))) for _ in range(rng.randint(1, 6))))
        elif kind == 3:  # whitespace runs between words
            ws = ["", " ", "  ", "   ", "\n", "\n\n", "\t", " \n ", "\r\n", "    "]
            texts.append("".join(rng.choice(WORDS) + rng.choice(ws) for _ in range(rng.randint(1, 12))))
        elif kind == 4:  # code-like
            ops = ["(", ")", "{", "}", "[", "]", ";", "=", "==", "->", "::", ".", ",", "+", "*", "/", "\"", "'"]
            texts.append("".join(rng.choice(WORDS + ops + ["\n    ", " "]) for _ in range(rng.randint(3, 40))))
        else:  # combinations of the fixed pieces
            texts.append("".join(rng.choice(PIECES) for _ in range(rng.randint(2, 4))))
    return texts


PASSAGE = (
    "The river rises in the mountains and runs four hundred kilometres to the sea. In spring the snow "
    "melts and the water climbs the banks; farmers along its course have learned to plant late, after the "
    "floods, and to store grain on raised floors. The old bridge at the market town was built in 1742 from "
    "local stone. It has five arches, and the middle one is wide enough for the barges that carried timber "
    "downstream until the railway came. Today the barges are gone, but tourists walk across the bridge every "
    "summer to photograph the valley. "
)
CODE = (
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n"
    "        a, b = b, a + b\n    return a\n\n\nif __name__ == \"__main__\":\n    for i in range(10):\n"
    "        print(i, fibonacci(i))\n"
)


def logits_texts():
    # The last one is past 512 tokens, so a sliding-window layer drops its first positions.
    return [PASSAGE, CODE, "Question: What is the capital of France?\nAnswer: The capital of France is Paris. "
            "Question: What is the largest planet?\nAnswer:", PASSAGE * 5]


QUESTIONS = [
    "What is the capital of France?", "Write a haiku about the sea.", "Explain what a CPU does in one sentence.",
    "List three primary colors.", "What is 12 times 12?", "Translate 'good morning' into Spanish.",
    "Name a famous physicist.", "What does HTML stand for?", "Give me a synonym for happy.",
    "How many days are in a leap year?", "Write a Python function that adds two numbers.",
    "What is the boiling point of water in Celsius?", "Who wrote Romeo and Juliet?",
    "Describe a cat in five words.", "What is the opposite of cold?", "Why is the sky blue?",
    "Count from one to five.", "What is the largest ocean?", "Suggest a name for a pet dog.",
    "What language is spoken in Brazil?", "Summarize the plot of Cinderella in one sentence.",
    "What is photosynthesis?", "Give an example of a prime number greater than 10.", "What color is a banana?",
]


def greedy_texts(chat):
    user, end = chat.split("{}")
    return [user + q + end for q in QUESTIONS]


def main():
    kind = sys.argv[1]
    if kind == "tokenizer":
        texts = tokenizer_texts()
    elif kind == "logits":
        texts = logits_texts()
    else:
        texts = greedy_texts(sys.argv[2])
    for t in texts:
        sys.stdout.write(t.encode("utf-8").hex() + "\n")


if __name__ == "__main__":
    main()
