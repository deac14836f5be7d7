import ArgumentParser

@main
struct MixLabCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "mixlab",
    abstract: "Reproducible model merging: recipes in, byte-identical checkpoints and provenance out.",
    version: MixLabVersion.string,
    subcommands: [SynthCommand.self, InspectCommand.self])
}
