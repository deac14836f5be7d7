// The key → block tables of the Stable Diffusion families, as data: one rule per line,
// "prefix<TAB>block", first match wins. In a block, {n} is the number that follows the prefix
// (two digits), {last} the last OUT block of the architecture, {time} BASE or IN00 by the
// recipe's `time_embed` choice (tools disagree: supermerger BASE, sd-mecha IN00). Keys no rule
// claims (text encoders, scheduler buffers, EMA) count as BASE.

enum BlockMapData {
  static let stableDiffusion = """
    model.diffusion_model.input_blocks.\tIN{n}
    model.diffusion_model.middle_block.\tM00
    model.diffusion_model.output_blocks.\tOUT{n}
    model.diffusion_model.time_embed.\t{time}
    model.diffusion_model.label_emb.\t{time}
    model.diffusion_model.out.\tOUT{last}
    first_stage_model.\tVAE
    """

  /// Parsed rules: (prefix, block template).
  static let rules: [(prefix: String, block: String)] = stableDiffusion.split(separator: "\n").map { line in
    let f = line.split(separator: "\t")
    return (String(f[0]), String(f[1]))
  }
}
