import Foundation
import Testing

@testable import Recipes

/// Each refusal names the line and column of the mistake and says what to do. Step texts
/// come from `withStep`: `method:` on line 8, the given lines from line 9, 4 spaces in.
@Suite("Recipes: validation errors with file:line:column")
struct ValidationTests {
  // MARK: Keys and names

  @Test("unknown top-level key, with a suggestion")
  func unknownTopLevel() {
    expectRefused(
      "mixlab: 1\nnmae: soup\n" + head.dropFirst(10), at: 2, 1, "unknown key `nmae` in the recipe", "did you mean `name`?")
    expectRefused(
      "mixlab: 1\nzzz: 1\n", at: 2, 1, "unknown key `zzz`", "allowed: description, evaluate, inputs, mixlab, name, output, steps")
  }

  @Test("densty → did you mean `density`")
  func misspelledParam() {
    expectRefused(
      withStep("ties", "base: base", "models: [m1, m2]", "densty: 0.5"), at: 11, 5, "unknown key `densty` in step `t`",
      "did you mean `density`?")
    // Far from anything: the keys the method takes.
    expectRefused(
      withStep("ties", "base: base", "models: [m1, m2]", "density: 0.5", "colour: red"), at: 12, 5, "unknown key `colour`",
      "ties takes: models, base, weights, seed, density, lambda, sign, normalize, average, topk")
  }

  @Test("unknown method, with a suggestion or the list")
  func unknownMethod() {
    expectRefused(withStep("tie", "base: base", "models: [m1, m2]"), at: 8, 13, "unknown method `tie`", "did you mean `ties`?")
    expectRefused(withStep("slurp", "models: [m1, m2]"), at: 8, 13, "did you mean `slerp`?")
    expectRefused(withStep("frobnicate", "models: [m1, m2]"), at: 8, 13, "unknown method `frobnicate`", "methods: weighted_sum, ")
  }

  @Test("unknown option value, with a suggestion")
  func unknownOption() {
    expectRefused(
      withStep("ties", "base: base", "models: [m1, m2]", "density: 0.5", "sign: sign_cnt"), at: 12, 11,
      "sign must be one of none, magnitude_sum, sign_count, not `sign_cnt`", "did you mean `sign_count`?")
    expectRefused(withStep("average", "models: [m1, m2]", "normalize: maybe"), at: 10, 16, "normalize must be one of true, false")
  }

