"""The built-in programming problems of the code environment, written for agentgym.

Each :class:`Problem` has a prompt naming the function to write, a reference solution and
hidden test cases ``(arguments, expected result)``; the code environment turns each case into
``assert _same(entry_point(*arguments), expected)``, where ``_same`` compares exact types
(floats approximately), so an object that claims to equal everything fails.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Problem(NamedTuple):
    """One built-in programming problem."""

    id: str
    entry_point: str
    prompt: str
    solution: str
    cases: tuple[tuple[tuple[Any, ...], Any], ...]


PROBLEMS: tuple[Problem, ...] = (
    Problem(
        "reverse_words",
        "reverse_words",
        "Write `reverse_words(s: str) -> str`: the words of `s` (separated by any whitespace) "
        "in reverse order, joined by single spaces, with no leading or trailing space.",
        "def reverse_words(s):\n    return ' '.join(reversed(s.split()))\n",
        (
            (("hello world",), "world hello"),
            (("  a  b   c ",), "c b a"),
            (("",), ""),
            (("one",), "one"),
            (("x\ty\nz",), "z y x"),
        ),
    ),
    Problem(
        "is_palindrome",
        "is_palindrome",
        "Write `is_palindrome(s: str) -> bool`: True when `s` reads the same forwards and "
        "backwards, ignoring case and every character that is not a letter or a digit.",
        "def is_palindrome(s):\n"
        "    t = [c.lower() for c in s if c.isalnum()]\n"
        "    return t == t[::-1]\n",
        (
            (("A man, a plan, a canal: Panama",), True),
            (("racecar",), True),
            (("hello",), False),
            (("",), True),
            (("No 'x' in Nixon",), True),
            (("ab2a",), False),
        ),
    ),
    Problem(
        "fizzbuzz",
        "fizzbuzz",
        "Write `fizzbuzz(n: int) -> list[str]`: for i = 1..n the string 'FizzBuzz' if i is "
        "divisible by 15, 'Fizz' if by 3, 'Buzz' if by 5, else str(i).",
        "def fizzbuzz(n):\n"
        "    out = []\n"
        "    for i in range(1, n + 1):\n"
        "        s = ('Fizz' if i % 3 == 0 else '') + ('Buzz' if i % 5 == 0 else '')\n"
        "        out.append(s or str(i))\n"
        "    return out\n",
        (
            ((0,), []),
            ((1,), ["1"]),
            ((5,), ["1", "2", "Fizz", "4", "Buzz"]),
            (
                (15,),
                ["1", "2", "Fizz", "4", "Buzz", "Fizz", "7", "8", "Fizz", "Buzz", "11"]
                + ["Fizz", "13", "14", "FizzBuzz"],
            ),
        ),
    ),
    Problem(
        "run_length_encode",
        "run_length_encode",
        "Write `run_length_encode(s: str) -> str`: each run of equal characters written as the "
        "character followed by the run length, e.g. 'aaabcc' -> 'a3b1c2'.",
        "def run_length_encode(s):\n"
        "    out, i = [], 0\n"
        "    while i < len(s):\n"
        "        j = i\n"
        "        while j < len(s) and s[j] == s[i]:\n"
        "            j += 1\n"
        "        out.append(f'{s[i]}{j - i}')\n"
        "        i = j\n"
        "    return ''.join(out)\n",
        (
            (("aaabcc",), "a3b1c2"),
            (("",), ""),
            (("z",), "z1"),
            (("aaaaaaaaaaaa",), "a12"),
            (("abab",), "a1b1a1b1"),
        ),
    ),
    Problem(
        "second_largest",
        "second_largest",
        "Write `second_largest(nums: list[int]) -> int | None`: the second largest distinct "
        "value of `nums`, or None if there are fewer than two distinct values.",
        "def second_largest(nums):\n"
        "    values = sorted(set(nums))\n"
        "    return values[-2] if len(values) >= 2 else None\n",
        (
            (([3, 1, 4, 1, 5],), 4),
            (([5, 5, 5],), None),
            (([],), None),
            (([-2, -7],), -7),
            (([10, 9, 10, 8],), 9),
        ),
    ),
    Problem(
        "flatten",
        "flatten",
        "Write `flatten(nested: list) -> list`: the non-list items of an arbitrarily nested "
        "list, in order, e.g. [1, [2, [3]], 4] -> [1, 2, 3, 4].",
        "def flatten(nested):\n"
        "    out = []\n"
        "    for item in nested:\n"
        "        out.extend(flatten(item) if isinstance(item, list) else [item])\n"
        "    return out\n",
        (
            (([1, [2, [3]], 4],), [1, 2, 3, 4]),
            (([],), []),
            (([[], [[]]],), []),
            ((["a", ["b", ["c", ["d"]]]],), ["a", "b", "c", "d"]),
            (([[1, 2], 3, [4, [5, 6]]],), [1, 2, 3, 4, 5, 6]),
        ),
    ),
    Problem(
        "chunk",
        "chunk",
        "Write `chunk(items: list, size: int) -> list[list]`: `items` cut into consecutive "
        "lists of `size` items (the last one may be shorter).",
        "def chunk(items, size):\n    return [items[i:i + size] for i in range(0, len(items), size)]\n",
        (
            (([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]),
            (([], 3), []),
            (([1, 2, 3], 3), [[1, 2, 3]]),
            ((["a", "b"], 5), [["a", "b"]]),
        ),
    ),
    Problem(
        "word_frequencies",
        "word_frequencies",
        "Write `word_frequencies(text: str) -> dict[str, int]`: how often each word occurs, "
        "where words are maximal runs of letters, compared in lower case.",
        "import re\n\n"
        "def word_frequencies(text):\n"
        "    counts = {}\n"
        "    for w in re.findall(r'[^\\W\\d_]+', text.lower()):\n"
        "        counts[w] = counts.get(w, 0) + 1\n"
        "    return counts\n",
        (
            (("The cat and the hat.",), {"the": 2, "cat": 1, "and": 1, "hat": 1}),
            (("",), {}),
            (("a1b2 A",), {"a": 2, "b": 1}),
            (("Go, go, GO!",), {"go": 3}),
        ),
    ),
    Problem(
        "merge_intervals",
        "merge_intervals",
        "Write `merge_intervals(intervals: list[list[int]]) -> list[list[int]]`: merge "
        "overlapping or touching closed intervals [start, end]; return them sorted by start.",
        "def merge_intervals(intervals):\n"
        "    out = []\n"
        "    for start, end in sorted(intervals):\n"
        "        if out and start <= out[-1][1]:\n"
        "            out[-1][1] = max(out[-1][1], end)\n"
        "        else:\n"
        "            out.append([start, end])\n"
        "    return out\n",
        (
            (([[1, 3], [2, 6], [8, 10], [15, 18]],), [[1, 6], [8, 10], [15, 18]]),
            (([[1, 4], [4, 5]],), [[1, 5]]),
            (([],), []),
            (([[5, 7], [1, 2]],), [[1, 2], [5, 7]]),
            (([[1, 10], [2, 3], [4, 5]],), [[1, 10]]),
        ),
    ),
    Problem(
        "gcd_list",
        "gcd_list",
        "Write `gcd_list(nums: list[int]) -> int`: the greatest common divisor of the "
        "non-empty list of non-negative integers `nums` (gcd of all zeros is 0).",
        "def gcd_list(nums):\n"
        "    g = 0\n"
        "    for n in nums:\n"
        "        a, b = g, n\n"
        "        while b:\n"
        "            a, b = b, a % b\n"
        "        g = a\n"
        "    return g\n",
        (
            (([12, 18, 24],), 6),
            (([7],), 7),
            (([0, 5],), 5),
            (([0, 0],), 0),
            (([17, 34, 51, 85],), 17),
        ),
    ),
    Problem(
        "is_prime",
        "is_prime",
        "Write `is_prime(n: int) -> bool`: whether the integer `n` is a prime number.",
        "def is_prime(n):\n"
        "    if n < 2:\n"
        "        return False\n"
        "    i = 2\n"
        "    while i * i <= n:\n"
        "        if n % i == 0:\n"
        "            return False\n"
        "        i += 1\n"
        "    return True\n",
        (
            ((2,), True),
            ((1,), False),
            ((0,), False),
            ((-7,), False),
            ((97,), True),
            ((91,), False),
            ((7919,), True),
        ),
    ),
    Problem(
        "roman_to_int",
        "roman_to_int",
        "Write `roman_to_int(s: str) -> int`: the value of the Roman numeral `s` (I, V, X, L, "
        "C, D, M with subtractive pairs such as IV and CM).",
        "def roman_to_int(s):\n"
        "    v = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}\n"
        "    total = 0\n"
        "    for a, b in zip(s, s[1:] + ' '):\n"
        "        total += -v[a] if b != ' ' and v[a] < v[b] else v[a]\n"
        "    return total\n",
        (
            (("III",), 3),
            (("IV",), 4),
            (("IX",), 9),
            (("LVIII",), 58),
            (("MCMXCIV",), 1994),
        ),
    ),
    Problem(
        "to_binary",
        "to_binary",
        "Write `to_binary(n: int) -> str`: the binary digits of the integer `n` without a "
        "prefix, with a leading '-' for negative numbers ('0' for zero).",
        "def to_binary(n):\n"
        "    if n == 0:\n"
        "        return '0'\n"
        "    sign, n, digits = ('-' if n < 0 else ''), abs(n), ''\n"
        "    while n:\n"
        "        digits = str(n % 2) + digits\n"
        "        n //= 2\n"
        "    return sign + digits\n",
        (((0,), "0"), ((5,), "101"), ((1,), "1"), ((-6,), "-110"), ((1024,), "10000000000")),
    ),
    Problem(
        "parse_key_values",
        "parse_key_values",
        "Write `parse_key_values(s: str) -> dict[str, str]`: parse 'key=value' pairs separated "
        "by ';'. Strip whitespace around keys and values, skip empty segments, split each pair "
        "at its first '=', and let later keys overwrite earlier ones.",
        "def parse_key_values(s):\n"
        "    out = {}\n"
        "    for part in s.split(';'):\n"
        "        if part.strip():\n"
        "            key, _, value = part.partition('=')\n"
        "            out[key.strip()] = value.strip()\n"
        "    return out\n",
        (
            (("a=1; b = two",), {"a": "1", "b": "two"}),
            (("",), {}),
            ((";;x=1;;",), {"x": "1"}),
            (("url=http://h/?q=1",), {"url": "http://h/?q=1"}),
            (("k=1;k=2",), {"k": "2"}),
        ),
    ),
    Problem(
        "balanced_brackets",
        "balanced_brackets",
        "Write `balanced_brackets(s: str) -> bool`: whether the brackets (), [] and {} in `s` "
        "are balanced and properly nested; other characters are ignored.",
        "def balanced_brackets(s):\n"
        "    pairs, stack = {')': '(', ']': '[', '}': '{'}, []\n"
        "    for c in s:\n"
        "        if c in '([{':\n"
        "            stack.append(c)\n"
        "        elif c in pairs:\n"
        "            if not stack or stack.pop() != pairs[c]:\n"
        "                return False\n"
        "    return not stack\n",
        (
            (("([]{})",), True),
            (("([)]",), False),
            (("",), True),
            (("((",), False),
            (("a(b[c]d)e",), True),
            (("}",), False),
        ),
    ),
    Problem(
        "transpose",
        "transpose",
        "Write `transpose(matrix: list[list[int]]) -> list[list[int]]`: the transpose of a "
        "rectangular matrix given as a list of rows (an empty matrix gives []).",
        "def transpose(matrix):\n    return [list(col) for col in zip(*matrix)]\n",
        (
            (([[1, 2, 3], [4, 5, 6]],), [[1, 4], [2, 5], [3, 6]]),
            (([],), []),
            (([[7]],), [[7]]),
            (([[1], [2]],), [[1, 2]]),
        ),
    ),
    Problem(
        "caesar_cipher",
        "caesar_cipher",
        "Write `caesar_cipher(s: str, shift: int) -> str`: shift every ASCII letter of `s` by "
        "`shift` places in the alphabet (wrapping around, keeping case); other characters stay.",
        "def caesar_cipher(s, shift):\n"
        "    out = []\n"
        "    for c in s:\n"
        "        if 'a' <= c <= 'z' or 'A' <= c <= 'Z':\n"
        "            base = ord('a') if c.islower() else ord('A')\n"
        "            c = chr(base + (ord(c) - base + shift) % 26)\n"
        "        out.append(c)\n"
        "    return ''.join(out)\n",
        (
            (("abc", 1), "bcd"),
            (("xyz", 3), "abc"),
            (("Hello, World!", 13), "Uryyb, Jbeyq!"),
            (("abc", -1), "zab"),
            (("é1", 5), "é1"),
        ),
    ),
    Problem(
        "group_anagrams",
        "group_anagrams",
        "Write `group_anagrams(words: list[str]) -> list[list[str]]`: group words that are "
        "anagrams of each other; groups in the order of their first word, words in input order.",
        "def group_anagrams(words):\n"
        "    groups = {}\n"
        "    for w in words:\n"
        "        groups.setdefault(''.join(sorted(w)), []).append(w)\n"
        "    return list(groups.values())\n",
        (
            (
                (["eat", "tea", "tan", "ate", "nat", "bat"],),
                [["eat", "tea", "ate"], ["tan", "nat"], ["bat"]],
            ),
            (([],), []),
            ((["a"],), [["a"]]),
            ((["ab", "ba", "ab"],), [["ab", "ba", "ab"]]),
        ),
    ),
    Problem(
        "median",
        "median",
        "Write `median(nums: list[float]) -> float`: the median of a non-empty list of numbers "
        "(the mean of the two middle values when the length is even), as a float.",
        "def median(nums):\n"
        "    s = sorted(nums)\n"
        "    m = len(s) // 2\n"
        "    return float(s[m]) if len(s) % 2 else (s[m - 1] + s[m]) / 2\n",
        (
            (([3, 1, 2],), 2.0),
            (([4, 1, 3, 2],), 2.5),
            (([5],), 5.0),
            (([-1.5, 0.5],), -0.5),
            (([1, 1, 1, 10],), 1.0),
        ),
    ),
    Problem(
        "parse_duration",
        "parse_duration",
        "Write `parse_duration(text: str) -> int`: the number of seconds in a duration such as "
        "'1h30m15s', '45s' or '2h5s' (units h, m, s, each at most once, in that order).",
        "import re\n\n"
        "def parse_duration(text):\n"
        "    m = re.fullmatch(r'(?:(\\d+)h)?(?:(\\d+)m)?(?:(\\d+)s)?', text)\n"
        "    h, mi, s = (int(x) if x else 0 for x in m.groups())\n"
        "    return 3600 * h + 60 * mi + s\n",
        (
            (("1h30m15s",), 5415),
            (("45s",), 45),
            (("2h5s",), 7205),
            (("10m",), 600),
            (("0h0m0s",), 0),
        ),
    ),
    Problem(
        "pascal_row",
        "pascal_row",
        "Write `pascal_row(n: int) -> list[int]`: row `n` of Pascal's triangle (row 0 is [1]).",
        "def pascal_row(n):\n"
        "    row = [1]\n"
        "    for k in range(n):\n"
        "        row.append(row[-1] * (n - k) // (k + 1))\n"
        "    return row\n",
        (((0,), [1]), ((1,), [1, 1]), ((4,), [1, 4, 6, 4, 1]), ((6,), [1, 6, 15, 20, 15, 6, 1])),
    ),
    Problem(
        "max_subarray_sum",
        "max_subarray_sum",
        "Write `max_subarray_sum(nums: list[int]) -> int`: the largest sum of a non-empty "
        "contiguous slice of the non-empty list `nums`.",
        "def max_subarray_sum(nums):\n"
        "    best = cur = nums[0]\n"
        "    for x in nums[1:]:\n"
        "        cur = max(x, cur + x)\n"
        "        best = max(best, cur)\n"
        "    return best\n",
        (
            (([-2, 1, -3, 4, -1, 2, 1, -5, 4],), 6),
            (([-3, -1, -2],), -1),
            (([5],), 5),
            (([1, 2, 3],), 6),
            (([2, -1, 2],), 3),
        ),
    ),
    Problem(
        "invert_dict",
        "invert_dict",
        "Write `invert_dict(d: dict[str, int]) -> dict[int, list[str]]`: map each value of `d` "
        "to the sorted list of keys that have it.",
        "def invert_dict(d):\n"
        "    out = {}\n"
        "    for k in sorted(d):\n"
        "        out.setdefault(d[k], []).append(k)\n"
        "    return out\n",
        (
            (({"a": 1, "b": 2, "c": 1},), {1: ["a", "c"], 2: ["b"]}),
            (({},), {}),
            (({"z": 0, "y": 0, "x": 0},), {0: ["x", "y", "z"]}),
        ),
    ),
)
