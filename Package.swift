// swift-tools-version:6.1
// The module graph is the architecture: each target depends only on the ones listed
// above it. format → layouts → engine → recipes → provenance → use cases → CLI.
import PackageDescription


let package = Package(
  name: "mixlab",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "mixlab", targets: ["MixLabCLI"]),
    .library(name: "MixLab", targets: ["MixLab"]),
    .executable(name: "mixlab-fuzz", targets: ["MixLabFuzz"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
  ],
  targets: [
    // libgit2, found through pkg-config; only Provenance imports it.
    .systemLibrary(name: "CGit2", pkgConfig: "libgit2", providers: [.apt(["libgit2-dev"])]),
    // Small C helpers for Linux calls Swift's Glibc module does not expose.
    .target(name: "CShims"),
    // safetensors format: strict reader, canonical writer, dtypes, hashing.
    .target(
      name: "SafeTensors",
      dependencies: ["CShims", .product(name: "Crypto", package: "swift-crypto")]),
    // Checkpoint layouts (SD1, SD2, SDXL, Llama): detection, components, blocks, synthesis.
    .target(name: "Architectures", dependencies: ["SafeTensors"]),
    // Kernels, merge methods, recipe graph evaluation, scheduler, counter-based RNG.
    .target(name: "MergeEngine", dependencies: ["SafeTensors", "Architectures"]),
    // YAML recipes: parsing, validation with file:line errors, canonical form, imports.
    .target(
      name: "Recipes",
      dependencies: ["MergeEngine", "Architectures", "Yams", .product(name: "Crypto", package: "swift-crypto")]),
    // Hash cache, run manifests, git store (libgit2) and SQLite index (GRDB).
    .target(
      name: "Provenance",
      dependencies: [
        "SafeTensors", "Recipes", "CGit2",
        .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "Crypto", package: "swift-crypto"),
      ]),
    // Use cases: inspect, synth, run, reproduce, diff, publish…
    .target(name: "MixLab", dependencies: ["SafeTensors", "Architectures", "MergeEngine", "Recipes", "Provenance"]),
    // The executable: ArgumentParser commands only.
    .executableTarget(
      name: "MixLabCLI",
      dependencies: ["MixLab", "Recipes", "SafeTensors", "Architectures", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
    // Deterministic mutation fuzzer for the reader and the recipe parser (benchmarks/fuzz.sh).
    .executableTarget(name: "MixLabFuzz", dependencies: ["SafeTensors", "Recipes"]),

    .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
    .testTarget(name: "ArchitecturesTests", dependencies: ["Architectures", "SafeTensors"]),
    .testTarget(name: "MergeEngineTests", dependencies: ["MergeEngine", "SafeTensors", "Architectures"]),
    .testTarget(name: "RecipesTests", dependencies: ["Recipes", "MergeEngine"]),
    .testTarget(name: "ProvenanceTests", dependencies: ["Provenance", "SafeTensors"]),
    .testTarget(name: "MixLabTests", dependencies: ["MixLab"]),
    .testTarget(name: "EndToEndTests", dependencies: ["MixLabCLI", "SafeTensors"]),
    // Hostile inputs, kills at chosen points, concurrent runs, changing inputs (docs/reliability.md).
    .testTarget(
      name: "ReliabilityTests", dependencies: ["MixLabCLI", "MixLabFuzz", "MixLab", "Provenance", "Recipes", "SafeTensors"]),
  ],
  swiftLanguageModes: [.v6]
)
