import ArgumentParser

@main
struct MixLabCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "mixlab",
    abstract: "Reproducible model merging: recipes in, byte-identical checkpoints and provenance out.",
    version: MixLabVersion.string,
    subcommands: [
      InitCommand.self, RunCommand.self, LogCommand.self, ShowCommand.self, ReproduceCommand.self, IndexCommand.self,
      SynthCommand.self, InspectCommand.self, DiffCommand.self, DistanceCommand.self,
    ])
}