  @Test("wrong types")
  func wrongTypes() {
    expectRefused("mixlab: 1\ninputs: [a.safetensors]\n", at: 2, 9, "inputs must be a mapping")
    expectRefused("mixlab: 1\ninputs:\n", at: 2, 8, "inputs must be a mapping")
    expectRefused(withStep("average", "models: {m1: 1}"), at: 9, 13, "models must be a list")
    expectRefused(withStep("average", "models: [m1, m2]", "weights: 0.5"), at: 10, 14, "weights must be a list")
    expectRefused(
      withStep("ties", "base: base", "models: [m1, m2]", "density: [0.5, x]"), at: 11, 20, "density must be a finite number")
    expectRefused(withStep("ties", "base: base", "models: [m1, m2]", "density: \"0.5\""), at: 11, 14, "remove the quotes")
    expectRefused(withStep("ties", "base: [base]", "models: [m1, m2]", "density: 0.5"), at: 9, 11, "base must be a text value")
    expectRefused(withStep("average", "models: [m1, [m2]]"), at: 9, 18, "models must be a text value")
    expectRefused("mixlab: one\n", at: 1, 9, "mixlab must be a whole number")
    expectRefused("mixlab: 1\nname: [a]\n" + head.dropFirst(10), at: 2, 7, "name must be a text value")
    expectRefused(head + "steps: [a]\n", at: 6, 8, "steps must be a mapping")
    expectRefused(head + "steps:\n  t: average\n", at: 7, 6, "step `t` must be a mapping")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(of: "{from: t}", with: "t"), at: 10, 9,
      "output must be a mapping")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(of: "{from: t}", with: "{from: t, dtype: 16}"), at: 10, 26,
      "dtype must be one of f16, bf16, f32, f64, not `16`")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(of: "{from: t}", with: "{from: t, dtype: fp8}"), at: 10, 26,
      "dtype must be one of", "did you mean `f16`?")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(of: "{from: t}", with: "{from: t, shard_size: lots}"), at: 10,
      31,
      "shard_size must be a size")
    expectRefused(
      withStep("dare", "base: base", "models: [m1, m2]", "drop: 0.5", "seed: -1"), at: 12, 11, "seed must be a whole number")
    expectRefused(
      withStep("dare", "base: base", "models: [m1, m2]", "drop: 0.5", "seed: 1.5"), at: 12, 11, "seed must be a whole number")
  }

  @Test("inputs: kinds, names, pins and synth values")
  func inputs() {
    expectRefused(
      "mixlab: 1\ninputs:\n  a: {path: x, synth: {}}\n", at: 3, 6, "input `a` needs exactly one of path, recipe or synth")
    expectRefused("mixlab: 1\ninputs:\n  a: {sha256: 0123456789}\n", at: 3, 6, "needs exactly one of path, recipe or synth")
    expectRefused("mixlab: 1\ninputs:\n  a: {path: x, sha256: xyz}\n", at: 3, 24, "sha256 must be 10 to 64 hex digits")
    expectRefused("mixlab: 1\ninputs:\n  a: {pth: x}\n", at: 3, 7, "unknown key `pth`", "did you mean `path`?")
    expectRefused("mixlab: 1\ninputs:\n  a: {path: \"\"}\n", at: 3, 13, "path is empty")
    expectRefused("mixlab: 1\ninputs:\n  my model: x\n", at: 3, 3, "input name `my model` must be 1–64 ASCII letters")
    expectRefused("mixlab: 1\ninputs:\n  a: {recipe: ../other}\n", at: 3, 15, "recipe name `../other`")
    expectRefused("mixlab: 1\ninputs:\n  a: {synth: {arch: sd3}}\n", at: 3, 21, "arch must be one of sd1, sdxl, llama")
    expectRefused("mixlab: 1\ninputs:\n  a: {synth: {scale: 2}}\n", at: 3, 22, "scale must be in (0, 1]")
    expectRefused("mixlab: 1\ninputs:\n  a: {synth: {index: -1}}\n", at: 3, 22, "index must be between 0 and 9999")
    expectRefused("mixlab: 1\ninputs:\n  a: {synth: {dtype: f64}}\n", at: 3, 22, "dtype must be one of f16, bf16, f32")
    expectRefused("mixlab: 1\ninputs:\n  a: {synth: {sed: 1}}\n", at: 3, 15, "unknown key `sed`", "did you mean `seed`?")
  }

  // MARK: Ranges and numbers

  @Test("out-of-range values name the allowed range")
  func outOfRange() {
    expectRefused(
      withStep("ties", "base: base", "models: [m1, m2]", "density: 1.5"), at: 11, 14, "density must be ≤ 1 (allowed: (0, 1])")
    expectRefused(withStep("ties", "base: base", "models: [m1, m2]", "density: 0"), at: 11, 14, "density must be > 0")
    expectRefused(
      withStep("dare", "base: base", "models: [m1, m2]", "drop: 1.0"), at: 11, 11, "drop must be < 1 (allowed: [0, 1))")
    expectRefused(withStep("slerp", "models: [m1, m2]", "t: -0.1"), at: 10, 8, "t must be ≥ 0 (allowed: [0, 1])")
    expectRefused(withStep("slerp", "models: [m1, m2]", "t: [0, 0.5, 1.2]"), at: 10, 17, "t must be ≤ 1")
    expectRefused(
      withStep("ties", "base: base", "models: [m1, m2]", "density: {blocks: {IN00: 0.5, OUT00: 2}}"), at: 11, 42,
      "density for OUT00 must be ≤ 1")
    expectRefused(
      withStep("ties", "base: base", "models: [m1, m2]", "density: {filters: [{match: \"*\", value: 0.5}], default: 7}"), at: 11,
      61,
      "density must be ≤ 1")
    expectRefused(
      withStep("della", "base: base", "models: [m1, m2]", "density: 0.05"), at: 11, 14,
      "density ± epsilon = 0.05 ± 0.1, which must stay inside (0, 1)")
    expectRefused(
      withStep("dgmla", "base: base", "models: [m1, m2]", "density: 0.5", "epsilon: 0.5"), at: 12, 14, "density ± epsilon")
  }

  @Test(
    "huge numbers, NaN and infinities are refused",
    arguments: ["1e400", "-1e400", ".nan", ".NaN", ".inf", "-.inf", "+.Inf", "nan", "inf"])
  func nonFinite(value: String) {
    expectRefused(withStep("weighted_sum", "models: [m1, m2]", "alpha: \(value)"), at: 10, 12, "alpha must be a finite number")
  }

  @Test("seeds and indices beyond their types are refused")
  func hugeIntegers() {
    expectRefused(
      withStep("dare", "base: base", "models: [m1, m2]", "drop: 0.5", "seed: 18446744073709551616"), at: 12, 11,
      "seed must be a whole number from 0 to 18446744073709551615")
    expectRefused("mixlab: 1\ninputs:\n  a: {synth: {index: 99999999999999999999}}\n", at: 3, 22, "index must be a whole number")
    expectRefused("mixlab: 99999999999999999999\n", at: 1, 9, "mixlab must be a whole number")
  }

  // MARK: Steps

  @Test("missing required param, method, models")
  func missing() {
    expectRefused(withStep("ties", "base: base", "models: [m1, m2]"), at: 8, 5, "step `t`: ties needs `density`")
    expectRefused(withStep("triple_sum", "models: [m1, m2, base]", "alpha: 0.2"), at: 8, 5, "needs `beta`")
    expectRefused(head + "steps:\n  t:\n    models: [m1]\noutput: {from: t}\n", at: 8, 5, "step `t` has no `method`")
    expectRefused(withStep("average"), at: 8, 5, "step `t` has no `models`")
    expectRefused(head + "steps:\n  t: {models: [m1]}\noutput: {from: t}\n", at: 7, 6, "step `t` has no `method`")
  }

  @Test("operand counts")
  func operands() {
    expectRefused(withStep("weighted_sum", "models: [m1]"), at: 9, 13, "weighted_sum needs at least 2 models, got 1")
    expectRefused(withStep("slerp", "models: [m1, m2, base]"), at: 9, 13, "slerp takes exactly 2 models, got 3")
    expectRefused(withStep("model_stock", "base: base", "models: [m1]"), at: 10, 13, "model_stock needs at least 2 models")
  }

  @Test("unknown input or step references, with suggestions")
  func references() {
    expectRefused(
      withStep("ties", "base: base", "models: [m1, m22]", "density: 0.5"), at: 10, 18,
      "step `t` uses `m22`, which is not an input or step", "did you mean `m2`?")
    expectRefused(
      withStep("ties", "base: bse", "models: [m1, m2]", "density: 0.5"), at: 9, 11, "uses `bse`", "did you mean `base`?")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(of: "{from: t}", with: "{from: tt}"), at: 10, 16,
      "`tt` is not a step or input", "did you mean `t`?")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(of: "{from: t}", with: "{from: t, reference: m3}"), at: 10, 30,
      "`m3` is not an input", "did you mean `m1`?")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(
        of: "{from: t}", with: "{from: t, assemble: [{all: true, from: x}]}"),
      at: 10, 48, "`x` is not a step or input")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(
        of: "{from: t}", with: "{from: t, assemble: [{components: [unet], ema_from: t}]}"), at: 10, 61, "`t` is not an input")
  }

  @Test("cyclic steps: the message names the cycle")
  func cycles() {
    expectRefused(
      head + "steps:\n  a:\n    method: average\n    models: [m1, b]\n  b:\n    method: average\n    models: [c, m2]\n"
        + "  c:\n    method: average\n    models: [a]\noutput: {from: a}\n", at: 7, 3, "steps form a cycle: a → b → c → a")
    expectRefused(
      head + "steps:\n  self:\n    method: weighted_sum\n    models: [m1, self]\noutput: {from: self}\n", at: 7, 3,
      "steps form a cycle: self → self")
  }

  @Test("a step named like an input")
  func stepNamedLikeInput() {
    expectRefused(
      head + "steps:\n  m1:\n    method: average\n    models: [m2]\noutput: {from: m1}\n", at: 7, 3,
      "`m1` names both an input and a step")
  }

  @Test("weights count mismatch; weights on a method without them")
  func weights() {
    expectRefused(
      withStep("average", "models: [m1, m2]", "weights: [1, 2, 3]"), at: 10, 14, "3 weights for 2 models",
      "one weight per model, in the order of `models`")
    expectRefused(withStep("weighted_sum", "models: [m1, m2]", "weights: [1, 2]"), at: 10, 14, "weighted_sum takes no weights")
    expectRefused(withStep("average", "models: [m1, m2]", "weights: [1, .nan]"), at: 10, 18, "weight must be a finite number")
  }

  @Test("base on a method without one; missing base where required")
  func base() {
    expectRefused(withStep("average", "base: base", "models: [m1, m2]"), at: 9, 11, "average takes no base model")
    expectRefused(withStep("ties", "models: [m1, m2]", "density: 0.5"), at: 8, 5, "ties needs a `base`")
    expectRefused(withStep("ties_soup", "models: [m1, m2]", "density: 0.5"), at: 8, 5, "ties_soup needs a `base`")
  }

  @Test("a seed on a method that is not random")
  func seedOnDeterministic() {
    expectRefused(withStep("average", "models: [m1, m2]", "seed: 3"), at: 10, 11, "average is not random and takes no seed")
    expectRefused(withStep("ties", "base: base", "models: [m1, m2]", "density: 0.5", "seed: 3"), at: 12, 11, "ties is not random")
  }

  @Test("bad block names, block lists of the wrong length")
  func blocks() {
    expectRefused(
      withStep("weighted_sum", "models: [m1, m2]", "alpha: {blocks: {IN12: 0.5}}"), at: 10, 22, "unknown key `IN12` in blocks",
      "did you mean `IN02`?")
    expectRefused(
      withStep("weighted_sum", "models: [m1, m2]", "alpha: {blocks: {in01: 0.5}}"), at: 10, 22, "did you mean `IN01`?")
    expectRefused(
      withStep("weighted_sum", "models: [m1, m2]", "alpha: {blocks: [\((0..<25).map { _ in "0.5" }.joined(separator: ", "))]}"),
      at: 10, 21, "a block list has 26 values for SD1/SD2", "got 25")
    expectRefused(
      withStep(
        "weighted_sum", "models: [m1, m2]",
        "alpha: {blocks: [\((0..<26).map { _ in "0.5" }.joined(separator: ", "))], default: 1}"),
      at: 10, 153, "a block list gives every block a value, so `default` would never apply")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(
        of: "{from: t}", with: "{from: t, assemble: [{blocks: [IN00, MID], from: m1}]}"), at: 10, 46, "unknown block `MID`",
      "did you mean `M00`?")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(
        of: "{from: t}", with: "{from: t, assemble: [{components: [unet, text_encoder], from: m1}]}"), at: 10, 50,
      "unknown component `text_encoder`")
  }

  @Test("parameter mappings: one form, and no default that could never apply")
  func paramForms() {
    expectRefused(
      withStep("weighted_sum", "models: [m1, m2]", "alpha: {blocks: {IN00: 1}, gradient: [0, 1]}"), at: 10, 12,
      "give one of `blocks`, `gradient` or `filters`, not `blocks` and `gradient`")
    expectRefused(
      withStep("weighted_sum", "models: [m1, m2]", "alpha: {default: 1}"), at: 10, 12, "needs `blocks`, `gradient` or `filters`")
    expectRefused(
      withStep("weighted_sum", "models: [m1, m2]", "alpha: {gradient: [0, 1], default: 0.5}"), at: 10, 31,
      "a gradient gives every layer a value")
    expectRefused(withStep("weighted_sum", "models: [m1, m2]", "alpha: []"), at: 10, 12, "alpha: empty gradient")
    expectRefused(
      withStep("weighted_sum", "models: [m1, m2]", "alpha: {filters: [{match: \"*\", regex: x, value: 1}]}"), at: 10, 23,
      "a filter needs one of `match: <glob>` or `regex: <expression>`, not both")
    expectRefused(
      withStep("weighted_sum", "models: [m1, m2]", "alpha: {filters: [{value: 1}]}"), at: 10, 23, "a filter needs `match")
    expectRefused(
      withStep("weighted_sum", "models: [m1, m2]", "alpha: {filters: [{match: \"*\"}]}"), at: 10, 23, "a filter needs a `value`")
  }

  @Test("invalid regular expressions")
  func regex() {
    expectRefused(
      withStep("weighted_sum", "models: [m1, m2]", "alpha: {filters: [{regex: \"([a-z\", value: 1}]}"), at: 10, 31,
      "invalid regular expression")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(
        of: "{from: t}", with: "{from: t, assemble: [{regex: \"a(\", from: m1}]}"),
      at: 10, 38, "invalid regular expression")
  }

  @Test("assemble rules need one selector and one source")
  func assembleRules() {
    let text = withStep("average", "models: [m1, m2]")
    expectRefused(
      text.replacingOccurrences(of: "{from: t}", with: "{from: t, assemble: [{blocks: [IN00], from: m1, drop: true}]}"), at: 10,
      30,
      "exactly one of from, ema_from or drop")
    expectRefused(
      text.replacingOccurrences(of: "{from: t}", with: "{from: t, assemble: [{blocks: [IN00], all: true, from: m1}]}"), at: 10,
      30,
      "exactly one of components, blocks, match, regex or all")
    expectRefused(
      text.replacingOccurrences(of: "{from: t}", with: "{from: t, assemble: [{all: false, from: m1}]}"), at: 10, 36,
      "`all` must be true")
    expectRefused(
      text.replacingOccurrences(of: "{from: t}", with: "{from: t, assemble: [{all: true, frm: m1}]}"), at: 10, 42,
      "did you mean `from`?")
  }

  // MARK: Output

  @Test("metadata keys starting with mixlab. are reserved")
  func metadata() {
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(
        of: "{from: t}", with: "\n  from: t\n  metadata:\n    mixlab.recipe_sha256: x"),
      at: 13, 5, "metadata keys starting with `mixlab.` are reserved")
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(of: "{from: t}", with: "{from: t, metadata: {a: {b: c}}}"),
      at: 10, 33,
      "metadata value must be a text value")
  }

  @Test("empty inputs, steps, or a missing section")
  func empty() {
    expectRefused("mixlab: 1\ninputs: {}\nsteps: {}\n", at: 2, 9, "`inputs` is empty")
    expectRefused(head + "steps: {}\noutput: {from: m1}\n", at: 6, 8, "`steps` is empty")
    expectRefused("", at: 1, 1, "the recipe is empty")
    expectRefused("# only a comment\n", at: 1, 1, "the recipe is empty")
    expectRefused("mixlab: 1\n", at: 1, 1, "missing `inputs`")
    expectRefused(head, at: 1, 1, "missing `steps`")
    expectRefused(head + "steps: {t: {method: average, models: [m1]}}\n", at: 1, 1, "missing `output`")
    expectRefused(
      head + "steps: {t: {method: average, models: [m1]}}\noutput: {dtype: f16}\n", at: 7, 9, "output needs `from: <step>`")
  }

  // MARK: Version

  @Test("missing or unsupported format version")
  func version() {
    expectRefused(String(head.dropFirst(10)) + "steps: {}\n", at: 1, 1, "missing `mixlab: 1`")
    expectRefused("mixlab: 2\n" + head.dropFirst(10), at: 1, 9, "recipe format version 2 is not supported", "reads version 1")
    expectRefused("mixlab: 0\n", at: 1, 9, "version 0 is not supported")
    expectRefused("mixlab: 1.0\n", at: 1, 9, "mixlab must be a whole number")
  }

  // MARK: YAML

  @Test("duplicate keys point at the repeat and name the first")
  func duplicates() {
    expectRefused(
      withStep("average", "models: [m1, m2]", "weights: [1, 2]", "models: [m1]"), at: 11, 5, "duplicate key `models`",
      "first written at line 9, column 5")
    expectRefused(
      "mixlab: 1\ninputs:\n  a: a.safetensors\n  b: b.safetensors\n  a: c.safetensors\n", at: 5, 3, "duplicate key `a`",
      "first written at line 3")
    expectRefused("mixlab: 1\nmixlab: 1\n", at: 2, 1, "duplicate key `mixlab`")
    // In a flow mapping the repeat cannot be found by indentation: the first is named.
    expectRefused(
      withStep("average", "models: [m1, m2]").replacingOccurrences(of: "{from: t}", with: "{from: t, from: m1}"), at: 10, 10,
      "duplicate key `from`")
    // YAML sees `1` and "1" as different keys; a recipe must not (this crashed the parser).
    expectRefused(
      head
        + "steps:\n  1:\n    method: average\n    models: [m1, m2]\n  \"1\":\n    method: average\n    models: [m1]\noutput: {from: \"1\"}\n",
      at: 10, 3, "duplicate key `1` in steps", "first written at line 7, column 3")
    expectRefused("mixlab: 1\ninputs:\n  true: a\n  \"true\": b\n", at: 4, 3, "duplicate key `true`")
  }

  @Test("YAML syntax errors are reported where libyaml finds them, with their context")
  func syntax() {
    expectRefused(
      withStep("average", "models: [m1, m2"), at: 10, 7, "YAML syntax: did not find expected ',' or ']'",
      "flow sequence started at line 9, column 13")
    expectRefused(
      withStep("average", "models: [m1, m2]", " weights: [1, 1]"), at: 10, 6, "YAML syntax", "block mapping started at line 8")
    expectRefused(head + "steps:\n  t:\n\tmethod: average\n", at: 8, 1, "YAML syntax", "tabs for indentation, use spaces")
    expectRefused(
      withStep("average", "models: [m1, m2]") + "---\nmixlab: 1\n", at: 11, 1, "a recipe file holds one YAML document")
    expectRefused("mixlab: 1\ndescription: \"unterminated\n", at: 3, 1, "YAML syntax", "quoted scalar")
  }

  @Test("anchors and aliases are refused before YAML expands them (alias bomb)")
  func aliases() {
    let bomb = """
      mixlab: 1
      a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
      b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
      c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
      d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
      e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
      f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
      g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
      h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
      i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
      ? *i
      : x
      """
    expectRefused(bomb, at: 2, 4, "YAML anchors and aliases (& and *) are not allowed")
    expectRefused("mixlab: 1\nx: [1]\ny: *x\n", at: 3, 4, "anchors and aliases")
    // An unquoted glob is an alias to YAML: the hint says to quote it.
    expectRefused(
      withStep("weighted_sum", "models: [m1, m2]", "alpha:", "  filters:", "    - match: *attn*", "      value: 1"), at: 12, 18,
      "quote a glob such as \"*attn*\"")
    // An anchor after a string ending in an escaped backslash is still found.
    expectRefused("mixlab: 1\ndescription: \"a\\\\\"\nname: &x y\n", at: 3, 7, "anchors and aliases")
  }

  @Test("& and * inside text are not anchors")
  func ampersandInText() throws {
    let text = withStep("average", "models: [m1, m2]")
    let plain = try parse(text)
    for description in [
      "description: Tom & Jerry * 2", "description: 'it''s & *x'", "description: \"say \\\"*x\\\" & go\"",
      "description: |\n  * bullet & more\n  - *x\n  &y", "description: >-\n  *folded* &text\nname: t2",
      "description: R&D*", "description: a # &comment *x",
    ] {
      let r = try parse(text + description + "\n")
      #expect(r.hash == plain.hash, "\(description)")
    }
    #expect(try parse(text + "description: Tom & Jerry\n").description == "Tom & Jerry")
    #expect(try parse(text + "description: |\n  * one\n  * two\n").description == "* one\n* two\n")
  }

  @Test("deep flow nesting is refused before parsing")
  func nesting() {
    let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
    expectRefused("mixlab: 1\ndescription: " + deep + "\n", at: 2, 46, "nesting deeper than 32 levels")
    // Deep block nesting stops at libyaml's limit instead of exhausting the stack.
    let block = "mixlab: 1\ndescription:\n" + String(repeating: "- ", count: 20_000) + "x\n"
    let e = refusal(block)
    #expect(e?.message.contains("nesting") == true, "\(e?.message ?? "")")
  }

  @Test("recipes larger than 1 MiB are refused")
  func tooLarge() {
    let big = withStep("average", "models: [m1, m2]") + "description: " + String(repeating: "x", count: 1 << 20) + "\n"
    expectRefused(big, at: 1, 1, "larger than 1 MiB")
  }
}
