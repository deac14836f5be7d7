import ArgumentParser

@main
struct MixLabCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "mixlab",
    abstract: "Reproducible model merging: recipes in, byte-identical checkpoints and provenance out.",
    version: MixLabVersion.string,
    subcommands: [
      InitCommand.self, RunCommand.self, LogCommand.self, ShowCommand.self, ReproduceCommand.self, IndexCommand.self,
      MetricsCommand.self, SweepCommand.self, SynthCommand.self, InspectCommand.self, DiffCommand.self,
      DistanceCommand.self, PublishCommand.self, VerifyCommand.self, ImportCommand.self,
    ])
}
